// `lease takeover` from root against a backend that runs as another user
// (uid 65534): the backend's control gate hangs up on every other uid, root
// included; the CLI must say whose lease it is, not a bare EPIPE. Needs root.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { carryCli, runCli, runProblems } from '../helpers/cli-run.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const NOBODY = 65534;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) c.kill('SIGKILL');
});

describe('lease takeover against another uid', () => {
  it.skipIf(!isRoot)("says only uid N may take over this pool's lease", async () => {
    const base = tempDir('cxl-mhd-lease-');
    chmodSync(base, 0o755);
    const runDir = join(base, 'run');
    const stateDir = join(base, 'state');
    for (const d of [runDir, stateDir]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, NOBODY, NOBODY);
    }
    const name = uniquePoolName('lease');
    const serve = spawn(
      process.execPath,
      [carryCli(), 'serve', '--pool', name, '--capacity', '256M', '--heads', '1', '--run-dir', runDir, '--state-dir', stateDir],
      { cwd: '/', uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(serve);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      serve.stdout?.on('data', (d) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
      serve.once('exit', (code) => reject(new Error(`serve as uid ${NOBODY} exited ${code}`)));
    });
    const r = await runCli(['lease', 'takeover', '--pool', name, '--head', '0', '--run-dir', runDir]);
    expect(runProblems(r)).toEqual([]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/EPIPE/);
    expect(r.stderr).toMatch(new RegExp(`only uid ${NOBODY} may take over this pool's lease`));
    serve.kill('SIGTERM');
  });
});
