// What a pool's geometry may be: head count, block size and capacity rules,
// and whether /dev/shm can hold it. Checked before any object is made.
import { statfsSync } from 'node:fs';
import { CAPACITY_UNIT } from './constants.js';
import { PoolError } from './errors.js';
import { type Geometry, MAX_HEADS } from './layout.js';
import { MiB } from './units.js';

export function validateGeometry(g: Geometry, opts: { allowOvercommit?: boolean } = {}): void {
  const { capacityBytes, blockBytes, headCount } = g;
  if (!Number.isInteger(headCount) || headCount < 1 || headCount > MAX_HEADS) {
    throw new PoolError('BAD_HEADS', `head count ${headCount} is outside 1..${MAX_HEADS}`);
  }
  const pow2 = Number.isInteger(blockBytes) && blockBytes > 0 && (blockBytes & (blockBytes - 1)) === 0;
  if (!pow2 || blockBytes < 2 * MiB || blockBytes > 256 * MiB) {
    throw new PoolError('BAD_BLOCK', `block size ${blockBytes} must be a power of two from 2M to 256M`);
  }
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0 || capacityBytes % CAPACITY_UNIT !== 0) {
    throw new PoolError('BAD_SIZE', `capacity ${capacityBytes} must be a positive multiple of 256M (CXL capacities come in 256 MiB units)`);
  }
  if (!opts.allowOvercommit) {
    const fs = statfsSync('/dev/shm');
    const avail = fs.bavail * fs.bsize;
    if (capacityBytes > avail) {
      throw new PoolError(
        'NO_SPACE',
        `capacity ${capacityBytes} exceeds the ${avail} bytes free in /dev/shm; choose a smaller pool or enlarge /dev/shm`,
      );
    }
  }
}
