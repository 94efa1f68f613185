// Public surface of the northbound: the Redfish/SSE/page server that
// `cxl-mhd serve --http` runs, its users-file helpers, a client of its event
// stream, and the contract types it consumes from the backend.
export { hashPassword, loadUsers, UsersFileError } from './auth.js';
export { readTls } from './certificate.js';
export { type EventRecord, eventPayload, type RedfishEvent } from './events.js';
export { CXL_MHD_MESSAGES, REGISTRY } from './redfish.js';
export { DEFAULT_LIMITS, isLoopback, type Limits, Northbound, type NorthboundOptions, parseListen } from './server.js';
export { type FollowOptions, followEvents } from './sse-client.js';
export type { BackendEvent, NorthboundDeps, SnapshotView, StampedEvent } from './types.js';
