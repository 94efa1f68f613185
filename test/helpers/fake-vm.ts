// A head's VM as a fake QEMU for in-process backend tests: it answers what
// attach, re-adoption, DCD delivery and the FM-LD port ask (no static
// window; a DC region over the whole pool when `dcd`), running unless
// `running: false` (a VM still paused at -S, as at a first attach).
import { dataObjectPath } from '../../src/pool/index.js';
import { FakeQemu, ok } from './fake-qemu.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}\r\n';

export async function fakeVm(
  socketPath: string,
  pool: string,
  poolBytes: number,
  dcd: boolean,
  opts: { running?: boolean } = {},
): Promise<FakeQemu> {
  const running = opts.running ?? true;
  const fake = await FakeQemu.dial(socketPath, { greeting: false });
  const released = new Set<string>();
  const dc: Record<string, unknown> = { 'mem-path': dataObjectPath(pool), offset: 0, size: poolBytes };
  fake
    .handle('query-status', () => ok({ running, status: running ? 'running' : 'prelaunch' }))
    .handle('qom-list', () => ok(dcd ? [{ name: 'cxl-mhd-mem0', type: 'child<cxl-type3>' }] : []))
    .handle('qom-get', (cmd) => {
      const { path: p, property } = cmd.arguments as { path: string; property: string };
      if (p === '/machine/peripheral/cxl-mhd-mem0' && property === 'volatile-dc-memdev') return ok('/objects/cxl-mhd-dc');
      if (p === '/objects/cxl-mhd-dc' && property in dc) return ok(dc[property]);
      return { error: { class: 'GenericError', desc: `no property ${property}` } };
    })
    // A dialled fake cannot take descriptors: the FM-LD channel's fd is accepted and dropped.
    .handle('getfd', () => ok())
    .handle('query-chardev', () => ok([]))
    .handle('chardev-add', () => ok())
    .handle('chardev-change', () => ok())
    .handle('chardev-remove', () => ok())
    .handle('device_add', () => ok())
    .handle('device_del', () => ok())
    // A cooperative DCD guest: it gives a released extent back at once, so asking again finds it gone (as QEMU says).
    .handle('cxl-release-dynamic-capacity', (cmd) => {
      const key = JSON.stringify((cmd.arguments as { extents: unknown }).extents);
      if (released.has(key)) return { error: { class: 'GenericError', desc: 'cannot release extent with non-existing DPA range' } };
      released.add(key);
      return ok();
    })
    .handle('cxl-add-dynamic-capacity', (cmd) => {
      released.delete(JSON.stringify((cmd.arguments as { extents: unknown }).extents));
      return ok();
    })
    .handle('cont', () => ok())
    .handle('quit', () => ok());
  await fake.sendRaw(GREETING);
  return fake;
}
