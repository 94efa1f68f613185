// The layout engine the command table is written in: a payload is a fixed
// head, an optional list of fixed-size records whose count is a head field,
// and an optional fixed tail. Bytes no field covers are reserved: written as
// zero, never read. All integers little-endian, as on the wire.
import { badField, badLength } from './errors.js';

/**
 * u64 is a quantity (bytes, a DPA, a count) and decodes to a number: the
 * pool lives in /dev/shm, so no real address comes near 2^53, and a larger
 * one on the wire is refused as invalid input rather than rounded. bits64 is
 * an opaque 64-bit value (a serial number, a bit mask) and stays a bigint.
 */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'bits64' | 'uuid';
export type Value = number | bigint | string;
export type Raw = Record<string, Value>;

export interface Field {
  readonly name: string;
  readonly type: FieldType;
  readonly offset: number;
}

export interface Struct {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly Field[];
}

export interface Layout {
  readonly head: Struct;
  readonly list?: { readonly of: Struct; readonly count: string };
  readonly tail?: Struct;
}

export interface Parts {
  head: Raw;
  list: Raw[];
  tail: Raw;
}

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, bits64: 8, uuid: 16 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Fields as [name, type, offset], straight from the spec's table. Checked once, at load. */
export function struct(name: string, size: number, fields: readonly (readonly [string, FieldType, number])[]): Struct {
  const taken = new Uint8Array(size);
  const names = new Set<string>();
  const out: Field[] = [];
  for (const [fname, type, offset] of fields) {
    const end = offset + WIDTH[type];
    if (!Number.isInteger(offset) || offset < 0 || end > size) throw new Error(`${name}.${fname} lies outside its ${size} bytes`);
    if (names.has(fname)) throw new Error(`${name}.${fname} is declared twice`);
    if (taken.subarray(offset, end).some((b) => b !== 0)) throw new Error(`${name}.${fname} overlaps another field`);
    taken.fill(1, offset, end);
    names.add(fname);
    out.push({ name: fname, type, offset });
  }
  return { name, size, fields: out };
}

export function fixedSize(layout: Layout): number {
  return layout.head.size + (layout.tail?.size ?? 0);
}

/** The most list records that fit in `maxPayload` bytes; Infinity for a layout without a list. */
export function maxRecords(layout: Layout, maxPayload: number): number {
  if (!layout.list) return Number.POSITIVE_INFINITY;
  return Math.max(0, Math.floor((maxPayload - fixedSize(layout)) / layout.list.of.size));
}

function readField(f: Field, v: DataView, at: number, where: string): Value {
  const o = at + f.offset;
  switch (f.type) {
    case 'u8':
      return v.getUint8(o);
    case 'u16':
      return v.getUint16(o, true);
    case 'u32':
      return v.getUint32(o, true);
    case 'u64': {
      const big = v.getBigUint64(o, true);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw badField(`${where}.${f.name}`, `0x${big.toString(16)} is beyond 2^53-1`);
      return Number(big);
    }
    case 'bits64':
      return v.getBigUint64(o, true);
    case 'uuid':
      return formatUuid(new Uint8Array(v.buffer, v.byteOffset + o, 16));
  }
}

function writeField(f: Field, v: DataView, at: number, value: Value | undefined, where: string): void {
  const o = at + f.offset;
  const name = `${where}.${f.name}`;
  if (f.type === 'bits64') {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n)
      throw badField(name, `${String(value)} is not a 64-bit unsigned bigint`);
    v.setBigUint64(o, value, true);
    return;
  }
  if (f.type === 'uuid') {
    if (typeof value !== 'string' || !UUID.test(value)) throw badField(name, `${String(value)} is not a UUID (8-4-4-4-12 hex digits)`);
    new Uint8Array(v.buffer, v.byteOffset + o, 16).set(parseUuid(value));
    return;
  }
  const limit = f.type === 'u64' ? Number.MAX_SAFE_INTEGER : 2 ** (8 * WIDTH[f.type]) - 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > limit) {
    throw badField(name, `${String(value)} is not an integer in 0..${limit}`);
  }
  if (f.type === 'u8') v.setUint8(o, value);
  else if (f.type === 'u16') v.setUint16(o, value, true);
  else if (f.type === 'u32') v.setUint32(o, value, true);
  else v.setBigUint64(o, BigInt(value), true);
}

export function readStruct(s: Struct, v: DataView, at: number): Raw {
  const out: Raw = {};
  for (const f of s.fields) out[f.name] = readField(f, v, at, s.name);
  return out;
}

export function writeStruct(s: Struct, v: DataView, at: number, raw: Raw): void {
  for (const f of s.fields) writeField(f, v, at, raw[f.name], s.name);
}

export function decodeParts(layout: Layout, payload: Uint8Array): Parts {
  const { head: hs, list, tail: ts } = layout;
  const fixed = fixedSize(layout);
  const what = hs.name;
  if (payload.length < fixed || (!list && payload.length !== fixed)) {
    throw badLength(`${what} needs ${list ? 'at least ' : ''}${fixed} bytes, got ${payload.length}`);
  }
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const head = readStruct(hs, v, 0);
  const records: Raw[] = [];
  if (list) {
    const count = head[list.count] as number;
    const want = fixed + count * list.of.size;
    if (payload.length !== want) {
      throw badLength(`${what}.${list.count} = ${count} needs ${want} bytes of payload, got ${payload.length}`);
    }
    for (let i = 0; i < count; i++) records.push(readStruct(list.of, v, hs.size + i * list.of.size));
  }
  const tail = ts ? readStruct(ts, v, payload.length - ts.size) : {};
  return { head, list: records, tail };
}

export function encodeParts(layout: Layout, parts: Parts): Uint8Array {
  const { head: hs, list, tail: ts } = layout;
  const n = list ? parts.list.length : 0;
  if (!list && parts.list.length > 0) throw badField(hs.name, 'this payload has no list');
  const out = new Uint8Array(fixedSize(layout) + n * (list?.of.size ?? 0));
  const v = new DataView(out.buffer);
  // The count is the list's length, never a separately supplied number that could disagree.
  writeStruct(hs, v, 0, list ? { ...parts.head, [list.count]: n } : parts.head);
  if (list) {
    for (const [i, r] of parts.list.entries()) writeStruct(list.of, v, hs.size + i * list.of.size, r);
  }
  if (ts) writeStruct(ts, v, out.length - ts.size, parts.tail);
  return out;
}

export function formatUuid(b: Uint8Array): string {
  const h = Buffer.from(b.buffer, b.byteOffset, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Bytes in written order (RFC 4122), the way QEMU's qemu_uuid_parse lays out a DC tag. */
export function parseUuid(s: string): Uint8Array {
  if (!UUID.test(s)) throw badField('uuid', `${s} is not a UUID (8-4-4-4-12 hex digits)`);
  return new Uint8Array(Buffer.from(s.replaceAll('-', ''), 'hex'));
}
