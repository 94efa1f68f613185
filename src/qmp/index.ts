// Public surface of the QMP layer: one client session per QEMU head connection.
export { DEFAULT_MAX_ABANDONED, DEFAULT_TIMEOUT_MS } from './commands.js';
export {
  QmpClosedError,
  QmpCommandError,
  QmpDisconnectedError,
  QmpError,
  type QmpErrorCode,
  QmpFdPassingError,
  QmpProtocolError,
  QmpTimeoutError,
} from './errors.js';
export type { SendFdsFn } from './outbox.js';
export { DEFAULT_MAX_LINE_BYTES, type QemuVersion, type QmpEvent, type QmpGreeting } from './parser.js';
export {
  type ExecuteOptions,
  type QmpEventHandler,
  QmpSession,
  type QmpSessionOptions,
  versionAtLeast,
} from './session.js';
