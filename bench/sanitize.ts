// Sanitize on release (5602h): what zeroing released blocks costs per GiB —
// pwrite of zeros into the pool's data object, as the backend does it
// (capacity/sanitize.ts) — next to a memset (TypedArray.fill) of the same
// size in this process's own memory. Both over pages already in memory, as
// a released allocation's are; 256 MiB each, 5 runs, medians, scaled to 1 GiB.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zeroRange } from '../src/capacity/sanitize.js';
import { dataObjectPath, Pool } from '../src/pool/index.js';
import { pct, type Report } from './common.js';

const MiB = 2 ** 20;
const SIZE = 256 * MiB;

export async function benchSanitize(report: Report): Promise<void> {
  const name = `bench-sanitize-${process.pid}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-'));
  let pool: Pool | null = null;
  try {
    pool = Pool.create({ name, stateDir, capacityBytes: SIZE, blockBytes: 2 * MiB, headCount: 1 });
    const fd = openSync(dataObjectPath(name), 'r+');
    const ones = new Uint8Array(4 * MiB).fill(0xa5);
    const mem = new Uint8Array(SIZE);
    const zeroRuns: number[] = [];
    const memsetRuns: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        for (let o = 0; o < SIZE; o += ones.length) writeSync(fd, ones, 0, ones.length, o);
        mem.fill(0xa5);
        let t = performance.now();
        zeroRange(fd, 0, SIZE);
        zeroRuns.push(performance.now() - t);
        t = performance.now();
        mem.fill(0);
        memsetRuns.push(performance.now() - t);
      }
    } finally {
      closeSync(fd);
    }
    const perGiB = (ms: number) => ms * ((1024 * MiB) / SIZE);
    report(
      'sanitize on release: zero 1 GiB of pool',
      perGiB(pct(zeroRuns, 50)),
      'ms',
      'memset 1 GiB (fill) in-process',
      perGiB(pct(memsetRuns, 50)),
      false,
    );
  } finally {
    pool?.close();
    if (Pool.exists(name)) Pool.destroy({ name, stateDir, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}
