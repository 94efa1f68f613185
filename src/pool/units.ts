// Human sizes ("256M", "4G", "1T", "2MiB", "1048576") to bytes and back.
// Binary units throughout: CXL capacities are powers of two.
import { PoolError } from './errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** The bytes a size text names (0 allowed), or null when it is not a size; parseSize says why in words. */
export function sizeBytes(text: string): number | null {
  const m = /^\s*(\d+)\s*([KMGTP]?)(?:i?B)?\s*$/i.exec(text);
  const unit = m ? UNITS[(m[2] ?? '').toUpperCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

export function parseSize(text: string, what = 'size'): number {
  const bytes = sizeBytes(text);
  if (bytes === null) {
    throw new PoolError('BAD_SIZE', `${what} "${text}" is not a size: use a whole number with an optional unit, e.g. 256M, 4G, 1T`);
  }
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new PoolError('BAD_SIZE', `${what} "${text}" must be greater than zero and below 8 PiB`);
  }
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)}M`;
  return `${bytes}`;
}
