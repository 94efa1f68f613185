// The label storage area (LSA) image a hot-added LD carries: how an
// allocation's tag reaches a stock guest (docs/capacity.md). Pure encoder
// (and a decoder for tests and recovery) of the CXL r3.1 §9.13.2 layout:
// two label index blocks, then 256-byte label slots; slot 0 holds a region
// label whose UUID is the tag, `nlabel` the allocation's extent count and
// `position` this extent's shared sequence number. Linux knows these as
// struct nd_namespace_index and struct cxl_region_label; a guest reads them
// with stock `cxl read-labels memN -s 4096`.
import { formatUuid, parseUuid } from '../fmapi/index.js';

/** 4 KiB holds both index blocks and 14 label slots; larger areas only slow the guest's mailbox reads. */
export const LSA_BYTES = 4096;
export const LABEL_BYTES = 256;
const INDEX_ALIGN = 256;
const INDEX_SIG = 'NAMESPACE_INDEX\0';
/** Region label type (CXL r3.1 §9.13.2.4). */
export const REGION_LABEL_TYPE = '529d7c61-da07-47c4-a93f-ecdf2c06f444';

export interface RegionLabel {
  /** The allocation's tag. */
  uuid: string;
  /** Extents in the allocation. */
  nlabel: number;
  /** This extent's shared sequence number, 0..nlabel-1. */
  position: number;
  /** Bytes of this extent. */
  rawsize: number;
}

/** Fletcher-64 over little-endian 32-bit words (the label format's checksum). */
export function fletcher64(b: Uint8Array): bigint {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i + 4 <= b.byteLength; i += 4) {
    lo = (lo + v.getUint32(i, true)) >>> 0;
    hi = (hi + lo) >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function indexBlock(size: number, which: 0 | 1, nslot: number, seq: number): Uint8Array {
  const blk = new Uint8Array(size);
  const v = new DataView(blk.buffer);
  blk.set(new TextEncoder().encode(INDEX_SIG), 0);
  blk[19] = 1; // labelsize: 128 << 1 = 256-byte labels
  v.setUint32(20, seq, true);
  v.setBigUint64(24, BigInt(which * size), true); // myoff
  v.setBigUint64(32, BigInt(size), true); // mysize
  v.setBigUint64(40, BigInt((1 - which) * size), true); // otheroff
  v.setBigUint64(48, BigInt(2 * size), true); // labeloff
  v.setUint32(56, nslot, true);
  v.setUint16(60, 2, true); // major
  v.setUint16(62, 1, true); // minor: v2.1
  // free bitmap at 72: 1 = free; slot 0 is in use, bits past nslot are 0
  for (let s = 1; s < nslot; s++) blk[72 + (s >> 3)] = (blk[72 + (s >> 3)] as number) | (1 << (s & 7));
  v.setBigUint64(64, fletcher64(blk), true);
  return blk;
}

function regionLabel(l: RegionLabel): Uint8Array {
  const lab = new Uint8Array(LABEL_BYTES);
  const v = new DataView(lab.buffer);
  lab.set(parseUuid(REGION_LABEL_TYPE), 0);
  lab.set(parseUuid(l.uuid), 16);
  v.setUint32(32, 0, true); // flags
  v.setUint16(36, l.nlabel, true);
  v.setUint16(38, l.position, true);
  v.setBigUint64(40, 0n, true); // dpa: the LD's own capacity starts at 0
  v.setBigUint64(48, BigInt(l.rawsize), true);
  v.setBigUint64(56, 0n, true); // hpa: the guest picks it
  v.setUint32(64, 0, true); // slot
  v.setUint32(68, 0, true); // interleave granularity: 256 B (unused, one way)
  v.setUint32(72, 1, true); // align, in 256 MiB units
  v.setBigUint64(248, fletcher64(lab), true);
  return lab;
}

/** The whole LSA: index 0 (seq 1), index 1 (seq 2, the current one), slot 0 = the region label. */
export function lsaImage(label: RegionLabel, bytes = LSA_BYTES): Uint8Array {
  if (!Number.isInteger(label.nlabel) || label.nlabel < 1 || label.nlabel > 0xffff)
    throw new RangeError(`nlabel ${label.nlabel} must be 1..65535`);
  if (!Number.isInteger(label.position) || label.position < 0 || label.position >= label.nlabel)
    throw new RangeError(`position ${label.position} must be 0..${label.nlabel - 1}`);
  // The index size depends on nslot and nslot on the index size: the first guess settles it for any sane size.
  let nslot = (bytes - 2 * INDEX_ALIGN) / LABEL_BYTES;
  const isize = Math.ceil((72 + Math.ceil(nslot / 8)) / INDEX_ALIGN) * INDEX_ALIGN;
  nslot = Math.floor((bytes - 2 * isize) / LABEL_BYTES);
  const img = new Uint8Array(bytes);
  img.set(indexBlock(isize, 0, nslot, 1), 0);
  img.set(indexBlock(isize, 1, nslot, 2), isize);
  img.set(regionLabel(label), 2 * isize);
  return img;
}

/** The region label in slot 0 of an image lsaImage() wrote, or null when there is none or its checksum is wrong. */
export function readRegionLabel(img: Uint8Array): RegionLabel | null {
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (img.byteLength < 3 * INDEX_ALIGN) return null;
  const labeloff = Number(v.getBigUint64(48, true));
  // A copy with its own buffer (a Node Buffer's slice is a view into a shared pool).
  const lab = Uint8Array.from(img.subarray(labeloff, labeloff + LABEL_BYTES));
  if (lab.byteLength !== LABEL_BYTES || formatUuid(lab.subarray(0, 16)) !== REGION_LABEL_TYPE) return null;
  const lv = new DataView(lab.buffer);
  const sum = lv.getBigUint64(248, true);
  lv.setBigUint64(248, 0n, true);
  if (fletcher64(lab) !== sum) return null;
  return {
    uuid: formatUuid(lab.subarray(16, 32)),
    nlabel: lv.getUint16(36, true),
    position: lv.getUint16(38, true),
    rawsize: Number(lv.getBigUint64(48, true)),
  };
}
