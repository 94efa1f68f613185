// The DC region's settings 5602h changes — block size and sanitize on
// release — and the block sizes 5600h offers: the pool's block and its
// doublings up to eight times it. A larger region block only coarsens what
// the FM may add (extents aligned to it); the pool and QEMU keep theirs.
import { FmError, ReturnCode, type SetRegionConfigRequest } from '../fmapi/index.js';
import type { Pool } from '../pool/index.js';

export interface RegionSetting {
  blockSize: number;
  sanitizeOnRelease: boolean;
}

/** Pool block × 1, 2, 4, 8, as long as it fits the pool. */
export function supportedBlockSizes(blockBytes: number, capacityBytes: number): number[] {
  return [1, 2, 4, 8].map((k) => k * blockBytes).filter((s) => s <= capacityBytes);
}

/** 5600h's mask: bit n = 2^n-byte blocks. */
export function blockSizeMask(sizes: number[]): bigint {
  return sizes.reduce((m, s) => m | (1n << BigInt(Math.log2(s))), 0n);
}

/** What the journal says was set for region 0, or the default: the pool's block, no sanitizing. */
export function loadRegionSetting(pool: Pool): RegionSetting {
  const set = pool.hasWriterLock ? pool.image.regionConfigs().find((r) => r.region === 0) : undefined;
  return set
    ? { blockSize: set.blockSize, sanitizeOnRelease: set.sanitizeOnRelease }
    : { blockSize: pool.state.header.blockBytes, sanitizeOnRelease: false };
}

/** Throws the spec's answer for a 5602h the device cannot take: `busy` says what holds extents. */
export function checkRegionConfig(req: SetRegionConfigRequest, sizes: number[], busy: string | null): void {
  if (req.region !== 0) throw new FmError(ReturnCode.InvalidInput, `region ${req.region} does not exist: the device has DC region 0 only`);
  if (!sizes.includes(req.blockSize)) {
    throw new FmError(ReturnCode.InvalidInput, `block size ${req.blockSize} is not one of the supported ${sizes.join(', ')} (5600h)`);
  }
  // r3.2 §7.6.7.6.3: a region that holds extents cannot be reconfigured (Unsupported).
  if (busy) throw new FmError(ReturnCode.Unsupported, `region 0 holds extents (${busy}); release them first`);
}
