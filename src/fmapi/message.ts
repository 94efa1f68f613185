// The CCI message (CXL r3.1 §7.6.3, Figure 7-19): the 12-byte header every FM-API
// request and response carries, and the command return codes (Table 8-34)
// with the words a person reads when one comes back.

export const HEADER_SIZE = 12;
/** The header's length field is 21 bits wide (CXL r3.1 §7.6.3, Figure 7-19); bits 22:21 are reserved. */
export const MAX_PAYLOAD_FIELD = 0x1f_ffff;
const LENGTH_MASK = 0x1f_ffff;
const BACKGROUND_BIT = 1 << 23;

export enum Category {
  Request = 0,
  Response = 1,
}

export enum ReturnCode {
  Success = 0x00,
  BackgroundStarted = 0x01,
  InvalidInput = 0x02,
  Unsupported = 0x03,
  InternalError = 0x04,
  RetryRequired = 0x05,
  Busy = 0x06,
  MediaDisabled = 0x07,
  FwTransferInProgress = 0x08,
  FwTransferOutOfOrder = 0x09,
  FwVerificationFailed = 0x0a,
  InvalidSlot = 0x0b,
  ActivationFailedRolledBack = 0x0c,
  ActivationFailedResetRequired = 0x0d,
  InvalidHandle = 0x0e,
  InvalidPhysicalAddress = 0x0f,
  InjectPoisonLimitReached = 0x10,
  PermanentMediaFailure = 0x11,
  Aborted = 0x12,
  InvalidSecurityState = 0x13,
  IncorrectPassphrase = 0x14,
  UnsupportedMailbox = 0x15,
  InvalidPayloadLength = 0x16,
  InvalidLog = 0x17,
  Interrupted = 0x18,
  UnsupportedFeatureVersion = 0x19,
  UnsupportedFeatureSelectionValue = 0x1a,
  FeatureTransferInProgress = 0x1b,
  FeatureTransferOutOfOrder = 0x1c,
  ResourcesExhausted = 0x1d,
  InvalidExtentList = 0x1e,
  TransferOutOfOrder = 0x1f,
  RequestAbortNotSupported = 0x20,
}

const MESSAGES: Record<ReturnCode, string> = {
  [ReturnCode.Success]: 'success',
  [ReturnCode.BackgroundStarted]: 'background operation started',
  [ReturnCode.InvalidInput]: 'one or more command inputs are invalid',
  [ReturnCode.Unsupported]: 'the command is not supported',
  [ReturnCode.InternalError]: 'the command was not completed because of an internal device error',
  [ReturnCode.RetryRequired]: 'the command was not completed because of a temporary error; a retry may succeed',
  [ReturnCode.Busy]: 'the device is busy with a background operation; retry when it completes',
  [ReturnCode.MediaDisabled]: 'the command needs media access and the media is disabled',
  [ReturnCode.FwTransferInProgress]: 'only one firmware package can be transferred at a time',
  [ReturnCode.FwTransferOutOfOrder]: 'the firmware package transfer was aborted: content arrived out of order',
  [ReturnCode.FwVerificationFailed]: 'the firmware package failed verification and was not saved',
  [ReturnCode.InvalidSlot]: 'the firmware slot is not supported or not valid for this operation',
  [ReturnCode.ActivationFailedRolledBack]: 'the new firmware failed to activate and rolled back',
  [ReturnCode.ActivationFailedResetRequired]: 'the new firmware failed to activate; a cold reset is required',
  [ReturnCode.InvalidHandle]: 'one or more event record handles were invalid or out of order',
  [ReturnCode.InvalidPhysicalAddress]: 'the physical address is invalid',
  [ReturnCode.InjectPoisonLimitReached]: 'the poison injection limit has been reached',
  [ReturnCode.PermanentMediaFailure]: 'poison could not be cleared because of a permanent media failure',
  [ReturnCode.Aborted]: 'the background command was aborted',
  [ReturnCode.InvalidSecurityState]: 'the command is invalid in the current security state',
  [ReturnCode.IncorrectPassphrase]: 'the passphrase does not match',
  [ReturnCode.UnsupportedMailbox]: 'the command is not supported on the mailbox or CCI it was issued on',
  [ReturnCode.InvalidPayloadLength]: 'the input payload length is invalid for the command or exceeds the maximum message size',
  [ReturnCode.InvalidLog]: 'the log page is not supported or not valid',
  [ReturnCode.Interrupted]: 'the command was interrupted by an asynchronous event',
  [ReturnCode.UnsupportedFeatureVersion]: 'the feature version is not supported',
  [ReturnCode.UnsupportedFeatureSelectionValue]: 'the feature selection value is not supported',
  [ReturnCode.FeatureTransferInProgress]: 'only one feature data transfer can be in progress per feature',
  [ReturnCode.FeatureTransferOutOfOrder]: 'the feature data transfer was aborted: content arrived out of order',
  [ReturnCode.ResourcesExhausted]: 'the device cannot perform the operation: resources are exhausted',
  [ReturnCode.InvalidExtentList]: 'the dynamic capacity extent list contains an invalid starting DPA or length',
  [ReturnCode.TransferOutOfOrder]: 'the input data transfer was aborted: it arrived out of order',
  [ReturnCode.RequestAbortNotSupported]: 'the background operation does not support Request Abort',
};

export function isReturnCode(code: number): code is ReturnCode {
  return Object.hasOwn(MESSAGES, code);
}

/** "InvalidInput", or "0x2a" for a code this table does not know. */
export function returnCodeName(code: number): string {
  return isReturnCode(code) ? ReturnCode[code] : `0x${code.toString(16).padStart(2, '0')}`;
}

export function returnCodeMessage(code: number): string {
  return isReturnCode(code) ? MESSAGES[code] : `unknown return code 0x${code.toString(16)}`;
}

export interface MessageHeader {
  category: Category | number;
  tag: number;
  /** command_set << 8 | command */
  opcode: number;
  payloadLength: number;
  background: boolean;
  returnCode: number;
  vendorStatus: number;
}

export interface MessageInit {
  category: Category;
  tag: number;
  opcode: number;
  payload?: Uint8Array;
  returnCode?: number;
  vendorStatus?: number;
  background?: boolean;
}

function checkUint(what: string, v: number, bits: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new RangeError(`${what} ${v} does not fit in ${bits} bits`);
}

export function encodeMessage(m: MessageInit): Uint8Array {
  const payload = m.payload ?? new Uint8Array(0);
  checkUint('tag', m.tag, 8);
  checkUint('opcode', m.opcode, 16);
  checkUint('category', m.category, 4);
  checkUint('return code', m.returnCode ?? 0, 16);
  checkUint('vendor status', m.vendorStatus ?? 0, 16);
  if (payload.length > MAX_PAYLOAD_FIELD) throw new RangeError(`payload of ${payload.length} bytes exceeds the 21-bit length field`);
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  v.setUint8(0, m.category);
  v.setUint8(1, m.tag);
  v.setUint8(3, m.opcode & 0xff);
  v.setUint8(4, m.opcode >> 8);
  const len = payload.length | (m.background ? BACKGROUND_BIT : 0);
  v.setUint16(5, len & 0xffff, true);
  v.setUint8(7, len >>> 16);
  v.setUint16(8, m.returnCode ?? 0, true);
  v.setUint16(10, m.vendorStatus ?? 0, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Reads the first 12 bytes; the caller makes sure there are that many. */
export function decodeHeader(bytes: Uint8Array): MessageHeader {
  if (bytes.length < HEADER_SIZE) throw new RangeError(`a CCI header needs ${HEADER_SIZE} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const len = v.getUint16(5, true) | (v.getUint8(7) << 16);
  return {
    // Bits 7:4 of the category byte are reserved.
    category: v.getUint8(0) & 0x0f,
    tag: v.getUint8(1),
    opcode: (v.getUint8(4) << 8) | v.getUint8(3),
    payloadLength: len & LENGTH_MASK,
    background: (len & BACKGROUND_BIT) !== 0,
    returnCode: v.getUint16(8, true),
    vendorStatus: v.getUint16(10, true),
  };
}

export function messagePayload(frame: Uint8Array): Uint8Array {
  return frame.subarray(HEADER_SIZE);
}

export function opcodeHex(opcode: number): string {
  return `${opcode.toString(16).padStart(4, '0')}h`;
}
