// The bare operations the benchmarks set beside the backend's: QEMU's own
// commands sent straight to a head's monitor, and one fdatasync'd
// journal-sized append — what any FM-API backend must spend on an add.
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { dataObjectPath } from '../src/pool/index.js';
import { ldSerial, peripheralPath, STATIC_DEVICE_ID } from '../src/qemu/names.js';
import type { QmpSession } from '../src/qmp/index.js';

/** An append-only file standing in for the journal: `append` writes one line like the backend's and fdatasyncs it. */
export function bareJournal(path: string, head: number): { append: (op: string, i: number) => void; close: () => void } {
  const fd = openSync(path, 'a', 0o600);
  return {
    append: (op, i) => {
      writeSync(fd, `${JSON.stringify({ seq: i, time: new Date().toISOString(), op, args: { head, offset: i }, result: { ok: true } })}\n`);
      fdatasyncSync(fd);
    },
    close: () => closeSync(fd),
  };
}

/** A DCD add on the static device's region 0, as the backend sends it (prescriptive, one extent). */
export function bareDcdAdd(s: QmpSession, offset: number, len: number): Promise<unknown> {
  return s.execute('cxl-add-dynamic-capacity', {
    path: peripheralPath(STATIC_DEVICE_ID),
    'host-id': 0,
    'selection-policy': 'prescriptive',
    region: 0,
    extents: [{ offset, len }],
  });
}

/** A hot-added LD: its memory backend over the pool's data object at `offset`, then the cxl-type3 on `port`. */
export function bareHotplugAdd(
  s: QmpSession,
  o: { pool: string; port: string; id: string; memId: string; offset: number; len: number },
): Promise<unknown> {
  // Sent together, as the backend sends them: QEMU runs them in order.
  return Promise.all([
    s.execute('object-add', {
      'qom-type': 'memory-backend-file',
      id: o.memId,
      'mem-path': dataObjectPath(o.pool),
      offset: o.offset,
      size: o.len,
      share: true,
    }),
    s.execute('device_add', {
      driver: 'cxl-type3',
      bus: o.port,
      'volatile-memdev': o.memId,
      id: o.id,
      sn: Number(ldSerial(o.pool, o.port)),
    }),
  ]);
}
