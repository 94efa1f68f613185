// Sanitize on release: zeroes pool bytes before the blocks can be given to
// another head. Written through the data object's file (pwrite of a zero
// buffer): the pool's bytes live in /dev/shm, so this is a memset into the
// page cache, without mapping the pool into the backend.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { PoolState } from '../pool/index.js';

const CHUNK = 4 * 2 ** 20;
let zeros: Uint8Array | undefined;

/** Writes `len` zero bytes at `offset` of the open file `fd`. */
export function zeroRange(fd: number, offset: number, len: number): void {
  zeros ??= new Uint8Array(CHUNK);
  for (let done = 0; done < len; ) {
    const n = writeSync(fd, zeros, 0, Math.min(CHUNK, len - done), offset + done);
    done += n;
  }
}

/**
 * Zeroes, in `ranges` (pool bytes), the blocks that are free once `leaving`
 * lets go: no other holder, and no tag reference unless `dropRef` is that
 * reference going. Returns the bytes zeroed.
 */
export function zeroReturning(
  dataPath: string,
  state: PoolState,
  ranges: { offset: number; len: number }[],
  leaving: { head?: number; dropRef?: boolean },
): number {
  const bb = state.header.blockBytes;
  const runs: { offset: number; len: number }[] = [];
  for (const r of ranges) {
    for (let b = r.offset / bb; b < (r.offset + r.len) / bb; b++) {
      const info = state.block(b);
      const others = info.holders.filter((h) => h !== leaving.head);
      if (others.length > 0 || (info.referenced && !leaving.dropRef)) continue;
      const last = runs[runs.length - 1];
      if (last && last.offset + last.len === b * bb) last.len += bb;
      else runs.push({ offset: b * bb, len: bb });
    }
  }
  if (runs.length === 0) return 0;
  const fd = openSync(dataPath, 'r+');
  try {
    for (const r of runs) zeroRange(fd, r.offset, r.len);
  } finally {
    closeSync(fd);
  }
  return runs.reduce((n, r) => n + r.len, 0);
}
