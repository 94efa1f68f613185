// The backend's attach rules against a fake QEMU (fast, deterministic):
// a second connection to a head that is mid-handshake, a QEMU that dies
// between the claim and `cont`, and a misconfigured device told to quit.
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../src/heads/index.js';
import { dataObjectPath, fsck } from '../../src/pool/index.js';
import { FakeQemu, ok } from '../helpers/fake-qemu.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const open: { close(): void }[] = [];
const backends: Backend[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) f.close();
  for (const b of backends.splice(0)) await b.stop();
});

async function backend(heads = 2): Promise<{ b: Backend; sock: (h: number) => string }> {
  const base = tempDir();
  const pool = uniquePoolName('fk');
  const b = await Backend.start({
    pool,
    runDir: join(base, 'run'),
    stateDir: join(base, 'state'),
    capacityBytes: 1024 * MiB,
    headCount: heads,
    logger: pino({ level: 'silent' }),
  });
  backends.push(b);
  return { b, sock: (h) => join(base, 'run', pool, `head${h}.sock`) };
}

/** A fake VM with one static window of the pool (or none). */
function asVm(fake: FakeQemu, dataPath: string | null, window: { offset: number; size: number; share: boolean } | null): FakeQemu {
  const props: Record<string, unknown> = window
    ? { 'mem-path': dataPath, offset: window.offset, size: window.size, share: window.share, type: 'memory-backend-file' }
    : {};
  fake
    .handle('query-status', () => ok({ running: false, status: 'prelaunch' }))
    .handle('qom-list', () => ok(window ? [{ name: 'cxl-mhd-mem0', type: 'child<cxl-type3>' }] : []))
    .handle('qom-get', (cmd) => {
      const { path, property } = cmd.arguments as { path: string; property: string };
      if (path === '/machine/peripheral/cxl-mhd-mem0' && property === 'volatile-memdev') return ok('/objects/cxl-mhd-static');
      if (path === '/objects/cxl-mhd-static' && property in props) return ok(props[property]);
      return { error: { class: 'GenericError', desc: `no property ${property}` } };
    })
    .handle('chardev-add', () => ok())
    .handle('device_add', () => ok())
    .handle('cont', () => ok())
    .handle('quit', () => ok());
  return fake;
}

describe('backend attach rules (fake QEMU)', () => {
  it('a second connection to a head that is still in its QMP handshake is refused', async () => {
    const { b, sock } = await backend();
    // The first QEMU connects but does not greet yet: the backend is mid-handshake.
    const first = await FakeQemu.dial(sock(0), { greeting: false });
    open.push(first);
    const second = await FakeQemu.dial(sock(0));
    open.push(second);
    await second.closed; // hung up on by the backend
    expect(b.pool.state.isAttached(0)).toBe(false);
  });

  it('a QEMU that dies between the claim and `cont` leaves nothing registered or claimed', async () => {
    const { b, sock } = await backend();
    const fake = asVm(await FakeQemu.dial(sock(0), { greeting: false }), dataObjectPath(b.pool.name), {
      offset: 0,
      size: 256 * MiB,
      share: true,
    });
    open.push(fake);
    fake.handle('cont', (_cmd, f) => {
      f.disconnect();
      return { error: { class: 'GenericError', desc: 'gone' } };
    });
    await fake.sendRaw('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}\r\n');
    await fake.closed;
    for (let i = 0; i < 100 && b.headRecord(0)?.phase !== 'refused'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(b.headRecord(0)?.phase).toBe('refused');
    expect(b.pool.state.isAttached(0)).toBe(false);
    expect(b.pool.state.blocksOf(0)).toEqual([]);
    expect(b.pool.state.lease().owner).toBe(null);
    expect(fsck(b.pool).findings).toEqual([]);
  });

  it('a window without share=on is refused: the VM is told to quit and nothing is claimed', async () => {
    const { b, sock } = await backend();
    const fake = asVm(await FakeQemu.dial(sock(1), { greeting: false }), dataObjectPath(b.pool.name), {
      offset: 256 * MiB,
      size: 256 * MiB,
      share: false,
    });
    open.push(fake);
    await fake.sendRaw('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}\r\n');
    await fake.waitForCommand('quit');
    expect(fake.received.map((c) => c.execute)).not.toContain('cont');
    expect(b.headRecord(1)).toMatchObject({ phase: 'refused', reason: expect.stringMatching(/without share=on/) });
    expect(b.pool.state.usage().free).toBe(512);
  });
});
