// The light surface of pool: sizes and the shared constants, importable
// without the shm objects, the journal or the addon (docs/design.md §2).
// The FM-API codecs and the guest's FM client read it.
export { CAPACITY_UNIT, DEFAULT_BLOCK_BYTES, ZERO_TAG } from './constants.js';
export { formatSize, GiB, MiB, parseSize, sizeBytes } from './units.js';
