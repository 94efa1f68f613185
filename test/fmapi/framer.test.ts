// The stream framer: messages split anywhere, packed together, refused when
// oversize or of the wrong category, and the reset that follows.
import { describe, expect, it } from 'vitest';
import { FrameError, Framer } from '../../src/fmapi/framer.js';
import { Category, decodeHeader, encodeMessage } from '../../src/fmapi/message.js';
import { hex, prng, toHex } from '../helpers/fmapi-util.js';

const req = (tag: number, n: number) =>
  encodeMessage({ category: Category.Request, tag, opcode: 0x5603, payload: new Uint8Array(n).fill(tag) });

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

describe('Framer', () => {
  it('assembles messages fed one byte at a time', () => {
    const f = new Framer();
    const msgs = [req(1, 0), req(2, 12), req(3, 1000)];
    const out: Uint8Array[] = [];
    for (const b of concat(msgs)) {
      for (const item of f.push(Uint8Array.of(b))) out.push(item as Uint8Array);
    }
    expect(out.map(toHex)).toEqual(msgs.map(toHex));
    expect(f.buffered).toBe(0);
  });

  it('returns many messages from one chunk, keeping a partial tail', () => {
    const f = new Framer();
    const msgs = Array.from({ length: 50 }, (_, i) => req(i, i * 3));
    const all = concat(msgs);
    const first = f.push(all.subarray(0, all.length - 5));
    expect(first.length).toBe(49);
    expect(f.buffered).toBe(12 + 49 * 3 - 5);
    const rest = f.push(all.subarray(all.length - 5));
    expect([...first, ...rest].map((m) => toHex(m as Uint8Array))).toEqual(msgs.map(toHex));
  });

  it('survives random chunking', () => {
    const r = prng(7);
    const msgs = Array.from({ length: 300 }, (_, i) => req(i & 0xff, r.int(200)));
    const all = concat(msgs);
    const f = new Framer();
    const out: Uint8Array[] = [];
    for (let at = 0; at < all.length; ) {
      const n = 1 + r.int(64);
      out.push(...(f.push(all.subarray(at, at + n)) as Uint8Array[]));
      at += n;
    }
    expect(out.map(toHex)).toEqual(msgs.map(toHex));
  });

  it('hands out copies that later input does not overwrite', () => {
    const f = new Framer();
    const chunk = concat([req(1, 4), req(2, 4)]);
    const [a] = f.push(chunk) as Uint8Array[];
    chunk.fill(0xee);
    expect(decodeHeader(a!).tag).toBe(1);
  });

  it('refuses an oversize length as soon as the header is complete, and resets', () => {
    const f = new Framer({ maxPayload: 100 });
    const head = hex('00 05 00 03 56 65 00 00 00 00 00 00'); // 101-byte payload announced
    expect(f.push(head.subarray(0, 11))).toEqual([]);
    const [err, ...rest] = f.push(concat([head.subarray(11), new Uint8Array(20)]));
    expect(rest).toEqual([]);
    expect(err).toBeInstanceOf(FrameError);
    const e = err as FrameError;
    expect(e.kind).toBe('oversize');
    expect(e.header).toMatchObject({ tag: 5, opcode: 0x5603, payloadLength: 101 });
    expect(e.discarded).toBe(12 + 20);
    expect(f.buffered).toBe(0);
    // Exactly the maximum passes.
    const ok = encodeMessage({ category: Category.Request, tag: 6, opcode: 1, payload: new Uint8Array(100) });
    expect(f.push(ok).map((m) => toHex(m as Uint8Array))).toEqual([toHex(ok)]);
  });

  it('keeps the messages before a refused header and drops the rest of the chunk', () => {
    const f = new Framer({ expect: Category.Request });
    const bad = encodeMessage({ category: Category.Response, tag: 9, opcode: 1 });
    const out = f.push(concat([req(1, 2), req(2, 2), bad, req(3, 2)]));
    expect(out.length).toBe(3);
    expect(decodeHeader(out[0] as Uint8Array).tag).toBe(1);
    expect(decodeHeader(out[1] as Uint8Array).tag).toBe(2);
    expect(out[2]).toBeInstanceOf(FrameError);
    expect((out[2] as FrameError).kind).toBe('category');
    expect((out[2] as FrameError).discarded).toBe(12 + 14);
    // The next chunk starts clean.
    expect(f.push(req(4, 0)).map((m) => decodeHeader(m as Uint8Array).tag)).toEqual([4]);
  });

  it('ignores the reserved category bits when checking the category', () => {
    const f = new Framer({ expect: Category.Request });
    const m = req(1, 0);
    m[0] = 0xf0;
    expect(f.push(m)[0]).toBeInstanceOf(Uint8Array);
  });

  it('reset() drops a partial message', () => {
    const f = new Framer();
    f.push(req(1, 50).subarray(0, 30));
    expect(f.reset()).toBe(30);
    expect(f.buffered).toBe(0);
    expect(f.push(req(2, 0)).length).toBe(1);
  });

  it('refuses a maximum outside the 21-bit field', () => {
    expect(() => new Framer({ maxPayload: 0x20_0000 })).toThrow(RangeError);
    expect(() => new Framer({ maxPayload: -1 })).toThrow(RangeError);
  });
});
