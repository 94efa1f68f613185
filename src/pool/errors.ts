// The one error type the pool raises: a stable `code` for programs, a
// message written for the person at the terminal.
export type PoolErrorCode =
  | 'BAD_NAME'
  | 'BAD_SIZE'
  | 'BAD_BLOCK'
  | 'BAD_HEADS'
  | 'NO_SPACE'
  | 'EXISTS'
  | 'NOT_FOUND'
  | 'BAD_STATE'
  | 'OUT_OF_RANGE'
  | 'UNKNOWN_HEAD'
  | 'HEAD_NOT_ATTACHED'
  | 'HEAD_ATTACHED'
  | 'HEAD_HOLDS_BLOCKS'
  | 'CONFLICT'
  | 'NOT_HELD'
  | 'LOCKED'
  | 'CLOSED';

export class PoolError extends Error {
  override readonly name = 'PoolError';
  constructor(
    readonly code: PoolErrorCode,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
