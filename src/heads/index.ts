// Public surface of heads: the serving backend and its head records.
export { Backend, type BackendOptions, type BackendSnapshot, type HeadPhase, type HeadRecord, headRecordsPath } from './backend.js';
export { discoverWindows, type PoolWindow, windowProblem } from './devices.js';
export { type BackendEvent, type BackendListener, EventBus, type StampedEvent } from './events.js';
export type { FmldPort } from './fmld.js';
export type { SocketAccess } from './listener.js';
