// Public surface of the pool: the shared-memory state of one CXL MHD pool.

export { CAPACITY_UNIT, DEFAULT_BLOCK_BYTES, ZERO_TAG } from './constants.js';
export { PoolError, type PoolErrorCode } from './errors.js';
export { checkInvariants, type Finding, type FsckReport, fsck } from './fsck.js';
export { validateGeometry } from './geometry.js';
export { type ImageGrant, type ImageReference, type ImageRegionConfig, JournalImage, type Snapshot, type UnfinishedAdd } from './image.js';
export { Journal, type LoadedImage, loadImage, readJournal, replayJournal } from './journal.js';
export {
  type FmPiece,
  type GrantMeta,
  type JournalEntry,
  type JournalEvent,
  type JournalOp,
  type JournalResult,
  type NoteEvent,
  type NoteName,
  noteOf,
} from './journal-events.js';
export { type Geometry, type Header, HeadState, MAX_HEADS } from './layout.js';
export {
  controlSocketPath,
  dataObjectPath,
  defaultRunDir,
  defaultStateDir,
  fmSocketPath,
  headRecordsPath,
  headSocketPath,
  httpRecordPath,
  journalPath,
  lsaObjectPath,
  lsaObjectsOf,
  northboundStatePath,
  type PoolDirs,
  poolRunDir,
  resolveDirs,
  shmDataName,
  shmStateName,
  snapshotPath,
  subscriptionsStatePath,
  validatePoolName,
} from './paths.js';
export { COMPACT_FLOOR, type CreateOptions, Pool } from './pool.js';
export { checkSafeDir, makeSafeDir } from './safedir.js';
export { type BlockInfo, type BlockRange, type ClaimOptions, type HeadInfo, type LeaseInfo, PoolState } from './state.js';
export { type HeadStatus, type PoolStatus, poolStatus } from './status.js';
export { formatSize, GiB, MiB, parseSize, sizeBytes } from './units.js';
