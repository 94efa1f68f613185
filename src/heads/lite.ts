// The light surface of heads: the pool's status (shared memory with the
// backend's head records) and the record readers, without the daemon, the
// sessions, capacity or QMP (docs/design.md §2). `status` and `events` read it.
export { type HeadPhase, type HeadRecord, type HttpRecord, readHeadRecords, readHttpRecord } from './records.js';
export { type HeadReport, type Status, statusOf } from './status.js';
