// The errors of the FM-API layer. FmError is the one a backend throws to
// answer a command with a return code, and the one a client raises when a
// command comes back with one; PayloadError is a codec's verdict on bytes or
// fields, already carrying the return code the server answers with.
import type { CodedError, ErrorCode } from '../errors/index.js';
import { opcodeHex, ReturnCode, returnCodeMessage, returnCodeName } from './message.js';

export class FmError extends Error implements CodedError {
  /** The device (or codec) answered with a return code: `code` is that return code. */
  readonly errorCode: ErrorCode = 'CXLMHD_ERR_FM_DEVICE';
  override readonly name: string = 'FmError';
  constructor(
    readonly code: ReturnCode | number,
    message?: string,
    readonly opts: { opcode?: number; vendorStatus?: number } = {},
  ) {
    super(message ?? FmError.describe(code, opts.opcode));
  }

  get codeName(): string {
    return returnCodeName(this.code);
  }

  get opcode(): number | undefined {
    return this.opts.opcode;
  }

  get vendorStatus(): number {
    return this.opts.vendorStatus ?? 0;
  }

  static describe(code: number, opcode?: number): string {
    const where = opcode === undefined ? '' : `command ${opcodeHex(opcode)}: `;
    return `${where}${returnCodeMessage(code)} (${returnCodeName(code)})`;
  }
}

/**
 * Raised by codecs. `code` is InvalidPayloadLength when the byte count is
 * wrong for the command (including list counts that disagree with it) and
 * InvalidInput when a field's value is not allowed.
 */
export class PayloadError extends FmError {
  override readonly name = 'PayloadError';
  override readonly errorCode: ErrorCode = 'CXLMHD_ERR_FM_PAYLOAD';
  constructor(
    code: ReturnCode.InvalidPayloadLength | ReturnCode.InvalidInput,
    message: string,
    readonly field?: string,
  ) {
    super(code, message);
  }
}

export function badLength(message: string): PayloadError {
  return new PayloadError(ReturnCode.InvalidPayloadLength, message);
}

export function badField(field: string, message: string): PayloadError {
  return new PayloadError(ReturnCode.InvalidInput, `${field}: ${message}`, field);
}
