// The FM-API commands cxl-mhd serves: for each opcode one request codec and
// one response codec, written once as the byte layouts of DESIGN.md §4
// (CXL r3.1 §7.6.7.5 MHD and §7.6.7.6 DCD management, §8.2.9.1.1 Identify).
// Everything the server, the client and the tests know about payloads is
// in COMMANDS.
import { badField } from './errors.js';
import { decodeParts, encodeParts, type Layout, type Parts, type Raw, struct } from './layout.js';

/** Decode lengths and total capacity travel in 256 MiB units; codecs speak bytes. */
export const CAPACITY_UNIT = 256 * 2 ** 20;
/** A DCD has at most eight DC regions. */
export const MAX_DC_REGIONS = 8;
export const ZERO_TAG = '00000000-0000-0000-0000-000000000000';

export enum Opcode {
  Identify = 0x0001,
  GetMhdInfo = 0x5500,
  GetHeadInfo = 0x5501,
  GetDcdInfo = 0x5600,
  GetHostDcRegionConfig = 0x5601,
  GetDcRegionExtentLists = 0x5603,
  InitiateDcAdd = 0x5604,
  InitiateDcRelease = 0x5605,
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

export type Empty = Record<string, never>;

export interface IdentifyResponse {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  serialNumber: bigint;
  /** The largest message (header included) the component accepts is 2^n bytes, n in 8..20. */
  maxMessageSizeLog2: number;
  /** 3 = type 3 memory device. */
  componentType: number;
}

export interface MhdInfoRequest {
  startLd: number;
  ldMapListLimit: number;
}
export interface MhdInfoResponse {
  numLds: number;
  numHeads: number;
  startLd: number;
  ldMap: number[];
}

export interface HeadInfoRequest {
  startHead: number;
  numHeads: number;
}
export interface HeadInfoRecord {
  port: number;
  maxLinkWidth: number;
  negotiatedLinkWidth: number;
  supportedLinkSpeeds: number;
  maxLinkSpeed: number;
  currentLinkSpeed: number;
  ltssmState: number;
  firstNegotiatedLane: number;
  linkStateFlags: number;
}
export interface HeadInfoResponse {
  heads: HeadInfoRecord[];
}

export interface DcdInfoResponse {
  numHosts: number;
  /** Bit n set = SelectionPolicy n supported. */
  addPolicyMask: number;
  /** Bit n set = RemovalPolicy n supported. */
  removalPolicyMask: number;
  sanitizeMask: number;
  totalCapacityBytes: number;
  /** One mask per supported region (bit n = 2^n-byte blocks); its length is the region count. */
  regionBlockSizeMasks: bigint[];
}

export interface RegionConfigRequest {
  hostId: number;
  regionCount: number;
  startRegion: number;
}
export interface RegionConfig {
  base: number;
  decodeLength: number;
  length: number;
  blockSize: number;
  dsmasFlags: number;
  sanitizeOnRelease: number;
}
export interface RegionConfigResponse {
  hostId: number;
  numRegions: number;
  regions: RegionConfig[];
  extentsSupported: number;
  extentsAvailable: number;
  tagsSupported: number;
  tagsAvailable: number;
}

export interface Extent {
  startDpa: number;
  len: number;
  tag: string;
  sharedSeq: number;
}

export interface ExtentListRequest {
  hostId: number;
  extentCount: number;
  startIndex: number;
}
export interface ExtentListResponse {
  hostId: number;
  startIndex: number;
  totalExtents: number;
  generation: number;
  extents: Extent[];
}

export interface AddRequest {
  hostId: number;
  selectionPolicy: SelectionPolicy;
  region: number;
  length: number;
  tag: string;
  extents: Extent[];
}

export interface ReleaseRequest {
  hostId: number;
  removalPolicy: RemovalPolicy;
  forced: boolean;
  region: number;
  length: number;
  tag: string;
  extents: Extent[];
}

export interface Codec<T> {
  readonly layout: Layout;
  encode(value: T): Uint8Array;
  decode(payload: Uint8Array): T;
}

/** `validate` runs on both sides, so what one end refuses to send the other refuses to accept. */
function codec<T>(layout: Layout, toParts: (v: T) => Parts, fromParts: (p: Parts) => T, validate?: (v: T) => void): Codec<T> {
  return {
    layout,
    encode(value) {
      validate?.(value);
      return encodeParts(layout, toParts(value));
    },
    decode(payload) {
      const value = fromParts(decodeParts(layout, payload));
      validate?.(value);
      return value;
    },
  };
}

const EMPTY_LAYOUT: Layout = { head: struct('Empty', 0, []) };
const empty: Codec<Empty> = codec(
  EMPTY_LAYOUT,
  () => ({ head: {}, list: [], tail: {} }),
  () => ({}),
);

const n = (r: Raw, k: string) => r[k] as number;
const big = (r: Raw, k: string) => r[k] as bigint;
const s = (r: Raw, k: string) => r[k] as string;
const parts = (head: Raw, list: Raw[] = [], tail: Raw = {}): Parts => ({ head, list, tail });

function units(bytes: number, field: string): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % CAPACITY_UNIT !== 0) {
    throw badField(field, `${bytes} is not a whole number of 256 MiB units`);
  }
  return bytes / CAPACITY_UNIT;
}
function fromUnits(u: number, field: string): number {
  const bytes = u * CAPACITY_UNIT;
  if (!Number.isSafeInteger(bytes)) throw badField(field, `${u} units of 256 MiB is beyond 2^53-1 bytes`);
  return bytes;
}

// ---- 0001h Identify -------------------------------------------------------

const IDENTIFY_RSP = struct('IdentifyResponse', 18, [
  ['vendorId', 'u16', 0],
  ['deviceId', 'u16', 2],
  ['subsystemVendorId', 'u16', 4],
  ['subsystemId', 'u16', 6],
  ['serialNumber', 'bits64', 8],
  ['maxMessageSizeLog2', 'u8', 16],
  ['componentType', 'u8', 17],
]);

const identify = {
  opcode: Opcode.Identify,
  name: 'Identify',
  request: empty,
  response: codec<IdentifyResponse>(
    { head: IDENTIFY_RSP },
    (v) => parts({ ...v }),
    ({ head: h }) => ({
      vendorId: n(h, 'vendorId'),
      deviceId: n(h, 'deviceId'),
      subsystemVendorId: n(h, 'subsystemVendorId'),
      subsystemId: n(h, 'subsystemId'),
      serialNumber: big(h, 'serialNumber'),
      maxMessageSizeLog2: n(h, 'maxMessageSizeLog2'),
      componentType: n(h, 'componentType'),
    }),
    (v) => {
      if (v.maxMessageSizeLog2 < 8 || v.maxMessageSizeLog2 > 20)
        throw badField('maxMessageSizeLog2', `${v.maxMessageSizeLog2} is outside 8..20`);
    },
  ),
};

// ---- 5500h Get Multi-Headed Info ------------------------------------------

const MHD_REQ = struct('GetMhdInfoRequest', 2, [
  ['startLd', 'u8', 0],
  ['ldMapListLimit', 'u8', 1],
]);
const MHD_RSP = struct('GetMhdInfoResponse', 8, [
  ['numLds', 'u8', 0],
  ['numHeads', 'u8', 1],
  ['startLd', 'u8', 4],
  ['ldMapLength', 'u8', 5],
]);
const LD_MAP_ENTRY = struct('LdMapEntry', 1, [['head', 'u8', 0]]);

const mhdInfo = {
  opcode: Opcode.GetMhdInfo,
  name: 'Get Multi-Headed Info',
  request: codec<MhdInfoRequest>(
    { head: MHD_REQ },
    (v) => parts({ ...v }),
    ({ head: h }) => ({ startLd: n(h, 'startLd'), ldMapListLimit: n(h, 'ldMapListLimit') }),
  ),
  response: codec<MhdInfoResponse>(
    { head: MHD_RSP, list: { of: LD_MAP_ENTRY, count: 'ldMapLength' } },
    (v) =>
      parts(
        { numLds: v.numLds, numHeads: v.numHeads, startLd: v.startLd },
        v.ldMap.map((head) => ({ head })),
      ),
    ({ head: h, list }) => ({
      numLds: n(h, 'numLds'),
      numHeads: n(h, 'numHeads'),
      startLd: n(h, 'startLd'),
      ldMap: list.map((r) => n(r, 'head')),
    }),
    (v) => {
      if (v.ldMap.length > 255) throw badField('ldMap', `${v.ldMap.length} entries do not fit the u8 LD Map Length`);
    },
  ),
  page: { request: 'ldMapListLimit', response: 'ldMap' },
};

// ---- 5501h Get Head Info --------------------------------------------------

const HEAD_REQ = struct('GetHeadInfoRequest', 2, [
  ['startHead', 'u8', 0],
  ['numHeads', 'u8', 1],
]);
const HEAD_RSP = struct('GetHeadInfoResponse', 4, [['numHeads', 'u8', 0]]);
const HEAD_RECORD = struct('HeadInfoRecord', 9, [
  ['port', 'u8', 0],
  ['maxLinkWidth', 'u8', 1],
  ['negotiatedLinkWidth', 'u8', 2],
  ['supportedLinkSpeeds', 'u8', 3],
  ['maxLinkSpeed', 'u8', 4],
  ['currentLinkSpeed', 'u8', 5],
  ['ltssmState', 'u8', 6],
  ['firstNegotiatedLane', 'u8', 7],
  ['linkStateFlags', 'u8', 8],
]);

const headInfo = {
  opcode: Opcode.GetHeadInfo,
  name: 'Get Head Info',
  request: codec<HeadInfoRequest>(
    { head: HEAD_REQ },
    (v) => parts({ ...v }),
    ({ head: h }) => ({ startHead: n(h, 'startHead'), numHeads: n(h, 'numHeads') }),
  ),
  response: codec<HeadInfoResponse>(
    { head: HEAD_RSP, list: { of: HEAD_RECORD, count: 'numHeads' } },
    (v) =>
      parts(
        {},
        v.heads.map((r) => ({ ...r })),
      ),
    ({ list }) => ({ heads: list.map((r) => ({ ...r }) as unknown as HeadInfoRecord) }),
    (v) => {
      if (v.heads.length > 255) throw badField('heads', `${v.heads.length} records do not fit the u8 Number of Heads`);
    },
  ),
  page: { request: 'numHeads', response: 'heads' },
};

// ---- 5600h Get DCD Info ---------------------------------------------------

const DCD_RSP = struct('GetDcdInfoResponse', 84, [
  ['numHosts', 'u8', 0],
  ['numRegions', 'u8', 1],
  ['addPolicyMask', 'u16', 4],
  ['removalPolicyMask', 'u16', 8],
  ['sanitizeMask', 'u8', 10],
  ['totalCapacity', 'u64', 12],
  ...Array.from({ length: MAX_DC_REGIONS }, (_, i) => [`blockSizeMask${i}`, 'bits64', 20 + 8 * i] as const),
]);

const dcdInfo = {
  opcode: Opcode.GetDcdInfo,
  name: 'Get DCD Info',
  request: empty,
  response: codec<DcdInfoResponse>(
    { head: DCD_RSP },
    (v) => {
      const head: Raw = {
        numHosts: v.numHosts,
        numRegions: v.regionBlockSizeMasks.length,
        addPolicyMask: v.addPolicyMask,
        removalPolicyMask: v.removalPolicyMask,
        sanitizeMask: v.sanitizeMask,
        totalCapacity: units(v.totalCapacityBytes, 'totalCapacityBytes'),
      };
      // Masks of regions the device lacks are reserved: zero.
      for (let i = 0; i < MAX_DC_REGIONS; i++) head[`blockSizeMask${i}`] = v.regionBlockSizeMasks[i] ?? 0n;
      return parts(head);
    },
    ({ head: h }) => {
      const count = n(h, 'numRegions');
      if (count > MAX_DC_REGIONS) throw badField('numRegions', `${count} is more than ${MAX_DC_REGIONS}`);
      return {
        numHosts: n(h, 'numHosts'),
        addPolicyMask: n(h, 'addPolicyMask'),
        removalPolicyMask: n(h, 'removalPolicyMask'),
        sanitizeMask: n(h, 'sanitizeMask'),
        totalCapacityBytes: fromUnits(n(h, 'totalCapacity'), 'totalCapacity'),
        regionBlockSizeMasks: Array.from({ length: count }, (_, i) => big(h, `blockSizeMask${i}`)),
      };
    },
    (v) => {
      if (v.regionBlockSizeMasks.length > MAX_DC_REGIONS) {
        throw badField('regionBlockSizeMasks', `${v.regionBlockSizeMasks.length} regions is more than ${MAX_DC_REGIONS}`);
      }
    },
  ),
};

// ---- 5601h Get Host DC Region Configuration -------------------------------

const REGION_REQ = struct('GetHostDcRegionConfigRequest', 4, [
  ['hostId', 'u16', 0],
  ['regionCount', 'u8', 2],
  ['startRegion', 'u8', 3],
]);
const REGION_RSP = struct('GetHostDcRegionConfigResponse', 4, [
  ['hostId', 'u16', 0],
  ['numRegions', 'u8', 2],
  ['regionsReturned', 'u8', 3],
]);
const REGION_RECORD = struct('RegionConfig', 40, [
  ['base', 'u64', 0],
  ['decodeLength', 'u64', 8],
  ['length', 'u64', 16],
  ['blockSize', 'u64', 24],
  ['dsmasFlags', 'u8', 32],
  ['sanitizeOnRelease', 'u8', 36],
]);
const REGION_TAIL = struct('GetHostDcRegionConfigTail', 16, [
  ['extentsSupported', 'u32', 0],
  ['extentsAvailable', 'u32', 4],
  ['tagsSupported', 'u32', 8],
  ['tagsAvailable', 'u32', 12],
]);

const regionConfig = {
  opcode: Opcode.GetHostDcRegionConfig,
  name: 'Get Host DC Region Configuration',
  request: codec<RegionConfigRequest>(
    { head: REGION_REQ },
    (v) => parts({ ...v }),
    ({ head: h }) => ({ hostId: n(h, 'hostId'), regionCount: n(h, 'regionCount'), startRegion: n(h, 'startRegion') }),
  ),
  response: codec<RegionConfigResponse>(
    { head: REGION_RSP, list: { of: REGION_RECORD, count: 'regionsReturned' }, tail: REGION_TAIL },
    (v) =>
      parts(
        { hostId: v.hostId, numRegions: v.numRegions },
        v.regions.map((r) => ({ ...r, decodeLength: units(r.decodeLength, 'decodeLength') })),
        {
          extentsSupported: v.extentsSupported,
          extentsAvailable: v.extentsAvailable,
          tagsSupported: v.tagsSupported,
          tagsAvailable: v.tagsAvailable,
        },
      ),
    ({ head: h, list, tail: t }) => ({
      hostId: n(h, 'hostId'),
      numRegions: n(h, 'numRegions'),
      regions: list.map((r) => ({
        base: n(r, 'base'),
        decodeLength: fromUnits(n(r, 'decodeLength'), 'decodeLength'),
        length: n(r, 'length'),
        blockSize: n(r, 'blockSize'),
        dsmasFlags: n(r, 'dsmasFlags'),
        sanitizeOnRelease: n(r, 'sanitizeOnRelease'),
      })),
      extentsSupported: n(t, 'extentsSupported'),
      extentsAvailable: n(t, 'extentsAvailable'),
      tagsSupported: n(t, 'tagsSupported'),
      tagsAvailable: n(t, 'tagsAvailable'),
    }),
    (v) => {
      if (v.numRegions > MAX_DC_REGIONS) throw badField('numRegions', `${v.numRegions} is more than ${MAX_DC_REGIONS}`);
      if (v.regions.length > v.numRegions) throw badField('regions', `${v.regions.length} returned of ${v.numRegions} regions`);
    },
  ),
  page: { request: 'regionCount', response: 'regions' },
};

// ---- 5603h Get DC Region Extent Lists -------------------------------------

const EXTENT = struct('Extent', 40, [
  ['startDpa', 'u64', 0],
  ['len', 'u64', 8],
  ['tag', 'uuid', 16],
  ['sharedSeq', 'u16', 32],
]);
const toExtent = (r: Raw): Extent => ({ startDpa: n(r, 'startDpa'), len: n(r, 'len'), tag: s(r, 'tag'), sharedSeq: n(r, 'sharedSeq') });
const fromExtent = (e: Extent): Raw => ({ startDpa: e.startDpa, len: e.len, tag: e.tag, sharedSeq: e.sharedSeq });

const EXTENTS_REQ = struct('GetDcRegionExtentListsRequest', 12, [
  ['hostId', 'u16', 0],
  ['extentCount', 'u32', 4],
  ['startIndex', 'u32', 8],
]);
const EXTENTS_RSP = struct('GetDcRegionExtentListsResponse', 24, [
  ['hostId', 'u16', 0],
  ['startIndex', 'u32', 4],
  ['extentsReturned', 'u32', 8],
  ['totalExtents', 'u32', 12],
  ['generation', 'u32', 16],
]);

const extentList = {
  opcode: Opcode.GetDcRegionExtentLists,
  name: 'Get DC Region Extent Lists',
  request: codec<ExtentListRequest>(
    { head: EXTENTS_REQ },
    (v) => parts({ ...v }),
    ({ head: h }) => ({ hostId: n(h, 'hostId'), extentCount: n(h, 'extentCount'), startIndex: n(h, 'startIndex') }),
  ),
  response: codec<ExtentListResponse>(
    { head: EXTENTS_RSP, list: { of: EXTENT, count: 'extentsReturned' } },
    (v) =>
      parts(
        { hostId: v.hostId, startIndex: v.startIndex, totalExtents: v.totalExtents, generation: v.generation },
        v.extents.map(fromExtent),
      ),
    ({ head: h, list }) => ({
      hostId: n(h, 'hostId'),
      startIndex: n(h, 'startIndex'),
      totalExtents: n(h, 'totalExtents'),
      generation: n(h, 'generation'),
      extents: list.map(toExtent),
    }),
    (v) => {
      if (v.startIndex + v.extents.length > v.totalExtents) {
        throw badField('extents', `${v.extents.length} extents from index ${v.startIndex} run past the total of ${v.totalExtents}`);
      }
    },
  ),
  page: { request: 'extentCount', response: 'extents' },
};

// ---- 5604h Initiate Dynamic Capacity Add / 5605h Release ------------------

const ADD_REQ = struct('InitiateDcAddRequest', 32, [
  ['hostId', 'u16', 0],
  ['selectionPolicy', 'u8', 2],
  ['region', 'u8', 3],
  ['length', 'u64', 4],
  ['tag', 'uuid', 12],
  ['extentCount', 'u32', 28],
]);
// DESIGN.md §4 puts the region at byte 3 as in the Add request (QEMU calls it
// reg_num and ignores it; the spec and libcxlmi have it reserved, so they send 0).
const RELEASE_REQ = struct('InitiateDcReleaseRequest', 32, [
  ['hostId', 'u16', 0],
  ['flags', 'u8', 2],
  ['region', 'u8', 3],
  ['length', 'u64', 4],
  ['tag', 'uuid', 12],
  ['extentCount', 'u32', 28],
]);
const REMOVAL_POLICY_MASK = 0x0f;
const FORCED_REMOVAL = 1 << 4;

function checkRegion(region: number): void {
  if (region >= MAX_DC_REGIONS) throw badField('region', `${region} is not a DC region (0..${MAX_DC_REGIONS - 1})`);
}

const initiateAdd = {
  opcode: Opcode.InitiateDcAdd,
  name: 'Initiate Dynamic Capacity Add',
  request: codec<AddRequest>(
    { head: ADD_REQ, list: { of: EXTENT, count: 'extentCount' } },
    (v) =>
      parts(
        { hostId: v.hostId, selectionPolicy: v.selectionPolicy, region: v.region, length: v.length, tag: v.tag },
        v.extents.map(fromExtent),
      ),
    ({ head: h, list }) => ({
      hostId: n(h, 'hostId'),
      selectionPolicy: n(h, 'selectionPolicy'),
      region: n(h, 'region'),
      length: n(h, 'length'),
      tag: s(h, 'tag'),
      extents: list.map(toExtent),
    }),
    (v) => {
      if (!(v.selectionPolicy in SelectionPolicy))
        throw badField('selectionPolicy', `${v.selectionPolicy} is not a selection policy (0..3)`);
      checkRegion(v.region);
    },
  ),
  response: empty,
};

const initiateRelease = {
  opcode: Opcode.InitiateDcRelease,
  name: 'Initiate Dynamic Capacity Release',
  request: codec<ReleaseRequest>(
    { head: RELEASE_REQ, list: { of: EXTENT, count: 'extentCount' } },
    (v) => {
      if (typeof v.forced !== 'boolean') throw badField('forced', `${String(v.forced)} is not a boolean`);
      if (!Number.isInteger(v.removalPolicy) || v.removalPolicy < 0 || v.removalPolicy > REMOVAL_POLICY_MASK) {
        throw badField('removalPolicy', `${v.removalPolicy} does not fit in 4 bits`);
      }
      const flags = v.removalPolicy | (v.forced ? FORCED_REMOVAL : 0);
      return parts({ hostId: v.hostId, flags, region: v.region, length: v.length, tag: v.tag }, v.extents.map(fromExtent));
    },
    ({ head: h, list }) => {
      const flags = n(h, 'flags');
      return {
        hostId: n(h, 'hostId'),
        // Bits 7:5 of the flags are reserved.
        removalPolicy: flags & REMOVAL_POLICY_MASK,
        forced: (flags & FORCED_REMOVAL) !== 0,
        region: n(h, 'region'),
        length: n(h, 'length'),
        tag: s(h, 'tag'),
        extents: list.map(toExtent),
      };
    },
    (v) => {
      if (!(v.removalPolicy in RemovalPolicy)) throw badField('removalPolicy', `${v.removalPolicy} is not a removal policy (0..1)`);
      checkRegion(v.region);
    },
  ),
  response: empty,
};

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

export const COMMANDS = {
  identify: identify as CommandSpec<Empty, IdentifyResponse>,
  mhdInfo: mhdInfo as CommandSpec<MhdInfoRequest, MhdInfoResponse>,
  headInfo: headInfo as CommandSpec<HeadInfoRequest, HeadInfoResponse>,
  dcdInfo: dcdInfo as CommandSpec<Empty, DcdInfoResponse>,
  hostRegionConfig: regionConfig as CommandSpec<RegionConfigRequest, RegionConfigResponse>,
  extentList: extentList as CommandSpec<ExtentListRequest, ExtentListResponse>,
  initiateAdd: initiateAdd as CommandSpec<AddRequest, Empty>,
  initiateRelease: initiateRelease as CommandSpec<ReleaseRequest, Empty>,
} as const;

export type CommandName = keyof typeof COMMANDS;
export type RequestOf<K extends CommandName> = (typeof COMMANDS)[K] extends CommandSpec<infer Q, unknown> ? Q : never;
export type ResponseOf<K extends CommandName> = (typeof COMMANDS)[K] extends CommandSpec<unknown, infer R> ? R : never;

export const COMMAND_BY_OPCODE: ReadonlyMap<number, { key: CommandName; spec: CommandSpec<unknown, unknown> }> = new Map(
  (Object.keys(COMMANDS) as CommandName[]).map((key) => [
    COMMANDS[key].opcode,
    { key, spec: COMMANDS[key] as CommandSpec<unknown, unknown> },
  ]),
);

export function commandName(opcode: number): string {
  return COMMAND_BY_OPCODE.get(opcode)?.spec.name ?? `opcode ${opcode.toString(16).padStart(4, '0')}h`;
}
