// The byte layout of a pool's state object: header, head table, block
// words. docs/state-layout.md is the prose of this file; the two change
// together. All integers little-endian (the only byte order x86 QEMU runs).
import { crc32 } from 'node:zlib';
import { PoolError } from './errors.js';

export const MAGIC = 'CXLMHDST';
export const LAYOUT_VERSION = 1;
export const PAGE = 4096;
export const MAX_HEADS = 32;

/** Immutable header fields, covered by the header CRC. */
export const H = {
  magic: 0, // u8[8]
  version: 8, // u32
  headCount: 12, // u32
  capacityBytes: 16, // u64
  blockBytes: 24, // u64
  blockCount: 32, // u64
  headTableOffset: 40, // u32
  headEntryBytes: 44, // u32
  bitmapOffset: 48, // u64
  createdMs: 56, // u64
  crc: 64, // u32: crc32 of bytes [0, 64); bytes 68..71 reserved
  // Mutable, changed only with atomics.
  generation: 72, // u64: +1 on every change of the bitmap, head table or lease
  journalSeq: 80, // u64: next journal sequence number (fetch-add)
  leaseOwner: 88, // u32: 0 = free, else head id + 1
  leaseEpoch: 92, // u32: +1 on every acquire
  writerPid: 96, // u32: pid of the process holding the writer lock (informational)
  // Immutable, written before the magic; all zero in pools made before it existed.
  poolId: 104, // u8[16]: random at `pool create`, also in the journal's pool-create line and the snapshot
} as const;
export const POOL_ID_BYTES = 16;
export const CRC_COVERS = 64;

export const HEAD_TABLE_OFFSET = 1024;
export const HEAD_ENTRY_BYTES = 64;
/** Offsets inside one head entry. */
export const E = {
  state: 0, // u32: HeadState
  pid: 4, // u32: QEMU pid from SO_PEERCRED (0 if unknown)
  attachGeneration: 8, // u64: pool generation when the head registered
  attachedMs: 16, // u64: unix ms of registration
  changedMs: 24, // u64: unix ms of the last change to this entry
  flags: 32, // u32: reserved for per-head settings (delivery mode)
} as const;

export enum HeadState {
  Free = 0,
  Attached = 1,
}

export const BITMAP_OFFSET = PAGE;
export const BLOCK_WORD_BYTES = 8;
/** Block word: bits 0..31 = holder mask (bit h = head h), bit 32 = shared claim. */
export const SHARED_FLAG = 1n << 32n;
export const MASK_BITS = 0xffff_ffffn;
/**
 * Bit 33: an FM tag reference (CXL r3.2 5606h) holds the block. With no
 * holder left it stays allocated, shared flag and all, until the last
 * reference goes (docs/capacity.md).
 */
export const REF_FLAG = 1n << 33n;

export interface Geometry {
  capacityBytes: number;
  blockBytes: number;
  headCount: number;
}

export interface Header extends Geometry {
  version: number;
  blockCount: number;
  headTableOffset: number;
  headEntryBytes: number;
  bitmapOffset: number;
  createdMs: number;
  /** 32 hex digits, or '' for a pool made before pool ids. */
  poolId: string;
}

export function stateObjectBytes(blockCount: number): number {
  const raw = BITMAP_OFFSET + blockCount * BLOCK_WORD_BYTES;
  return Math.ceil(raw / PAGE) * PAGE;
}

export function headEntryOffset(head: number): number {
  return HEAD_TABLE_OFFSET + head * HEAD_ENTRY_BYTES;
}

export function blockWordOffset(block: number): number {
  return BITMAP_OFFSET + block * BLOCK_WORD_BYTES;
}

/** Writes the immutable header (and its CRC) for a new pool. */
export function encodeHeader(buf: Uint8Array, g: Geometry, createdMs: number, poolId = ''): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const blockCount = g.capacityBytes / g.blockBytes;
  v.setUint32(H.version, LAYOUT_VERSION, true);
  v.setUint32(H.headCount, g.headCount, true);
  v.setBigUint64(H.capacityBytes, BigInt(g.capacityBytes), true);
  v.setBigUint64(H.blockBytes, BigInt(g.blockBytes), true);
  v.setBigUint64(H.blockCount, BigInt(blockCount), true);
  v.setUint32(H.headTableOffset, HEAD_TABLE_OFFSET, true);
  v.setUint32(H.headEntryBytes, HEAD_ENTRY_BYTES, true);
  v.setBigUint64(H.bitmapOffset, BigInt(BITMAP_OFFSET), true);
  v.setBigUint64(H.createdMs, BigInt(createdMs), true);
  if (poolId) buf.set(Buffer.from(poolId, 'hex').subarray(0, POOL_ID_BYTES), H.poolId);
  // Magic last: a reader never sees a valid magic over a half-written header.
  buf.set(new TextEncoder().encode(MAGIC), H.magic);
  v.setUint32(H.crc, crc32(buf.subarray(0, CRC_COVERS)), true);
}

/**
 * Reads and checks the header. `objectBytes` is the state object's size
 * (fstat), so a truncated or oversized object is caught here too.
 */
export function decodeHeader(buf: Uint8Array, objectBytes: number, what: string): Header {
  const bad = (why: string): never => {
    throw new PoolError('BAD_STATE', `${what}: ${why}`);
  };
  if (objectBytes < PAGE || buf.byteLength < PAGE) bad(`state object is ${objectBytes} bytes, too small to hold a header`);
  const magic = new TextDecoder().decode(buf.subarray(H.magic, H.magic + 8));
  if (magic !== MAGIC) bad(`wrong magic ${JSON.stringify(magic)} (expected ${MAGIC}): not a cxl-mhd state object`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = v.getUint32(H.version, true);
  if (version !== LAYOUT_VERSION) bad(`layout version ${version} is not supported (this build reads ${LAYOUT_VERSION})`);
  const crc = v.getUint32(H.crc, true);
  if (crc !== crc32(buf.subarray(0, CRC_COVERS))) bad('header checksum mismatch: the header is damaged');
  const h: Header = {
    version,
    headCount: v.getUint32(H.headCount, true),
    capacityBytes: Number(v.getBigUint64(H.capacityBytes, true)),
    blockBytes: Number(v.getBigUint64(H.blockBytes, true)),
    blockCount: Number(v.getBigUint64(H.blockCount, true)),
    headTableOffset: v.getUint32(H.headTableOffset, true),
    headEntryBytes: v.getUint32(H.headEntryBytes, true),
    bitmapOffset: Number(v.getBigUint64(H.bitmapOffset, true)),
    createdMs: Number(v.getBigUint64(H.createdMs, true)),
    poolId: decodePoolId(buf),
  };
  if (h.headCount < 1 || h.headCount > MAX_HEADS) bad(`head count ${h.headCount} is outside 1..${MAX_HEADS}`);
  if (h.blockBytes <= 0 || h.blockCount * h.blockBytes !== h.capacityBytes) bad('capacity is not block count × block size');
  if (h.headTableOffset !== HEAD_TABLE_OFFSET || h.headEntryBytes !== HEAD_ENTRY_BYTES || h.bitmapOffset !== BITMAP_OFFSET) {
    bad('table offsets differ from layout version 1');
  }
  const expected = stateObjectBytes(h.blockCount);
  if (objectBytes !== expected) bad(`state object is ${objectBytes} bytes but its header needs ${expected}`);
  return h;
}

function decodePoolId(buf: Uint8Array): string {
  const id = buf.subarray(H.poolId, H.poolId + POOL_ID_BYTES);
  return id.every((b) => b === 0) ? '' : Buffer.from(id).toString('hex');
}
