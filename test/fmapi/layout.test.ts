// The layout language: a payload declared once drives its encoder, its
// decoder and its TypeScript type. Per command, random values drawn from the
// declared field domains round-trip, reserved bits are written as zero and
// ignored on read; a small hand-laid struct pins the engine to bytes; the
// payload types are checked against what the CXL r3.1 tables say (by tsc);
// and tables that contradict themselves are refused at load.
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type AddRequest,
  COMMANDS,
  type CommandName,
  type DcdInfoResponse,
  type Empty,
  type Extent,
  type ExtentListResponse,
  type HeadInfoRecord,
  type IdentifyResponse,
  type MhdInfoResponse,
  type RegionConfigResponse,
  type ReleaseRequest,
  type RemovalPolicy,
  type SelectionPolicy,
} from '../../src/fmapi/commands.js';
import { PayloadError } from '../../src/fmapi/errors.js';
import {
  bits,
  codec,
  type Domain,
  flag,
  formatUuid,
  list,
  type Of,
  oneOf,
  type Struct,
  struct,
  tail,
  u8,
  u16,
  u32,
  u64,
} from '../../src/fmapi/layout.js';
import { ReturnCode } from '../../src/fmapi/message.js';
import { hex, prng, toHex } from '../helpers/fmapi-util.js';

type Rng = ReturnType<typeof prng>;
type Value = Record<string, unknown>;

/** A value from a field's declared domain, edges included. */
function draw(r: Rng, d: Domain): unknown {
  switch (d.type) {
    case 'boolean':
      return r.next() < 0.5;
    case 'uuid':
      return formatUuid(r.bytes(16));
    case 'bitmap': {
      // Ascending and unique, as the decoder gives them back; the edges (none, all) now and then.
      if (r.next() < 0.2) return r.next() < 0.5 ? [] : Array.from({ length: d.bits }, (_, i) => i);
      return Array.from({ length: d.bits }, (_, i) => i).filter(() => r.next() < 0.1);
    }
    case 'bits64':
      return r.next() < 0.2 ? r.pick([0n, 2n ** 64n - 1n]) : Buffer.from(r.bytes(8)).readBigUInt64LE();
    case 'int': {
      if (d.values) return r.pick(d.values);
      const step = d.unit ?? 1;
      const hi = Math.floor(d.max / step);
      const lo = Math.ceil(d.min / step);
      const k = r.next() < 0.2 ? r.pick([lo, hi]) : Math.min(hi, lo + Math.floor(r.next() * (hi - lo + 1)));
      return k * step;
    }
  }
}

function sample(r: Rng, s: Struct): Value {
  const out: Value = {};
  for (const [key, d] of Object.entries(s.fields)) {
    if (d.kind === 'scalar') {
      out[key] = draw(r, d.domain);
      continue;
    }
    const countMax = d.count.domain.type === 'int' ? d.count.domain.max : 0;
    const n = r.int(Math.min(d.inline?.max ?? 6, countMax) + 1);
    const rec = d.record;
    out[key] = Array.from({ length: n }, () => (rec.kind === 'struct' ? sample(r, rec) : draw(r, rec.domain)));
  }
  return out;
}

/** What the rules between fields (a codec's `check`) ask of a random value. */
const FIXUPS: Partial<Record<`${CommandName}.${'request' | 'response'}`, (v: Value, r: Rng) => void>> = {
  'hostRegionConfig.response': (v) => {
    v.numRegions = Math.max(v.numRegions as number, (v.regions as unknown[]).length);
  },
  'extentList.response': (v, r) => {
    v.startIndex = r.int(1000);
    v.totalExtents = (v.startIndex as number) + (v.extents as unknown[]).length + r.int(1000);
  },
  'listTags.response': (v, r) => {
    v.totalTags = (v.tags as unknown[]).length + r.int(1000);
  },
};

/** Bits some field of `s` covers in `bytes`, an encoding of it: everything else is reserved. */
function covered(s: Struct, bytes: Uint8Array): Uint8Array {
  const mask = new Uint8Array(bytes.length);
  const mark = (byte: number, [first, count]: readonly [number, number]) => {
    for (let b = first; b < first + count; b++) mask[byte + (b >> 3)]! |= 1 << (b & 7);
  };
  const tailAt = bytes.length - s.tailSize;
  for (const d of Object.values(s.fields)) {
    if (d.kind === 'scalar') {
      mark((d.tail ? tailAt : 0) + d.at, d.bits);
      continue;
    }
    mark(d.count.at, d.count.bits);
    const n = Number(Buffer.from(bytes).readUIntLE(d.count.at, d.count.bits[1] / 8));
    const base = d.inline?.at ?? s.size;
    const rec = d.record;
    for (let i = 0; i < n; i++) {
      if (rec.kind === 'scalar') mark(base + i * d.size, rec.bits);
      else for (const f of Object.values(rec.fields)) if (f.kind === 'scalar') mark(base + i * d.size + f.at, f.bits);
    }
  }
  return mask;
}

function listBytes(s: Struct, v: Value): number {
  const l = s.trailing === undefined ? undefined : s.fields[s.trailing];
  return l?.kind === 'list' ? (v[s.trailing!] as unknown[]).length * l.size : 0;
}

describe('every command, from its declared layout alone', () => {
  const sides = (Object.keys(COMMANDS) as CommandName[]).flatMap((name) =>
    (['request', 'response'] as const).map((side) => ({ name, side })),
  );
  for (const { name, side } of sides) {
    it(`${name} ${side}: 300 random values round-trip; reserved bits are written as zero and ignored on read`, () => {
      const r = prng(0x1a_0000 + COMMANDS[name].opcode + (side === 'response' ? 0x1_0000 : 0));
      const c = COMMANDS[name][side] as { layout: Struct; encode(v: unknown): Uint8Array; decode(b: Uint8Array): unknown };
      const s = c.layout;
      for (let i = 0; i < 300; i++) {
        const v = sample(r, s);
        FIXUPS[`${name}.${side}`]?.(v, r);
        const bytes = c.encode(v);
        expect(bytes.length).toBe(s.size + s.tailSize + listBytes(s, v));
        expect(c.decode(bytes)).toEqual(v);
        const mask = covered(s, bytes);
        expect(bytes.every((b, k) => (b & ~mask[k]!) === 0)).toBe(true);
        const noisy = bytes.map((b, k) => b | (r.int(256) & ~mask[k]!));
        expect(c.decode(noisy)).toEqual(v);
      }
    });
  }
});

describe('one declaration drives both directions', () => {
  enum Color {
    Red = 1,
    Blue = 4,
  }
  const RECORD = struct('Rec', 4, { a: u16(0), b: u8(3) });
  const DEMO = struct(
    'Demo',
    20,
    {
      id: u16(0),
      color: oneOf(bits(2, 0, 3), Color, 'a color'),
      on: flag(2, 7),
      big: u64(8),
      small: list(u8(3), u8(0), { at: 4, max: 4 }),
      recs: list(u8(19), RECORD),
      sum: tail(u32(0)),
    },
    4,
  );
  const demo = codec(DEMO);
  const value: Of<typeof DEMO> = {
    id: 0x1234,
    color: Color.Blue,
    on: true,
    big: 2 ** 40 + 5,
    small: [9, 8],
    recs: [{ a: 0xbeef, b: 7 }],
    sum: 0xa0b0c0d,
  };
  const bytes = hex(`
    34 12        # id
    84           # on (bit 7) | color 4 (bits 2:0)
    02           # small count
    09 08 00 00  # small, two of four slots
    05 00 00 00 00 01 00 00  # big 2^40 + 5
    00 00 00     # reserved
    01           # recs count
    ef be 00 07  # recs[0]: a, reserved, b
    0d 0c 0b 0a  # tail: sum
  `);

  it('encodes and decodes the same bytes', () => {
    expect(toHex(demo.encode(value))).toBe(toHex(bytes));
    expect(demo.decode(bytes)).toEqual(value);
  });

  it('types the value from the table', () => {
    // An enum-typed field comes out as the union of the enum's members, which
    // is the enum to the compiler but not to expect-type's nested comparison,
    // so it is compared on its own.
    expectTypeOf<Of<typeof DEMO>['color']>().toEqualTypeOf<Color>();
    expectTypeOf<Omit<Of<typeof DEMO>, 'color'>>().toEqualTypeOf<{
      id: number;
      on: boolean;
      big: number;
      small: number[];
      recs: { a: number; b: number }[];
      sum: number;
    }>();
    expectTypeOf<Of<typeof RECORD>>().toEqualTypeOf<{ a: number; b: number }>();
  });

  it('checks each field on both sides', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        if (e instanceof PayloadError) return e.code;
        throw e;
      }
      return undefined;
    };
    expect(code(() => demo.encode({ ...value, color: 2 as Color }))).toBe(ReturnCode.InvalidInput);
    expect(code(() => demo.encode({ ...value, small: [1, 2, 3, 4, 5] }))).toBe(ReturnCode.InvalidInput);
    expect(code(() => demo.encode({ ...value, recs: Array(256).fill({ a: 0, b: 0 }) }))).toBe(ReturnCode.InvalidInput);
    const badColor = bytes.slice();
    badColor[2] = 0x82;
    expect(code(() => demo.decode(badColor))).toBe(ReturnCode.InvalidInput);
    const tooMany = bytes.slice();
    tooMany[3] = 5;
    expect(code(() => demo.decode(tooMany))).toBe(ReturnCode.InvalidInput);
    expect(code(() => demo.decode(bytes.subarray(1)))).toBe(ReturnCode.InvalidPayloadLength);
  });
});

describe('the payload types are what the CXL r3.1 tables say', () => {
  it('(checked by tsc)', () => {
    expectTypeOf<Extent>().toEqualTypeOf<{ startDpa: number; len: number; tag: string; sharedSeq: number }>();
    expectTypeOf<AddRequest['selectionPolicy']>().toEqualTypeOf<SelectionPolicy>();
    expectTypeOf<Omit<AddRequest, 'selectionPolicy'>>().toEqualTypeOf<{
      hostId: number;
      region: number;
      length: number;
      tag: string;
      extents: Extent[];
    }>();
    expectTypeOf<ReleaseRequest['removalPolicy']>().toEqualTypeOf<RemovalPolicy>();
    expectTypeOf<Omit<ReleaseRequest, 'removalPolicy'>>().toEqualTypeOf<{
      hostId: number;
      forced: boolean;
      region: number;
      length: number;
      tag: string;
      extents: Extent[];
    }>();
    expectTypeOf<IdentifyResponse>().toEqualTypeOf<{
      vendorId: number;
      deviceId: number;
      subsystemVendorId: number;
      subsystemId: number;
      serialNumber: bigint;
      maxMessageSizeLog2: number;
      componentType: number;
    }>();
    expectTypeOf<MhdInfoResponse>().toEqualTypeOf<{ numLds: number; numHeads: number; startLd: number; ldMap: number[] }>();
    expectTypeOf<HeadInfoRecord>().toHaveProperty('linkStateFlags').toEqualTypeOf<number>();
    expectTypeOf<DcdInfoResponse>().toEqualTypeOf<{
      numHosts: number;
      addPolicyMask: number;
      removalPolicyMask: number;
      sanitizeMask: number;
      totalCapacityBytes: number;
      regionBlockSizeMasks: bigint[];
    }>();
    expectTypeOf<RegionConfigResponse['regions'][number]>().toEqualTypeOf<{
      base: number;
      decodeLength: number;
      length: number;
      blockSize: number;
      dsmasFlags: number;
      sanitizeOnRelease: number;
    }>();
    expectTypeOf<ExtentListResponse>().toEqualTypeOf<{
      hostId: number;
      startIndex: number;
      extents: Extent[];
      totalExtents: number;
      generation: number;
    }>();
    expectTypeOf(COMMANDS.initiateAdd.response.decode).returns.toEqualTypeOf<Empty>();
  });
});

describe('a table that contradicts itself is refused at load', () => {
  const REC = struct('R', 2, { x: u16(0) });
  const cases: [string, () => unknown, RegExp][] = [
    ['overlapping fields', () => struct('S', 4, { a: u16(0), b: u8(1) }), /S\.b overlaps another field/],
    ['a field past the end', () => struct('S', 4, { a: u32(2) }), /S\.a lies outside its 4 bytes/],
    ['a negative offset', () => struct('S', 4, { a: u8(-1) }), /S\.a lies outside/],
    ['overlapping bits', () => struct('S', 1, { a: bits(0, 0, 4), b: flag(0, 3) }), /S\.b overlaps/],
    ['bits across a byte', () => bits(0, 6, 4), /within one byte/],
    ['a count over a field', () => struct('S', 8, { a: u32(0), xs: list(u8(2), REC) }), /S\.xs count overlaps/],
    ['inline slots over a field', () => struct('S', 8, { a: u8(6), xs: list(u8(0), REC, { at: 2, max: 3 }) }), /S\.xs slots overlaps/],
    ['inline slots past the end', () => struct('S', 8, { xs: list(u8(0), REC, { at: 4, max: 3 }) }), /S\.xs slots lies outside/],
    ['two trailing lists', () => struct('S', 4, { xs: list(u8(0), REC), ys: list(u8(1), REC) }), /two trailing lists/],
    ['a tail with no list', () => struct('S', 4, { a: tail(u8(0)) }, 1), /tail but no trailing list/],
    ['a tail field past the tail', () => struct('S', 4, { xs: list(u8(0), REC), t: tail(u32(2)) }, 4), /S\.t lies outside the 4-byte tail/],
    [
      'a record with a list',
      () => list(u8(0), struct('Inner', 4, { ys: list(u8(0), REC) })),
      /Inner has lists or a tail, so it cannot be a list's record/,
    ],
    ['a scalar record not at 0', () => list(u8(0), u16(2)), /whole-byte fields at offset 0/],
  ];
  for (const [what, make, message] of cases) {
    it(what, () => expect(make).toThrow(message));
  }

  it('adjacent bits and a tail after a list are fine', () => {
    expect(() => struct('S', 1, { a: bits(0, 0, 4), b: flag(0, 4), c: bits(0, 5, 3) })).not.toThrow();
    expect(() => struct('S', 4, { xs: list(u8(0), REC), t: tail(u32(0)) }, 4)).not.toThrow();
  });
});
