// The CCI header and the return codes, against hand-written bytes.
import { describe, expect, it } from 'vitest';
import { FmError, PayloadError } from '../../src/fmapi/errors.js';
import {
  Category,
  decodeHeader,
  encodeMessage,
  isReturnCode,
  MAX_PAYLOAD_FIELD,
  ReturnCode,
  returnCodeMessage,
  returnCodeName,
} from '../../src/fmapi/message.js';
import { hex, toHex } from '../helpers/fmapi-util.js';

describe('CCI header', () => {
  it('encodes a request as CXL r3.1 §7.6.3 (Figure 7-19) lays it out', () => {
    const m = encodeMessage({ category: Category.Request, tag: 0x2a, opcode: 0x5604, payload: hex('aa bb cc') });
    expect(toHex(m)).toBe(
      toHex(
        hex(`
          00        # category: request
          2a        # tag
          00        # reserved
          04        # command
          56        # command set
          03 00 00  # payload length 3, BO clear
          00 00     # return code
          00 00     # vendor status
          aa bb cc  # payload
        `),
      ),
    );
  });

  it('encodes a response with return code, vendor status, background bit and a 21-bit length', () => {
    const payload = new Uint8Array(0x10_0203);
    const m = encodeMessage({
      category: Category.Response,
      tag: 0xff,
      opcode: 0x0001,
      payload,
      returnCode: ReturnCode.InvalidPayloadLength,
      vendorStatus: 0xbeef,
      background: true,
    });
    expect(toHex(m.subarray(0, 12))).toBe(toHex(hex('01 ff 00 01 00 03 02 90 16 00 ef be')));
    expect(m.length).toBe(12 + 0x10_0203);
  });

  it('decodes every field and ignores reserved bits', () => {
    const h = decodeHeader(hex('f1 07 ee 03 56 10 00 a0 1d 00 34 12'));
    expect(h).toEqual({
      category: Category.Response,
      tag: 7,
      opcode: 0x5603,
      payloadLength: 0x10, // bits 22:21 of the length are reserved
      background: true,
      returnCode: ReturnCode.ResourcesExhausted,
      vendorStatus: 0x1234,
    });
  });

  it('round-trips through encode and decode', () => {
    for (const payloadLength of [0, 1, 255, 256, 65535, 65536, MAX_PAYLOAD_FIELD]) {
      const m = encodeMessage({ category: Category.Request, tag: 9, opcode: 0x5500, payload: new Uint8Array(payloadLength) });
      expect(decodeHeader(m)).toMatchObject({ category: 0, tag: 9, opcode: 0x5500, payloadLength, background: false });
    }
  });

  it('refuses what does not fit', () => {
    expect(() => encodeMessage({ category: Category.Request, tag: 256, opcode: 1 })).toThrow(RangeError);
    expect(() => encodeMessage({ category: Category.Request, tag: 0, opcode: 0x10000 })).toThrow(RangeError);
    expect(() => encodeMessage({ category: Category.Request, tag: 0, opcode: 1, payload: new Uint8Array(MAX_PAYLOAD_FIELD + 1) })).toThrow(
      RangeError,
    );
    expect(() => decodeHeader(new Uint8Array(11))).toThrow(RangeError);
  });
});

describe('return codes', () => {
  it('number as QEMU and CXL r3.1 Table 8-34 do', () => {
    expect(ReturnCode.Success).toBe(0);
    expect(ReturnCode.BackgroundStarted).toBe(1);
    expect(ReturnCode.InvalidInput).toBe(2);
    expect(ReturnCode.Unsupported).toBe(3);
    expect(ReturnCode.InternalError).toBe(4);
    expect(ReturnCode.RetryRequired).toBe(5);
    expect(ReturnCode.Busy).toBe(6);
    expect(ReturnCode.InvalidPhysicalAddress).toBe(0x0f);
    expect(ReturnCode.UnsupportedMailbox).toBe(0x15);
    expect(ReturnCode.InvalidPayloadLength).toBe(0x16);
    expect(ReturnCode.ResourcesExhausted).toBe(0x1d);
    expect(ReturnCode.InvalidExtentList).toBe(0x1e);
    expect(ReturnCode.RequestAbortNotSupported).toBe(0x20);
  });

  it('have a name and a message each, and unknown ones still print', () => {
    for (let c = 0; c <= 0x20; c++) {
      expect(isReturnCode(c)).toBe(true);
      expect(returnCodeName(c)).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(returnCodeMessage(c).length).toBeGreaterThan(5);
    }
    expect(isReturnCode(0x21)).toBe(false);
    expect(returnCodeName(0x21)).toBe('0x21');
    expect(returnCodeMessage(0x21)).toContain('0x21');
  });

  it('FmError reads like a sentence and keeps the code', () => {
    const e = new FmError(ReturnCode.InvalidPayloadLength, undefined, { opcode: 0x5604 });
    expect(e.code).toBe(0x16);
    expect(e.codeName).toBe('InvalidPayloadLength');
    expect(e.message).toBe(
      'command 5604h: the input payload length is invalid for the command or exceeds the maximum message size (InvalidPayloadLength)',
    );
    const p = new PayloadError(ReturnCode.InvalidInput, 'x: bad', 'x');
    expect(p).toBeInstanceOf(FmError);
    expect(p.field).toBe('x');
  });
});
