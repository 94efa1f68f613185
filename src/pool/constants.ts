// The constants every layer shares (FM-API, capacity, status, the command
// line), apart from the geometry rules so the light surface (lite.ts) can
// carry them.
import { MiB } from './units.js';

export const DEFAULT_BLOCK_BYTES = 2 * MiB;
/** CXL capacities come in 256 MiB units: the pool, windows and hot-added LDs. */
export const CAPACITY_UNIT = 256 * MiB;
/** The nil UUID: an allocation without a tag (FM-API Tag field, journal, status). */
export const ZERO_TAG = '00000000-0000-0000-0000-000000000000';
