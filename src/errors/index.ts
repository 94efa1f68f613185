// The stable codes every error the CLI reports carries (as undici's
// UND_ERR_*), so programs and the CLI classify errors by `errorCode` or
// `instanceof`, never by name or message; and UsageError, for mistakes in
// what a person typed (CLI options, qemu-args windows). Each part keeps its
// own error class (PoolError, FmError, QmpError ...) and its own `code`
// vocabulary; `errorCode` is the one namespace shared across them.

export type ErrorCode =
  | 'CXLMHD_ERR_USAGE'
  | `CXLMHD_ERR_POOL_${string}`
  | 'CXLMHD_ERR_SOCKET_IN_USE'
  | 'CXLMHD_ERR_SOCKET_PATH'
  | 'CXLMHD_ERR_FM_DEVICE'
  | 'CXLMHD_ERR_FM_PAYLOAD'
  | 'CXLMHD_ERR_FM_CHANNEL'
  | 'CXLMHD_ERR_QMP';

/** An error whose message is written for the person at the terminal. */
export interface CodedError extends Error {
  readonly errorCode: ErrorCode;
}

export function isCodedError(e: unknown): e is CodedError {
  return (
    e instanceof Error && typeof (e as Partial<CodedError>).errorCode === 'string' && (e as CodedError).errorCode.startsWith('CXLMHD_ERR_')
  );
}

/** Something the user typed is wrong: an option, a size, a window. Printed as one line, exit 1. */
export class UsageError extends Error implements CodedError {
  override readonly name = 'UsageError';
  readonly errorCode = 'CXLMHD_ERR_USAGE';
  readonly code = 'CXLMHD_ERR_USAGE';
}

/** A listening socket's path cannot be served: another backend serves it, or it is not a socket. */
export class SocketPathError extends Error implements CodedError {
  override readonly name = 'SocketPathError';
  constructor(
    readonly errorCode: 'CXLMHD_ERR_SOCKET_IN_USE' | 'CXLMHD_ERR_SOCKET_PATH',
    message: string,
  ) {
    super(message);
  }
}
