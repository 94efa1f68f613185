// Public surface of the daemon's start-up: `serve` (pool, backend,
// northbound, signals, readiness) and the check of the northbound's options.
export { checkNorthbound, type HttpServeOptions, type NorthboundAt } from './northbound.js';
export { type ServeOptions, serve } from './serve.js';
