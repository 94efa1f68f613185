// Public surface of the QMP layer: one client session per QEMU head connection.
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
export {
  DEFAULT_MAX_ABANDONED,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_TIMEOUT_MS,
  type ExecuteOptions,
  type QemuVersion,
  type QmpEvent,
  type QmpEventHandler,
  type QmpGreeting,
  QmpSession,
  type QmpSessionOptions,
  type SendFdsFn,
  versionAtLeast,
} from './session.js';
