// The errors a QMP session raises. Each has a stable `code` for programs and
// its own class for `instanceof`; messages name the command so a log line is
// enough to tell which step of an attach failed.
import type { CodedError } from '../errors/index.js';

export type QmpErrorCode = 'COMMAND' | 'TIMEOUT' | 'DISCONNECTED' | 'PROTOCOL' | 'CLOSED' | 'FD_PASSING';

export class QmpError extends Error implements CodedError {
  override readonly name: string = 'QmpError';
  readonly errorCode = 'CXLMHD_ERR_QMP';
  constructor(
    readonly code: QmpErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** QEMU answered the command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends QmpError {
  override readonly name = 'QmpCommandError';
  constructor(
    readonly command: string,
    /** QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('COMMAND', `QMP ${command} failed: ${desc} (${errorClass})`);
  }
}

/** No answer in time. The session stays open; see QmpSession.execute. */
export class QmpTimeoutError extends QmpError {
  override readonly name = 'QmpTimeoutError';
  constructor(
    /** The command, or `greeting`, or `event NAME` for waitForEvent. */
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super('TIMEOUT', `QMP ${what}: no answer within ${timeoutMs} ms`);
  }
}

/**
 * The session ended before the command could complete (or was already over
 * when it was issued). `reason` is the session's close reason.
 */
export class QmpDisconnectedError extends QmpError {
  override readonly name = 'QmpDisconnectedError';
  constructor(
    message: string,
    readonly reason?: Error,
  ) {
    super('DISCONNECTED', message, reason ? { cause: reason } : undefined);
  }
}

/** The peer broke the protocol; the session ended because of it. */
export class QmpProtocolError extends QmpError {
  override readonly name = 'QmpProtocolError';
  constructor(message: string) {
    super('PROTOCOL', `QMP protocol violation: ${message}`);
  }
}

/** The backend closed the session itself (QmpSession.close). */
export class QmpClosedError extends QmpError {
  override readonly name = 'QmpClosedError';
  constructor(message = 'QMP session closed by the backend') {
    super('CLOSED', message);
  }
}

/** Descriptors could not be attached; nothing of the command was sent. */
export class QmpFdPassingError extends QmpError {
  override readonly name = 'QmpFdPassingError';
  constructor(message: string, options?: ErrorOptions) {
    super('FD_PASSING', message, options);
  }
}
