// The CLI run by a user who may not touch a pool (uid 65534, switched to as
// root): clear one-line refusals, nothing made, nothing removed. Needs root,
// so it lives in a *-root.test.ts file outside `make unit`. The other uid runs
// a private copy of the built CLI (carryCli): the checkout itself may sit in a
// directory only its owner can enter.
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { carryCli, runCli, runProblems } from '../helpers/cli-run.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const NOBODY = 65534;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const shmExists = (pool: string) => ({
  state: existsSync(`/dev/shm/cxl-mhd.${pool}.state`),
  mem: existsSync(`/dev/shm/cxl-mhd.${pool}.mem`),
});

describe('the CLI as another user', () => {
  it.skipIf(!isRoot)(
    'a pool another user cannot open, and a state dir it cannot write: clear refusals (needs root to switch uid)',
    async () => {
      const root = tempDir('cxl-mhd-uid-');
      const state = join(root, 'state');
      mkdirSync(state);
      chmodSync(root, 0o755);
      chmodSync(state, 0o755);
      const env = { ...process.env, XDG_STATE_HOME: join(root, 'xdg-state'), XDG_RUNTIME_DIR: join(root, 'xdg-run') };
      const pool = uniquePoolName('uid');
      const made = await runCli(['pool', 'create', '--pool', pool, '--capacity', '256M', '--heads', '2', '--state-dir', state], {
        cwd: root,
        env,
      });
      expect(made.code, made.stderr).toBe(0);
      const nobody = { cwd: '/', env, uid: NOBODY, gid: NOBODY, cli: carryCli() };
      // The copy runs at all as that uid (a refusal below must come from the pool, not from node).
      const help = await runCli(['--help'], nobody);
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/pool/);
      for (const argv of [
        ['status', '--pool', pool, '--state-dir', state],
        ['fsck', '--pool', pool, '--state-dir', state],
        ['pool', 'destroy', '--pool', pool, '--state-dir', state],
      ]) {
        const r = await runCli(argv, nobody);
        expect(runProblems(r), `${argv.join(' ')} as uid ${NOBODY}: exit ${r.code}, stderr:\n${r.stderr}`).toEqual([]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND|native addon is not built/);
      }
      expect(shmExists(pool)).toEqual({ state: true, mem: true });
      const other = uniquePoolName('uid');
      const r = await runCli(['pool', 'create', '--pool', other, '--capacity', '256M', '--heads', '1', '--state-dir', state], nobody);
      expect(runProblems(r), `pool create as uid ${NOBODY} in a root-owned state dir: exit ${r.code}, stderr:\n${r.stderr}`).toEqual([]);
      expect(r.code).not.toBe(0);
      expect(shmExists(other)).toEqual({ state: false, mem: false });
    },
  );
});
