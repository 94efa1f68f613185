// `cxl-mhd fm set-region-config | add-reference | remove-reference | tags`:
// the built CLI against a real CapacityManager (real shm pool, stub
// delivery) served on a Unix socket, human and --json output, and the
// device's refusals as one-line errors.
import { execFile } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { FmApiServer, SelectionPolicy } from '../../src/fmapi/index.js';
import { serveChannel } from '../../src/fmapi/server.js';
import { add, MiB, manager, pool, StubDelivery } from '../helpers/capacity.js';
import { tempDir } from '../helpers/pool.js';

const TAG = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

class Fine extends StubDelivery {
  override readonly unit = 2 * MiB;
}

async function rig() {
  const p = pool(3);
  const m = manager(p, { 0: new Fine(), 1: new Fine(), 2: new Fine() });
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    serveChannel(s, new FmApiServer(m), {});
  });
  const path = join(tempDir(), 'fm.sock');
  await new Promise<void>((r) => server.listen(path, () => r()));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  // Asynchronously: the server answering lives in this process.
  const fm = async (...args: string[]) => {
    try {
      const r = await promisify(execFile)(process.execPath, ['dist/src/cli/main.js', 'fm', '--port', path, ...args]);
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout, stderr: x.stderr };
    }
  };
  return { p, m, fm };
}

describe('cxl-mhd fm: the r3.2 DCD commands', () => {
  it('set-region-config sets, region-config shows it; Unsupported while extents are held', async () => {
    const { m, fm } = await rig();
    expect(await fm('set-region-config', '--block-size', '4M', '--sanitize-on-release')).toMatchObject({
      code: 0,
      stdout: 'region 0: block size 4M, sanitize on release on\n',
    });
    expect((await fm('region-config', '--host', '1')).stdout).toMatch(/^region 0: .* block 4M, sanitized on release$/m);
    await m.initiateAdd(add(1, [[0, 4 * MiB]]));
    const r = await fm('set-region-config', '--block-size', '2M');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unsupported/);
    const j = await fm('--json', 'set-region-config', '--block-size', '3M');
    expect(j.stderr).toMatch(/InvalidInput/);
  });

  it('add-reference, tags (human and --json, paged), remove-reference; unknown tags refused', async () => {
    const { m, fm } = await rig();
    expect((await fm('add-reference', '--tag', TAG)).stderr).toMatch(/InvalidInput/);
    for (const h of [0, 2])
      await m.initiateAdd(add(h, [[8 * MiB, 2 * MiB]], { tag: TAG, selectionPolicy: SelectionPolicy.EnableSharedAccess }));
    await m.initiateAdd(add(1, [[0, 2 * MiB]], { tag: '00000000-0000-4000-8000-000000000001' }));
    expect(await fm('add-reference', '--tag', TAG)).toMatchObject({ code: 0, stdout: `tag ${TAG}: reference added\n` });
    const human = await fm('tags');
    expect(human.stdout).toMatch(/^2 tag\(s\), generation \d+$/m);
    expect(human.stdout).toContain('  00000000-0000-4000-8000-000000000001: held by head(s) 1\n');
    expect(human.stdout).toContain(`  ${TAG}: held by head(s) 0,2, FM reference\n`);
    const json = JSON.parse((await fm('--json', 'tags', '--start', '1', '--count', '5')).stdout);
    expect(json).toMatchObject({ start: 1, total: 2, tags: [{ tag: TAG, flags: 1, references: [0, 2], pending: [] }] });
    expect(await fm('--json', 'remove-reference', '--tag', TAG)).toMatchObject({ code: 0, stdout: `{"ok":true,"tag":"${TAG}"}\n` });
    expect((await fm('remove-reference', '--tag', TAG)).stderr).toMatch(/InvalidInput/);
    expect((await fm('add-reference', '--tag', '00000000-0000-0000-0000-000000000000')).stderr).toMatch(/zero UUID/);
  });
});
