// Hostile files handed to the CLI: a scenario that is a link to /dev/zero, a
// FIFO, a directory, or a file of a million steps. Each is refused with one
// line (exit 2, "bad file"), promptly and without reading it whole: regular
// files only, at most 1 MiB (src/scenario/load.ts).
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const MAX_SCENARIO_BYTES = 1048576;

import { runCli, runProblems } from '../helpers/cli-run.js';
import { tempDir } from '../helpers/pool.js';

async function refused(file: string): Promise<string> {
  const r = await runCli(['run', file]);
  expect(runProblems(r), r.stderr).toEqual([]);
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe('scenario files that are not regular files, or too big', () => {
  it('a link to /dev/zero is refused unread', async () => {
    const dir = tempDir();
    symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
    expect(await refused(join(dir, 'zero.yaml'))).toMatch(/zero\.yaml: a scenario must be a regular file; this is a device/);
  });

  it('a FIFO nobody writes is refused, not waited on', async () => {
    const dir = tempDir();
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    expect(await refused(join(dir, 'fifo.yaml'))).toMatch(/fifo\.yaml: a scenario must be a regular file; this is a FIFO/);
  });

  it('a directory is refused', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'd.yaml'));
    expect(await refused(join(dir, 'd.yaml'))).toMatch(/d\.yaml: a scenario must be a regular file; this is a directory/);
  });

  it('a file of many steps past 1 MiB is refused by its size, before it is parsed', async () => {
    const dir = tempDir();
    const file = join(dir, 'long.yaml');
    const step = '  - { name: s, host: "true" }\n';
    writeFileSync(
      file,
      `name: long\npool: { capacity: 256M, heads: 1 }\nsteps:\n${step.repeat(Math.ceil((1.5 * MAX_SCENARIO_BYTES) / step.length))}`,
    );
    expect(await refused(file)).toMatch(
      new RegExp(`long\\.yaml: the scenario is \\d+ bytes; at most ${MAX_SCENARIO_BYTES} \\(1 MiB\\) are read`),
    );
  });

  it('a link to a regular file is still fine', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'real.yaml'), 'name: x\n');
    symlinkSync(join(dir, 'real.yaml'), join(dir, 'link.yaml'));
    // It is read and judged on its content (missing keys), not on being a link.
    const r = await runCli(['run', join(dir, 'link.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/regular file/);
    expect(r.stderr).toMatch(/link\.yaml:\d+:\d+:/);
  });
});
