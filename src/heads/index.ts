// Public surface of heads: the serving backend and its head records.
export { Backend, type BackendOptions, type HeadPhase, type HeadRecord, headRecordsPath } from './backend.js';
export { discoverWindows, type PoolWindow, windowProblem } from './devices.js';
export type { FmldPort } from './fmld.js';
export type { SocketAccess } from './listener.js';
