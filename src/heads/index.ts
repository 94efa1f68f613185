// Public surface of heads: the serving backend and its head records.
export { Backend, type BackendOptions, type HeadPhase, type HeadRecord, headRecordsPath } from './backend.js';
export { discoverWindows, type PoolWindow, windowProblem } from './devices.js';
export { FMLD_CHARDEV_ID, FMLD_PORT_ID, FMLD_PORT_NAME, type FmldPort } from './fmld.js';
export { headSocketPath, type SocketAccess } from './listener.js';
