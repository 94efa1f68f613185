// The one error type the pool raises: a stable `code` for programs, a
// message written for the person at the terminal.
import type { CodedError, ErrorCode } from '../errors/index.js';
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
  | 'CLOSED'
  /** A shm object that is not ours, or more open than the pool's mode. */
  | 'NOT_OWNED'
  /** The journal misses lines shared memory says were written (answered operations): refused unless accepted. */
  | 'JOURNAL_LOSS';

export class PoolError extends Error implements CodedError {
  override readonly name = 'PoolError';
  /** E.g. CXLMHD_ERR_POOL_EXISTS: the pool's `code`, in the namespace every CLI-reported error shares. */
  get errorCode(): ErrorCode {
    return `CXLMHD_ERR_POOL_${this.code}`;
  }
  constructor(
    readonly code: PoolErrorCode,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
