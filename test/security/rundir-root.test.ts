// The run-dir hijack (root switches to uid 65534): in a sticky, world-writable
// directory such as /tmp, another user makes the run directory (or the pool's
// directory in it) first, 0777, to swap the pool dir and receive QEMU's
// monitor connection. The backend must refuse it, naming its owner. Needs root.
import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Pool } from '../../src/pool/index.js';
import { runCli, runProblems } from '../helpers/cli-run.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const NOBODY = 65534;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('a run dir another user made first', () => {
  it.skipIf(!isRoot)('is refused by serve, naming its owner; no socket is made there', async () => {
    const base = tempDir('cxl-mhd-rdr-');
    const tmp = join(base, 'tmp'); // stands for /tmp
    mkdirSync(tmp);
    chmodSync(base, 0o755);
    chmodSync(tmp, 0o1777);
    const name = uniquePoolName('rdr');
    const stateDir = join(base, 'state');
    for (const [runDir, made] of [
      [join(tmp, 'cxl-mhd-0'), join(tmp, 'cxl-mhd-0')], // the run dir itself
      [tmp, join(tmp, name)], // the pool's directory in a run dir that is /tmp itself
    ] as const) {
      mkdirSync(made);
      chownSync(made, NOBODY, NOBODY);
      chmodSync(made, 0o777);
      const r = await runCli(['serve', '--pool', name, '--capacity', '256M', '--heads', '1', '--run-dir', runDir, '--state-dir', stateDir]);
      expect(runProblems(r)).toEqual([]);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toMatch(/ready/);
      expect(r.stderr).toMatch(new RegExp(`${made} belongs to uid ${NOBODY}, not to uid 0 that runs this or root; refusing to use it`));
      expect(existsSync(join(runDir === tmp ? made : join(made, name), 'head0.sock'))).toBe(false);
      Pool.destroy({ name, stateDir, force: true });
    }
  });
});
