// The FM-API commands cxl-mhd serves: per opcode, its request and response
// payloads, each declared once as a layout (layout.ts) at the offsets of the
// CXL r3.1 tables: §8.2.9.1.1 Identify, §7.6.7.5 Multi-Headed Device and
// §7.6.7.6 DCD Management command sets, with r3.2's additions to the last
// (5602h Set DC Region Configuration, 5606h–5608h the tag references). The codecs and the payload types
// exported here follow from those declarations. Everything the server, the
// client and the tests know about payloads is in COMMANDS.
import { CAPACITY_UNIT } from '../pool/lite.js';
import { badField } from './errors.js';
import {
  bitmap,
  bits,
  bits64,
  type Codec,
  codec,
  flag,
  list,
  type Of,
  oneOf,
  range,
  type Scalar,
  struct,
  tail,
  u8,
  u16,
  u32,
  u64,
  units,
  uuid,
} from './layout.js';

// Decode lengths and total capacity travel in 256 MiB units; codecs speak bytes. Tags: ZERO_TAG is no tag.
export { CAPACITY_UNIT, ZERO_TAG } from '../pool/lite.js';
export type { Codec, Empty } from './layout.js';

/** A DCD has at most eight DC regions. */
export const MAX_DC_REGIONS = 8;

export enum Opcode {
  Identify = 0x0001,
  GetMhdInfo = 0x5500,
  GetHeadInfo = 0x5501,
  GetDcdInfo = 0x5600,
  GetHostDcRegionConfig = 0x5601,
  SetDcRegionConfig = 0x5602,
  GetDcRegionExtentLists = 0x5603,
  InitiateDcAdd = 0x5604,
  InitiateDcRelease = 0x5605,
  AddDcReference = 0x5606,
  RemoveDcReference = 0x5607,
  ListDcTags = 0x5608,
}

export enum SelectionPolicy {
  Free = 0,
  Contiguous = 1,
  Prescriptive = 2,
  EnableSharedAccess = 3,
}

export enum RemovalPolicy {
  TagBased = 0,
  Prescriptive = 1,
}

/** DSMAS flag bits of a region record (r3.2 Table 7-66, as QEMU numbers them). */
export const DsmasFlag = {
  NonVolatile: 1 << 2,
  Sharable: 1 << 3,
  HwManagedCoherency: 1 << 4,
  IcSpecificDcManagement: 1 << 5,
  ReadOnly: 1 << 6,
} as const;

/**
 * Flags of a 5608h tag record. Bit 0: the FM holds a reference (5606h) on
 * the tag, so its capacity stays allocated with no host holding it. r3.2
 * names the byte; this is the one bit cxl-mhd sets (docs/capacity.md).
 */
export const TagFlag = { FmReference: 1 << 0 } as const;

/** Hosts a 5608h bitmap can name: 32 bytes, bit n = host n. */
export const TAG_BITMAP_BYTES = 32;

const capacity = (f: Scalar<number>) => units(f, CAPACITY_UNIT, '256 MiB');
const dcRegion = (at: number) => range(u8(at), 0, MAX_DC_REGIONS - 1, 'a DC region');

const EMPTY = struct('Empty', 0, {});

// ---- 0001h Identify (§8.2.9.1.1) --------------------------------------------

const IDENTIFY_RSP = struct('IdentifyResponse', 18, {
  vendorId: u16(0),
  deviceId: u16(2),
  subsystemVendorId: u16(4),
  subsystemId: u16(6),
  serialNumber: bits64(8),
  /** The largest message (header included) the component accepts is 2^n bytes, n in 8..20. */
  maxMessageSizeLog2: range(u8(16), 8, 20),
  /** 3 = type 3 memory device. */
  componentType: u8(17),
});

// ---- 5500h Get Multi-Headed Info (§7.6.7.5.1) ------------------------------

const MHD_REQ = struct('GetMhdInfoRequest', 2, {
  startLd: u8(0),
  ldMapListLimit: u8(1),
});
const MHD_RSP = struct('GetMhdInfoResponse', 8, {
  numLds: u8(0),
  numHeads: u8(1),
  startLd: u8(4),
  /** One byte per LD from startLd: the head it maps to. */
  ldMap: list(u8(5), u8(0)),
});

// ---- 5501h Get Head Info (§7.6.7.5.2) ---------------------------------------

const HEAD_REQ = struct('GetHeadInfoRequest', 2, {
  startHead: u8(0),
  numHeads: u8(1),
});
const HEAD_RECORD = struct('HeadInfoRecord', 9, {
  port: u8(0),
  maxLinkWidth: u8(1),
  negotiatedLinkWidth: u8(2),
  supportedLinkSpeeds: u8(3),
  maxLinkSpeed: u8(4),
  currentLinkSpeed: u8(5),
  ltssmState: u8(6),
  firstNegotiatedLane: u8(7),
  linkStateFlags: u8(8),
});
const HEAD_RSP = struct('GetHeadInfoResponse', 4, {
  heads: list(u8(0), HEAD_RECORD),
});

// ---- 5600h Get DCD Info (§7.6.7.6.1) ----------------------------------------

const DCD_RSP = struct('GetDcdInfoResponse', 84, {
  numHosts: u8(0),
  /** Bit n set = SelectionPolicy n supported. */
  addPolicyMask: u16(4),
  /** Bit n set = RemovalPolicy n supported. */
  removalPolicyMask: u16(8),
  sanitizeMask: u8(10),
  totalCapacityBytes: capacity(u64(12)),
  /**
   * One mask per supported region (bit n = 2^n-byte blocks); its length is
   * the Number of Supported DC Regions. The slots of absent regions are reserved.
   */
  regionBlockSizeMasks: list(u8(1), bits64(0), { at: 20, max: MAX_DC_REGIONS }),
});

// ---- 5601h Get Host DC Region Configuration (§7.6.7.6.2) -------------------

const REGION_REQ = struct('GetHostDcRegionConfigRequest', 4, {
  hostId: u16(0),
  regionCount: u8(2),
  startRegion: u8(3),
});
const REGION_RECORD = struct('RegionConfig', 40, {
  base: u64(0),
  decodeLength: capacity(u64(8)),
  length: u64(16),
  blockSize: u64(24),
  dsmasFlags: u8(32),
  sanitizeOnRelease: u8(36),
});
const REGION_RSP = struct(
  'GetHostDcRegionConfigResponse',
  4,
  {
    hostId: u16(0),
    numRegions: range(u8(2), 0, MAX_DC_REGIONS),
    regions: list(u8(3), REGION_RECORD),
    extentsSupported: tail(u32(0)),
    extentsAvailable: tail(u32(4)),
    tagsSupported: tail(u32(8)),
    tagsAvailable: tail(u32(12)),
  },
  16,
);

// ---- 5602h Set DC Region Configuration (r3.2 §7.6.7.6.3) ---------------

const SET_REGION_REQ = struct('SetDcRegionConfigRequest', 16, {
  region: dcRegion(0),
  /** One of the sizes 5600h reports for the region (a power of two). */
  blockSize: u64(4),
  // Flags byte: bit 0 Sanitize on Release, bits 7:1 reserved.
  sanitizeOnRelease: flag(12, 0),
});

// ---- 5603h Get DC Region Extent Lists (§7.6.7.6.4) -------------------------

const EXTENT = struct('Extent', 40, {
  startDpa: u64(0),
  len: u64(8),
  tag: uuid(16),
  sharedSeq: u16(32),
});
const EXTENTS_REQ = struct('GetDcRegionExtentListsRequest', 12, {
  hostId: u16(0),
  extentCount: u32(4),
  startIndex: u32(8),
});
const EXTENTS_RSP = struct('GetDcRegionExtentListsResponse', 24, {
  hostId: u16(0),
  startIndex: u32(4),
  extents: list(u32(8), EXTENT),
  totalExtents: u32(12),
  generation: u32(16),
});

// ---- 5604h Initiate Dynamic Capacity Add (§7.6.7.6.5) ----------------------

const ADD_REQ = struct('InitiateDcAddRequest', 32, {
  hostId: u16(0),
  selectionPolicy: oneOf(u8(2), SelectionPolicy, 'a selection policy'),
  region: dcRegion(3),
  length: u64(4),
  tag: uuid(12),
  extents: list(u32(28), EXTENT),
});

// ---- 5605h Initiate Dynamic Capacity Release (§7.6.7.6.6) ------------------

const RELEASE_REQ = struct('InitiateDcReleaseRequest', 32, {
  hostId: u16(0),
  // Flags byte: bits 3:0 the removal policy, bit 4 forced removal, bits 7:5 reserved.
  removalPolicy: oneOf(bits(2, 0, 4), RemovalPolicy, 'a removal policy'),
  forced: flag(2, 4),
  // The region at byte 3 as in the Add request: QEMU calls it reg_num and
  // ignores it; r3.1 has the byte reserved and libcxlmi sends 0 there.
  region: dcRegion(3),
  length: u64(4),
  tag: uuid(12),
  extents: list(u32(28), EXTENT),
});

// ---- 5606h / 5607h Dynamic Capacity Add / Remove Reference (r3.2 §7.6.7.6.7–8)

const REFERENCE_REQ = struct('DcReferenceRequest', 16, {
  tag: uuid(0),
});

// ---- 5608h Dynamic Capacity List Tags (r3.2 §7.6.7.6.9) -----------------

const TAGS_REQ = struct('DcListTagsRequest', 8, {
  startIndex: u32(0),
  maxTags: u32(4),
});
const TAG_RECORD = struct('DcTagInfo', 84, {
  tag: uuid(0),
  flags: u8(16),
  /** Hosts holding capacity with this tag. */
  references: bitmap(20, TAG_BITMAP_BYTES),
  /** Hosts whose hold on it is changing (a release accepted, not yet complete). */
  pending: bitmap(52, TAG_BITMAP_BYTES),
});
const TAGS_RSP = struct('DcListTagsResponse', 16, {
  generation: u32(0),
  totalTags: u32(4),
  tags: list(u32(8), TAG_RECORD),
  // Validity bitmap: bit 0 the Reference Bitmaps are valid, bit 1 the Pending Reference Bitmaps.
  referencesValid: flag(12, 0),
  pendingValid: flag(12, 1),
});

// ---- the payload types, as the layouts declare them ---------------------------

export type IdentifyResponse = Of<typeof IDENTIFY_RSP>;
export type MhdInfoRequest = Of<typeof MHD_REQ>;
export type MhdInfoResponse = Of<typeof MHD_RSP>;
export type HeadInfoRequest = Of<typeof HEAD_REQ>;
export type HeadInfoRecord = Of<typeof HEAD_RECORD>;
export type HeadInfoResponse = Of<typeof HEAD_RSP>;
export type DcdInfoResponse = Of<typeof DCD_RSP>;
export type RegionConfigRequest = Of<typeof REGION_REQ>;
export type RegionConfig = Of<typeof REGION_RECORD>;
export type RegionConfigResponse = Of<typeof REGION_RSP>;
export type Extent = Of<typeof EXTENT>;
export type ExtentListRequest = Of<typeof EXTENTS_REQ>;
export type ExtentListResponse = Of<typeof EXTENTS_RSP>;
export type AddRequest = Of<typeof ADD_REQ>;
export type ReleaseRequest = Of<typeof RELEASE_REQ>;
export type SetRegionConfigRequest = Of<typeof SET_REGION_REQ>;
export type ReferenceRequest = Of<typeof REFERENCE_REQ>;
export type TagListRequest = Of<typeof TAGS_REQ>;
export type TagInfo = Of<typeof TAG_RECORD>;
export type TagListResponse = Of<typeof TAGS_RSP>;

// ---- the opcode table -------------------------------------------------------

/**
 * A command whose response is a list the request bounds: `request` names the
 * request field that caps it, `response` the response's list.
 */
export interface Paging {
  readonly request: string;
  readonly response: string;
}

export interface CommandSpec<Req, Rsp> {
  readonly opcode: Opcode;
  readonly name: string;
  readonly request: Codec<Req>;
  readonly response: Codec<Rsp>;
  readonly page?: Paging;
}

type KeysOf<T, V> = { [K in keyof T]: T[K] extends V ? K : never }[keyof T] & string;

/** A table entry; `page` is checked against the two payloads' fields here, then kept as plain names. */
function command<Req, Rsp>(spec: {
  opcode: Opcode;
  name: string;
  request: Codec<Req>;
  response: Codec<Rsp>;
  page?: { request: KeysOf<Req, number>; response: KeysOf<Rsp, unknown[]> };
}): CommandSpec<Req, Rsp> {
  return spec;
}

const empty = codec(EMPTY);

const TABLE = {
  identify: command({ opcode: Opcode.Identify, name: 'Identify', request: empty, response: codec(IDENTIFY_RSP) }),
  mhdInfo: command({
    opcode: Opcode.GetMhdInfo,
    name: 'Get Multi-Headed Info',
    request: codec(MHD_REQ),
    response: codec(MHD_RSP),
    page: { request: 'ldMapListLimit', response: 'ldMap' },
  }),
  headInfo: command({
    opcode: Opcode.GetHeadInfo,
    name: 'Get Head Info',
    request: codec(HEAD_REQ),
    response: codec(HEAD_RSP),
    page: { request: 'numHeads', response: 'heads' },
  }),
  dcdInfo: command({ opcode: Opcode.GetDcdInfo, name: 'Get DCD Info', request: empty, response: codec(DCD_RSP) }),
  hostRegionConfig: command({
    opcode: Opcode.GetHostDcRegionConfig,
    name: 'Get Host DC Region Configuration',
    request: codec(REGION_REQ),
    response: codec(REGION_RSP, (v) => {
      if (v.regions.length > v.numRegions) throw badField('regions', `${v.regions.length} returned of ${v.numRegions} regions`);
    }),
    page: { request: 'regionCount', response: 'regions' },
  }),
  setRegionConfig: command({
    opcode: Opcode.SetDcRegionConfig,
    name: 'Set DC Region Configuration',
    request: codec(SET_REGION_REQ),
    response: empty,
  }),
  extentList: command({
    opcode: Opcode.GetDcRegionExtentLists,
    name: 'Get DC Region Extent Lists',
    request: codec(EXTENTS_REQ),
    response: codec(EXTENTS_RSP, (v) => {
      if (v.startIndex + v.extents.length > v.totalExtents) {
        throw badField('extents', `${v.extents.length} extents from index ${v.startIndex} run past the total of ${v.totalExtents}`);
      }
    }),
    page: { request: 'extentCount', response: 'extents' },
  }),
  initiateAdd: command({ opcode: Opcode.InitiateDcAdd, name: 'Initiate Dynamic Capacity Add', request: codec(ADD_REQ), response: empty }),
  initiateRelease: command({
    opcode: Opcode.InitiateDcRelease,
    name: 'Initiate Dynamic Capacity Release',
    request: codec(RELEASE_REQ),
    response: empty,
  }),
  addReference: command({
    opcode: Opcode.AddDcReference,
    name: 'Dynamic Capacity Add Reference',
    request: codec(REFERENCE_REQ),
    response: empty,
  }),
  removeReference: command({
    opcode: Opcode.RemoveDcReference,
    name: 'Dynamic Capacity Remove Reference',
    request: codec(REFERENCE_REQ),
    response: empty,
  }),
  listTags: command({
    opcode: Opcode.ListDcTags,
    name: 'Dynamic Capacity List Tags',
    request: codec(TAGS_REQ),
    response: codec(TAGS_RSP, (v) => {
      if (v.tags.length > v.totalTags) throw badField('tags', `${v.tags.length} returned of ${v.totalTags} tags`);
    }),
    page: { request: 'maxTags', response: 'tags' },
  }),
};

export type CommandName = keyof typeof TABLE;
export type RequestOf<K extends CommandName> = (typeof TABLE)[K] extends CommandSpec<infer Q, unknown> ? Q : never;
export type ResponseOf<K extends CommandName> = (typeof TABLE)[K] extends CommandSpec<unknown, infer R> ? R : never;

/** Typed per name, so `COMMANDS[name]` with a generic name keeps its request and response types. */
export const COMMANDS: { readonly [K in CommandName]: CommandSpec<RequestOf<K>, ResponseOf<K>> } = TABLE;

export const COMMAND_BY_OPCODE: ReadonlyMap<number, { key: CommandName; spec: CommandSpec<unknown, unknown> }> = new Map(
  (Object.keys(COMMANDS) as CommandName[]).map((key) => [COMMANDS[key].opcode, { key, spec: COMMANDS[key] }]),
);

export function commandName(opcode: number): string {
  return COMMAND_BY_OPCODE.get(opcode)?.spec.name ?? `opcode ${opcode.toString(16).padStart(4, '0')}h`;
}
