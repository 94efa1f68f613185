// The layout language the command table is written in. Each payload is
// declared once, as a struct: a table of field descriptors at the offsets of
// the spec's table. The encoder, the decoder and (through Of<>) the
// TypeScript type all follow from that one table, so they cannot disagree.
// A list is a count field plus a record layout, its records either after the
// fixed head (a trailing list, which a fixed tail may follow) or in a fixed
// number of slots inside the head (an inline list). Bytes no field covers are
// reserved: written as zero, never read. Integers are little-endian, as on
// the wire. A table that overlaps itself or strays outside its struct is
// refused when the module loads.
import { badField, badLength } from './errors.js';

/** What a scalar carries, for readers of the table (tests draw random values from it). */
export type Domain =
  | { readonly type: 'int'; readonly min: number; readonly max: number; readonly values?: readonly number[]; readonly unit?: number }
  | { readonly type: 'bits64' }
  | { readonly type: 'uuid' }
  | { readonly type: 'boolean' }
  | { readonly type: 'bitmap'; readonly bits: number };

/** One field: where it sits and how it converts to and from T. */
export interface Scalar<T> {
  readonly kind: 'scalar';
  /** Byte offset from the start of the head, or of the tail when `tail` is set. */
  readonly at: number;
  readonly tail: boolean;
  /** The bits it occupies counting from bit 0 of byte `at`: [first, count). */
  readonly bits: readonly [number, number];
  readonly domain: Domain;
  /** `o` is the byte offset in the view; `name` labels errors. */
  read(v: DataView, o: number, name: string): T;
  /** Validates at run time: encoders are fed by backends and JavaScript callers too. */
  write(v: DataView, o: number, value: unknown, name: string): void;
}

/** Slots for an inline list: bytes [at, at + max * record size) of the head. */
export interface Inline {
  readonly at: number;
  readonly max: number;
}

export interface List<E> {
  readonly kind: 'list';
  /** Written as the list's length, never supplied separately, so the two cannot disagree. */
  readonly count: Scalar<number>;
  readonly record: Struct | Scalar<E>;
  readonly size: number;
  readonly inline?: Inline;
  readRecord(v: DataView, o: number, name: string): E;
  writeRecord(v: DataView, o: number, value: unknown, name: string): void;
}

export type Fields = { readonly [key: string]: Scalar<unknown> | List<unknown> };

export interface Struct<F extends Fields = Fields> {
  readonly kind: 'struct';
  readonly name: string;
  /** Bytes of the fixed head. */
  readonly size: number;
  /** Bytes of the fixed tail after a trailing list's records. */
  readonly tailSize: number;
  readonly fields: F;
  /** The key of the trailing list, if the struct has one. */
  readonly trailing?: string;
}

export type Empty = Record<string, never>;
type ValueOf<D> = D extends Scalar<infer T> ? T : D extends List<infer E> ? E[] : never;
/** The value a struct's codec exchanges, read off its field table. */
export type Shape<F> = [keyof F] extends [never] ? Empty : { -readonly [K in keyof F]: ValueOf<F[K]> };
export type Of<S> = S extends Struct<infer F> ? Shape<F> : never;

// ---- scalars ---------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TWO_32 = 2 ** 32;
/** The high word of the largest u64 that is still a safe integer. */
const SAFE_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / TWO_32);

function scalar<T>(at: number, bits: number, domain: Domain, read: Scalar<T>['read'], write: Scalar<T>['write']): Scalar<T> {
  return { kind: 'scalar', at, tail: false, bits: [0, bits], domain, read, write };
}

function checkInt(value: unknown, max: number, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw badField(name, `${String(value)} is not an integer in 0..${max}`);
  }
  return value;
}

type Getter = (v: DataView, o: number) => number;
type Setter = (v: DataView, o: number, x: number) => void;
const UINT: Record<1 | 2 | 4, [Getter, Setter]> = {
  1: [(v, o) => v.getUint8(o), (v, o, x) => v.setUint8(o, x)],
  2: [(v, o) => v.getUint16(o, true), (v, o, x) => v.setUint16(o, x, true)],
  4: [(v, o) => v.getUint32(o, true), (v, o, x) => v.setUint32(o, x, true)],
};

function uint(at: number, bytes: 1 | 2 | 4): Scalar<number> {
  const max = 2 ** (8 * bytes) - 1;
  const [get, set] = UINT[bytes];
  return scalar(at, 8 * bytes, { type: 'int', min: 0, max }, get, (v, o, x, name) => set(v, o, checkInt(x, max, name)));
}

export const u8 = (at: number): Scalar<number> => uint(at, 1);
export const u16 = (at: number): Scalar<number> => uint(at, 2);
export const u32 = (at: number): Scalar<number> => uint(at, 4);

/**
 * A 64-bit quantity (bytes, a DPA, a count), exchanged as a number: the pool
 * lives in /dev/shm, so no real address comes near 2^53, and a larger one on
 * the wire is refused as invalid input rather than rounded.
 */
export function u64(at: number): Scalar<number> {
  return scalar(
    at,
    64,
    { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER },
    (v, o, name) => {
      const high = v.getUint32(o + 4, true);
      const low = v.getUint32(o, true);
      if (high > SAFE_HIGH) throw badField(name, `0x${v.getBigUint64(o, true).toString(16)} is beyond 2^53-1`);
      return high * TWO_32 + low;
    },
    (v, o, x, name) => {
      const n = checkInt(x, Number.MAX_SAFE_INTEGER, name);
      v.setUint32(o, n % TWO_32, true);
      v.setUint32(o + 4, Math.floor(n / TWO_32), true);
    },
  );
}

/** An opaque 64-bit value (a serial number, a bit mask), exchanged whole as a bigint. */
export function bits64(at: number): Scalar<bigint> {
  return scalar(
    at,
    64,
    { type: 'bits64' },
    (v, o) => v.getBigUint64(o, true),
    (v, o, x, name) => {
      if (typeof x !== 'bigint' || x < 0n || x >= 1n << 64n) throw badField(name, `${String(x)} is not a 64-bit unsigned bigint`);
      v.setBigUint64(o, x, true);
    },
  );
}

/** 16 bytes in written order (RFC 4122), the way QEMU's qemu_uuid_parse lays out a DC tag. */
export function uuid(at: number): Scalar<string> {
  return scalar(
    at,
    128,
    { type: 'uuid' },
    (v, o) => formatUuid(new Uint8Array(v.buffer, v.byteOffset + o, 16)),
    (v, o, x, name) => {
      if (typeof x !== 'string' || !UUID.test(x)) throw badField(name, `${String(x)} is not a UUID (8-4-4-4-12 hex digits)`);
      new Uint8Array(v.buffer, v.byteOffset + o, 16).set(uuidBytes(x));
    },
  );
}

/**
 * A bitmap of `bytes` bytes (bit n = byte n/8, bit n%8), exchanged as the
 * ascending list of the bit numbers set: a host bitmap reads as host ids.
 */
export function bitmap(at: number, bytes: number): Scalar<number[]> {
  const nbits = bytes * 8;
  return scalar(
    at,
    nbits,
    { type: 'bitmap', bits: nbits },
    (v, o) => {
      const out: number[] = [];
      for (let i = 0; i < bytes; i++) {
        const b = v.getUint8(o + i);
        for (let j = 0; j < 8; j++) if (b & (1 << j)) out.push(i * 8 + j);
      }
      return out;
    },
    (v, o, x, name) => {
      if (!Array.isArray(x)) throw badField(name, `${String(x)} is not a list of bit numbers`);
      for (const n of x) {
        checkInt(n, nbits - 1, name);
        const i = o + Math.floor(n / 8);
        v.setUint8(i, v.getUint8(i) | (1 << (n % 8)));
      }
    },
  );
}

/** `count` bits from bit `first` of byte `at`; the byte's other bits belong to other fields or are reserved. */
export function bits(at: number, first: number, count: number): Scalar<number> {
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > 8) {
    throw new Error(`bits ${first}+${count} do not lie within one byte`);
  }
  const mask = (1 << count) - 1;
  const f = scalar<number>(
    at,
    count,
    { type: 'int', min: 0, max: mask },
    (v, o) => (v.getUint8(o) >> first) & mask,
    (v, o, x, name) => v.setUint8(o, v.getUint8(o) | (checkInt(x, mask, name) << first)),
  );
  return { ...f, bits: [first, count] };
}

export function flag(at: number, bit: number): Scalar<boolean> {
  const b = bits(at, bit, 1);
  return {
    ...b,
    domain: { type: 'boolean' },
    read: (v, o, name) => b.read(v, o, name) === 1,
    write: (v, o, x, name) => {
      if (typeof x !== 'boolean') throw badField(name, `${String(x)} is not a boolean`);
      b.write(v, o, x ? 1 : 0, name);
    },
  };
}

/** An integer field whose allowed values are `min..max`; `noun` names them in errors ("a DC region"). */
export function range(f: Scalar<number>, min: number, max: number, noun?: string): Scalar<number> {
  const check = (x: unknown, name: string): number => {
    if (typeof x !== 'number' || x < min || x > max) {
      throw badField(name, noun ? `${String(x)} is not ${noun} (${min}..${max})` : `${String(x)} is outside ${min}..${max}`);
    }
    return x;
  };
  return {
    ...f,
    domain: { type: 'int', min, max },
    read: (v, o, name) => check(f.read(v, o, name), name),
    write: (v, o, x, name) => f.write(v, o, check(x, name), name),
  };
}

/** An integer field whose values are those of a numeric enum, and typed as it. */
export function oneOf<E extends Record<string, string | number>>(
  f: Scalar<number>,
  e: E,
  noun: string,
): Scalar<Extract<E[keyof E], number>> {
  const values = Object.values(e).filter((x): x is Extract<E[keyof E], number> => typeof x === 'number');
  const allowed = new Set<unknown>(values);
  const check = (x: unknown, name: string) => {
    if (!allowed.has(x)) throw badField(name, `${String(x)} is not ${noun} (${Math.min(...values)}..${Math.max(...values)})`);
  };
  return {
    ...f,
    domain: { type: 'int', min: Math.min(...values), max: Math.max(...values), values },
    read: (v, o, name) => {
      const x = f.read(v, o, name);
      check(x, name);
      return x as Extract<E[keyof E], number>; // the check above is what makes it one
    },
    write: (v, o, x, name) => {
      check(x, name);
      f.write(v, o, x, name);
    },
  };
}

/** A quantity the wire carries in `unit`-byte units and the codec speaks in bytes. */
export function units(f: Scalar<number>, unit: number, unitName: string): Scalar<number> {
  return {
    ...f,
    domain: { type: 'int', min: 0, max: Math.floor(Number.MAX_SAFE_INTEGER / unit) * unit, unit },
    read: (v, o, name) => {
      const u = f.read(v, o, name);
      const bytes = u * unit;
      if (!Number.isSafeInteger(bytes)) throw badField(name, `${u} units of ${unitName} is beyond 2^53-1 bytes`);
      return bytes;
    },
    write: (v, o, x, name) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0 || x % unit !== 0) {
        throw badField(name, `${String(x)} is not a whole number of ${unitName} units`);
      }
      f.write(v, o, x / unit, name);
    },
  };
}

/** The same field, placed in the tail that follows a trailing list: `at` counts from the tail's start. */
export function tail<T>(f: Scalar<T>): Scalar<T> {
  return { ...f, tail: true };
}

// ---- lists and structs -----------------------------------------------------

export function list<G extends Fields>(count: Scalar<number>, record: Struct<G>, inline?: Inline): List<Shape<G>>;
export function list<T>(count: Scalar<number>, record: Scalar<T>, inline?: Inline): List<T>;
export function list(count: Scalar<number>, record: Struct | Scalar<unknown>, inline?: Inline): List<unknown> {
  if (record.kind === 'scalar') {
    if (record.at !== 0 || record.tail || record.bits[0] !== 0 || record.bits[1] % 8 !== 0) {
      throw new Error('a list of scalars takes whole-byte fields at offset 0');
    }
    return { kind: 'list', count, record, size: record.bits[1] / 8, inline, readRecord: record.read, writeRecord: record.write };
  }
  if (record.trailing !== undefined || record.tailSize > 0 || Object.values(record.fields).some((d) => d.kind === 'list')) {
    throw new Error(`${record.name} has lists or a tail, so it cannot be a list's record`);
  }
  const plan = planOf(record);
  return {
    kind: 'list',
    count,
    record,
    size: record.size,
    inline,
    readRecord: (v, o) => readScalars(plan, v, o, o),
    writeRecord: (v, o, x, name) => writeScalars(plan, v, o, o, asObject(x, name)),
  };
}

/**
 * A payload or record layout: `size` bytes of head, fields at their spec
 * offsets, and `tailSize` bytes of tail after a trailing list. Checked here,
 * once, at load: every field inside its bytes, no two sharing a bit, at most
 * one trailing list, a tail only after one.
 */
export function struct<F extends Fields>(name: string, size: number, fields: F, tailSize = 0): Struct<F> {
  const head = new Uint8Array(size * 8);
  const tailBits = new Uint8Array(tailSize * 8);
  const claim = (label: string, inTail: boolean, from: number, to: number) => {
    const taken = inTail ? tailBits : head;
    const where = inTail ? `the ${tailSize}-byte tail` : `its ${size} bytes`;
    if (!Number.isInteger(from) || from < 0 || to > taken.length) throw new Error(`${label} lies outside ${where}`);
    if (taken.subarray(from, to).some((b) => b !== 0)) throw new Error(`${label} overlaps another field`);
    taken.fill(1, from, to);
  };
  const claimScalar = (label: string, f: Scalar<unknown>) => claim(label, f.tail, f.at * 8 + f.bits[0], f.at * 8 + f.bits[0] + f.bits[1]);
  let trailing: string | undefined;
  for (const [key, d] of Object.entries(fields)) {
    const label = `${name}.${key}`;
    if (d.kind === 'scalar') {
      claimScalar(label, d);
      continue;
    }
    if (d.count.tail) throw new Error(`${label}: a list's count lies in the head`);
    claimScalar(`${label} count`, d.count);
    if (d.inline) {
      claim(`${label} slots`, false, d.inline.at * 8, (d.inline.at + d.inline.max * d.size) * 8);
    } else if (trailing !== undefined) {
      throw new Error(`${name} has two trailing lists, ${trailing} and ${key}`);
    } else {
      trailing = key;
    }
  }
  if (tailSize > 0 && trailing === undefined) throw new Error(`${name} has a tail but no trailing list to follow`);
  return { kind: 'struct', name, size, tailSize, fields, trailing };
}

// ---- the engine ------------------------------------------------------------

/** A struct's fields with their error labels, worked out once per codec or list. */
interface Plan {
  readonly scalars: readonly { readonly key: string; readonly label: string; readonly f: Scalar<unknown> }[];
  readonly lists: readonly { readonly key: string; readonly label: string; readonly l: List<unknown> }[];
}

function planOf(s: Struct): Plan {
  const scalars: Plan['scalars'][number][] = [];
  const lists: Plan['lists'][number][] = [];
  for (const [key, d] of Object.entries(s.fields)) {
    if (d.kind === 'scalar') scalars.push({ key, label: `${s.name}.${key}`, f: d });
    else lists.push({ key, label: `${s.name}.${key}`, l: d });
  }
  return { scalars, lists };
}

function asObject(x: unknown, name: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw badField(name, `${String(x)} is not an object`);
  return x as Record<string, unknown>;
}

function readScalars(plan: Plan, v: DataView, head: number, tailAt: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, label, f } of plan.scalars) out[key] = f.read(v, (f.tail ? tailAt : head) + f.at, label);
  return out;
}

function writeScalars(plan: Plan, v: DataView, head: number, tailAt: number, value: Record<string, unknown>): void {
  for (const { key, label, f } of plan.scalars) f.write(v, (f.tail ? tailAt : head) + f.at, value[key], label);
}

function readList(l: List<unknown>, label: string, v: DataView, headSize: number): unknown[] {
  const count = l.count.read(v, l.count.at, `${label} count`);
  if (l.inline && count > l.inline.max) throw badField(`${label} count`, `${count} is more than ${l.inline.max}`);
  const base = l.inline ? l.inline.at : headSize;
  const out = new Array<unknown>(count);
  for (let i = 0; i < count; i++) out[i] = l.readRecord(v, base + i * l.size, label);
  return out;
}

function writeList(l: List<unknown>, label: string, v: DataView, headSize: number, value: unknown): void {
  if (!Array.isArray(value)) throw badField(label, `${String(value)} is not a list`);
  if (l.inline && value.length > l.inline.max) throw badField(label, `${value.length} records is more than ${l.inline.max}`);
  l.count.write(v, l.count.at, value.length, `${label} count`);
  const base = l.inline ? l.inline.at : headSize;
  for (let i = 0; i < value.length; i++) l.writeRecord(v, base + i * l.size, value[i], label);
}

export interface Codec<T> {
  readonly layout: Struct;
  encode(value: T): Uint8Array;
  decode(payload: Uint8Array): T;
}

/**
 * The codec a struct declares. `check` holds the rules between fields that
 * no single field can state; it runs on both sides, so what one end refuses
 * to send the other refuses to accept.
 */
export function codec<F extends Fields>(layout: Struct<F>, check?: (value: Shape<F>) => void): Codec<Shape<F>> {
  const plan = planOf(layout);
  const fixed = layout.size + layout.tailSize;
  const trailing = plan.lists.find((s) => s.key === layout.trailing);
  const what = layout.name;
  return {
    layout,
    encode(value) {
      const obj = asObject(value, what);
      const records = trailing ? obj[trailing.key] : undefined;
      const n = Array.isArray(records) ? records.length : 0;
      const out = new Uint8Array(fixed + n * (trailing?.l.size ?? 0));
      const v = new DataView(out.buffer);
      writeScalars(plan, v, 0, out.length - layout.tailSize, obj);
      for (const { key, label, l } of plan.lists) writeList(l, label, v, layout.size, obj[key]);
      check?.(value);
      return out;
    },
    decode(payload) {
      if (payload.length < fixed || (!trailing && payload.length !== fixed)) {
        throw badLength(`${what} needs ${trailing ? 'at least ' : ''}${fixed} bytes, got ${payload.length}`);
      }
      const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      if (trailing) {
        const count = trailing.l.count.read(v, trailing.l.count.at, trailing.label);
        const want = fixed + count * trailing.l.size;
        if (payload.length !== want) {
          throw badLength(`${trailing.label} count = ${count} needs ${want} bytes of payload, got ${payload.length}`);
        }
      }
      const out = readScalars(plan, v, 0, payload.length - layout.tailSize);
      for (const { key, label, l } of plan.lists) out[key] = readList(l, label, v, layout.size);
      // Every key of F was just filled from its own descriptor: this is the one place the table meets its type.
      const value = out as Shape<F>;
      check?.(value);
      return value;
    },
  };
}

/** The most trailing-list records that fit in `maxPayload` bytes; Infinity for a struct without one. */
export function maxRecords(layout: Struct, maxPayload: number): number {
  const l = layout.trailing === undefined ? undefined : layout.fields[layout.trailing];
  if (l?.kind !== 'list') return Number.POSITIVE_INFINITY;
  return Math.max(0, Math.floor((maxPayload - layout.size - layout.tailSize) / l.size));
}

// Hex by hand rather than Buffer: the guest FM client runs this module on QuickJS, which has no Buffer.
export function formatUuid(b: Uint8Array): string {
  const h = Array.from(b.subarray(0, 16), (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Bytes in written order (RFC 4122), the way QEMU's qemu_uuid_parse lays out a DC tag. */
export function parseUuid(s: string): Uint8Array {
  if (!UUID.test(s)) throw badField('uuid', `${s} is not a UUID (8-4-4-4-12 hex digits)`);
  return uuidBytes(s);
}

/** The 16 bytes of a UUID already checked against UUID. */
function uuidBytes(s: string): Uint8Array {
  const h = s.replaceAll('-', '');
  return Uint8Array.from({ length: 16 }, (_, i) => Number.parseInt(h.slice(2 * i, 2 * i + 2), 16));
}
