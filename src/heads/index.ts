// Public surface of heads: the serving backend (daemon), its events, its
// head records, the pool's status with them, and the journal readers recovery uses.

export { type ControlReply, type ControlRequest, controlRequest } from './control.js';
export { Backend, type BackendOptions, type BackendSnapshot } from './daemon.js';
export { discoverWindows, type PoolWindow, windowProblem } from './devices.js';
export { type BackendEvent, type BackendListener, EventBus, type StampedEvent } from './events.js';
export type { FmldPort } from './fmld.js';
export {
  INJECT_KINDS,
  INJECT_LOGS,
  INJECT_RECORDS,
  type InjectKind,
  type InjectRequest,
  injectArgs,
  injectFieldNames,
} from './inject.js';
export type { SocketAccess } from './listener.js';
export { type HeadPhase, type HeadRecord, type HttpRecord, readHeadRecords, readHttpRecord } from './records.js';
export { grantsFromJournal, unfinishedAdds } from './recovery.js';
export type { SessionState } from './session.js';
export { type HeadReport, type Status, statusOf } from './status.js';
