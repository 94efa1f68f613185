// The guest FM client (dist/guest/cxl-mhd-fm: src/cli/guest on QuickJS, one
// static binary) against `cxl-mhd fm` on Node: the same script of commands,
// each pair run against two identical FM-API servers (real CapacityManager,
// real shm pool) over Unix sockets, must give the same stdout, stderr and
// exit status — successes, the device's refusals and usage errors alike.
// The char-device path (the guest's virtio port) runs in test/scenario's
// QEMU tests.
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fmRig, NODE_FM } from '../helpers/fm-rig.js';
import { tempDir } from '../helpers/pool.js';

const GUEST_FM = 'dist/guest/cxl-mhd-fm';
const TAG = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';

/** Every fm command, human and --json, then refusals; in order, since state carries over. */
const SCRIPT: string[][] = [
  ['identify'],
  ['--json', 'identify'],
  ['mhd-info'],
  ['--json', 'mhd-info'],
  ['head-info'],
  ['--json', 'head-info'],
  ['dcd-info'],
  ['--json', 'dcd-info'],
  ['set-region-config', '--block-size', '4M', '--sanitize-on-release'],
  ['region-config', '--host', '1'],
  ['--json', 'region-config', '--host', '1'],
  ['add', '--host', '1', '--extent', '0:8M'],
  ['add', '--host', '1,2', '--shared', '--tag', TAG, '--extent', '64M:4M'],
  ['--json', 'add', '--host', '2', '--policy', 'free', '--length', '4M'],
  ['extents', '--host', '1'],
  ['--json', 'extents', '--host', '2'],
  ['add-reference', '--tag', TAG],
  ['tags'],
  ['--json', 'tags', '--start', '0', '--count', '1'],
  ['release', '--host', '1', '--extent', '0:8M'],
  ['--json', 'release', '--host', '2', '--tag', TAG],
  ['release', '--host', '1', '--tag', TAG],
  ['remove-reference', '--tag', TAG],
  ['tags'],
  ['set-region-config', '--block-size', '3M'],
  ['remove-reference', '--tag', TAG],
  ['add-reference', '--tag', '00000000-0000-0000-0000-000000000000'],
  ['add', '--host', '9', '--extent', '0:4M'],
  ['add', '--host', '1', '--extent', '0:4M', '--tag', 'nope'],
  ['add', '--host', '1,2', '--extent', '0:4M'],
  ['release', '--host', '1'],
  ['region-config'],
  ['bogus'],
  ['--timeout', '0', 'identify'],
  ['--help'],
  ['add', '--help'],
];

describe('guest FM client (cxl-mhd-fm on QuickJS)', () => {
  it('prints what `cxl-mhd fm` prints for every command, refusal and usage error', async () => {
    expect(existsSync(GUEST_FM), `${GUEST_FM} is built by make build (scripts/build-fm-client.mjs)`).toBe(true);
    const [node, guest] = await Promise.all([fmRig(), fmRig([GUEST_FM])]);
    const codes: number[] = [];
    for (const args of SCRIPT) {
      const [n, g] = await Promise.all([node.fm(...args), guest.fm(...args)]);
      expect({ args, ...g }).toEqual({ args, ...n });
      codes.push(n.code);
    }
    // The script reaches successes, the device's refusals (1) and usage errors (2).
    expect(new Set(codes)).toEqual(new Set([0, 1, 2]));
    expect((await guest.fm('identify')).stdout).toMatch(/^component type 3 \(type 3 memory device\)$/m);
    expect(JSON.parse((await guest.fm('--json', 'tags')).stdout)).toMatchObject({ tags: [] });
  });

  it('says so, as `cxl-mhd fm` does, when the port is missing, not a port, refuses or never answers', async () => {
    const dir = tempDir();
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    // Accepts and reads, never answers: the per-request timer must fire on QuickJS as on Node.
    const silent = join(dir, 'silent.sock');
    const held = new Set<Socket>();
    const server = createServer((s) => {
      held.add(s);
      s.on('error', () => {});
      s.resume();
    });
    await new Promise<void>((r) => server.listen(silent, () => r()));
    // A socket file nobody listens on any more (closing a server leaves its file): ECONNREFUSED.
    const refused = join(dir, 'refused.sock');
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(refused, () => r()));
    await new Promise<void>((r) => gone.close(() => r()));
    try {
      for (const port of ['/nonexistent/fm.sock', file, refused, silent]) {
        const args = ['--timeout', '300', '--port', port, 'identify'];
        const run = (cmd: string[]) =>
          promisify(execFile)(cmd[0] as string, [...cmd.slice(1), ...args]).then(
            () => ({ code: 0, stderr: '' }),
            (e) => ({ code: e.code as number, stderr: e.stderr as string }),
          );
        const [g, n] = await Promise.all([run([GUEST_FM]), run(NODE_FM)]);
        expect({ port, ...g }).toEqual({ port, ...n });
        expect(g.code).toBe(1);
      }
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
