// Golden bytes for every FM-API request and response cxl-mhd speaks, written
// by hand from the CXL r3.1 payload tables (not produced by the codec):
// §8.2.9.1.1 Identify (0001h); §7.6.7.5.1 Get Multi-Headed Info (5500h),
// §7.6.7.5.2 Get Head Info (5501h); §7.6.7.6.1 Get DCD Info (5600h),
// §7.6.7.6.2 Get Host DC Region Configuration (5601h), §7.6.7.6.4 Get DC
// Region Extent Lists (5603h), §7.6.7.6.5 Initiate Dynamic Capacity Add
// (5604h), §7.6.7.6.6 Initiate Dynamic Capacity Release (5605h). Plus round
// trips and the refusal of every malformed field.
import { describe, expect, it } from 'vitest';
import {
  type AddRequest,
  COMMANDS,
  type CommandName,
  type DcdInfoResponse,
  type ExtentListResponse,
  type HeadInfoResponse,
  type IdentifyResponse,
  type MhdInfoResponse,
  type RegionConfigResponse,
  type ReleaseRequest,
  RemovalPolicy,
  SelectionPolicy,
  ZERO_TAG,
} from '../../src/fmapi/commands.js';
import { PayloadError } from '../../src/fmapi/errors.js';
import { ReturnCode } from '../../src/fmapi/message.js';
import { hex, toHex, zeros } from '../helpers/fmapi-util.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const TAG = '00112233-4455-6677-8899-aabbccddeeff';

interface Golden {
  name: string;
  command: CommandName;
  side: 'request' | 'response';
  value: unknown;
  bytes: Uint8Array;
}

const identifyRsp: IdentifyResponse = {
  vendorId: 0x8086,
  deviceId: 0x0d93,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1100,
  serialNumber: 0x0123_4567_89ab_cdefn,
  maxMessageSizeLog2: 16,
  componentType: 3,
};

const mhdRsp: MhdInfoResponse = { numLds: 4, numHeads: 4, startLd: 1, ldMap: [1, 2, 3] };

const headRsp: HeadInfoResponse = {
  heads: [
    {
      port: 0,
      maxLinkWidth: 0x10,
      negotiatedLinkWidth: 0x08,
      supportedLinkSpeeds: 0x1f,
      maxLinkSpeed: 5,
      currentLinkSpeed: 4,
      ltssmState: 0x11,
      firstNegotiatedLane: 0,
      linkStateFlags: 1,
    },
    {
      port: 1,
      maxLinkWidth: 0x10,
      negotiatedLinkWidth: 0x10,
      supportedLinkSpeeds: 0x1f,
      maxLinkSpeed: 5,
      currentLinkSpeed: 5,
      ltssmState: 0x11,
      firstNegotiatedLane: 8,
      linkStateFlags: 0,
    },
  ],
};

const dcdRsp: DcdInfoResponse = {
  numHosts: 4,
  addPolicyMask: 0x0004,
  removalPolicyMask: 0x0002,
  sanitizeMask: 0,
  totalCapacityBytes: 4 * GiB,
  regionBlockSizeMasks: [0x20_0000n],
};

const regionRsp: RegionConfigResponse = {
  hostId: 0x0102,
  numRegions: 1,
  regions: [{ base: 4 * GiB, decodeLength: 4 * GiB, length: 4 * GiB, blockSize: 2 * MiB, dsmasFlags: 0x08, sanitizeOnRelease: 0 }],
  extentsSupported: 512,
  extentsAvailable: 510,
  tagsSupported: 256,
  tagsAvailable: 255,
};

const extentsRsp: ExtentListResponse = {
  hostId: 1,
  startIndex: 2,
  totalExtents: 3,
  generation: 7,
  extents: [{ startDpa: 0x1_0020_0000, len: 2 * MiB, tag: TAG, sharedSeq: 0 }],
};

const addReq: AddRequest = {
  hostId: 2,
  selectionPolicy: SelectionPolicy.Prescriptive,
  region: 0,
  length: 4 * MiB,
  tag: ZERO_TAG,
  extents: [
    { startDpa: 0x1_0000_0000, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 },
    { startDpa: 0x1_0040_0000, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 5 },
  ],
};

const releaseReq: ReleaseRequest = {
  hostId: 3,
  removalPolicy: RemovalPolicy.Prescriptive,
  forced: true,
  region: 0,
  length: 2 * MiB,
  tag: 'ffffffff-0000-0000-0000-000000000001',
  extents: [{ startDpa: 0x1_0000_0000, len: 2 * MiB, tag: ZERO_TAG, sharedSeq: 0 }],
};

const GOLDEN: Golden[] = [
  { name: '0001h request', command: 'identify', side: 'request', value: {}, bytes: hex('') },
  {
    name: '0001h response',
    command: 'identify',
    side: 'response',
    value: identifyRsp,
    bytes: hex(`
      86 80                    # pcie vendor id 8086h
      93 0d                    # pcie device id 0d93h
      f4 1a                    # subsystem vendor id
      00 11                    # subsystem id 1100h
      ef cd ab 89 67 45 23 01  # serial 0123456789abcdefh
      10                       # max message size 2^16
      03                       # component type: type 3
    `),
  },
  { name: '5500h request', command: 'mhdInfo', side: 'request', value: { startLd: 1, ldMapListLimit: 4 }, bytes: hex('01 04') },
  {
    name: '5500h response',
    command: 'mhdInfo',
    side: 'response',
    value: mhdRsp,
    bytes: hex(`
      04        # number of LDs
      04        # number of heads
      00 00     # reserved
      01        # start LD
      03        # LD map length
      00 00     # reserved
      01 02 03  # LD map
    `),
  },
  { name: '5501h request', command: 'headInfo', side: 'request', value: { startHead: 2, numHeads: 3 }, bytes: hex('02 03') },
  {
    name: '5501h response',
    command: 'headInfo',
    side: 'response',
    value: headRsp,
    bytes: hex(`
      02 00 00 00                  # number of heads, 3 reserved
      00 10 08 1f 05 04 11 00 01   # port 0: widths x16/x8, speeds, max 5, cur 4, LTSSM, lane 0, flags 1
      01 10 10 1f 05 05 11 08 00   # port 1
    `),
  },
  { name: '5600h request', command: 'dcdInfo', side: 'request', value: {}, bytes: hex('') },
  {
    name: '5600h response',
    command: 'dcdInfo',
    side: 'response',
    value: dcdRsp,
    bytes: hex(`
      04 01 00 00               # hosts 4, regions 1, reserved
      04 00                     # add (selection) policies: prescriptive
      00 00                     # reserved
      02 00                     # removal policies: prescriptive
      00                        # sanitize on release mask
      00                        # reserved
      10 00 00 00 00 00 00 00   # total dynamic capacity: 16 x 256 MiB
      00 00 20 00 00 00 00 00   # region 0 block sizes: 2 MiB
      ${zeros(7 * 8)}           # regions 1..7: none
    `),
  },
  {
    name: '5601h request',
    command: 'hostRegionConfig',
    side: 'request',
    value: { hostId: 0x0102, regionCount: 1, startRegion: 0 },
    bytes: hex('02 01 01 00'),
  },
  {
    name: '5601h response',
    command: 'hostRegionConfig',
    side: 'response',
    value: regionRsp,
    bytes: hex(`
      02 01                     # host id 0102h
      01                        # number of regions
      01                        # regions returned
      00 00 00 00 01 00 00 00   # base 4 GiB
      10 00 00 00 00 00 00 00   # decode length: 16 x 256 MiB
      00 00 00 00 01 00 00 00   # length 4 GiB
      00 00 20 00 00 00 00 00   # block size 2 MiB
      08 00 00 00               # DSMAS flags: sharable, 3 reserved
      00 00 00 00               # sanitize on release, 3 reserved
      00 02 00 00               # extents supported 512
      fe 01 00 00               # extents available 510
      00 01 00 00               # tags supported 256
      ff 00 00 00               # tags available 255
    `),
  },
  {
    name: '5603h request',
    command: 'extentList',
    side: 'request',
    value: { hostId: 1, extentCount: 16, startIndex: 2 },
    bytes: hex(`
      01 00        # host id
      00 00        # reserved
      10 00 00 00  # extent count 16
      02 00 00 00  # start index 2
    `),
  },
  {
    name: '5603h response',
    command: 'extentList',
    side: 'response',
    value: extentsRsp,
    bytes: hex(`
      01 00 00 00               # host id, reserved
      02 00 00 00               # start index
      01 00 00 00               # returned
      03 00 00 00               # total
      07 00 00 00               # generation
      00 00 00 00               # reserved
      00 00 20 00 01 00 00 00   # start DPA 1_0020_0000h
      00 00 20 00 00 00 00 00   # length 2 MiB
      00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff  # tag
      00 00                     # shared sequence
      ${zeros(6)}               # reserved
    `),
  },
  {
    name: '5604h request',
    command: 'initiateAdd',
    side: 'request',
    value: addReq,
    bytes: hex(`
      02 00                     # host id 2
      02                        # selection policy: prescriptive
      00                        # region 0
      00 00 40 00 00 00 00 00   # length 4 MiB
      ${zeros(16)}              # tag: none
      02 00 00 00               # extent count
      00 00 00 00 01 00 00 00   # [0] start DPA 1_0000_0000h
      00 00 20 00 00 00 00 00   #     length 2 MiB
      ${zeros(16)}              #     tag
      00 00 ${zeros(6)}         #     shared seq 0, reserved
      00 00 40 00 01 00 00 00   # [1] start DPA 1_0040_0000h
      00 00 20 00 00 00 00 00   #     length 2 MiB
      ${zeros(16)}              #     tag
      05 00 ${zeros(6)}         #     shared seq 5, reserved
    `),
  },
  { name: '5604h response', command: 'initiateAdd', side: 'response', value: {}, bytes: hex('') },
  {
    name: '5605h request',
    command: 'initiateRelease',
    side: 'request',
    value: releaseReq,
    bytes: hex(`
      03 00                     # host id 3
      11                        # flags: forced (bit 4) | prescriptive (1)
      00                        # region 0
      00 00 20 00 00 00 00 00   # length 2 MiB
      ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 01  # tag
      01 00 00 00               # extent count
      00 00 00 00 01 00 00 00   # start DPA 1_0000_0000h
      00 00 20 00 00 00 00 00   # length 2 MiB
      ${zeros(16)}              # tag
      00 00 ${zeros(6)}         # shared seq, reserved
    `),
  },
  { name: '5605h response', command: 'initiateRelease', side: 'response', value: {}, bytes: hex('') },
  {
    name: '5602h request',
    command: 'setRegionConfig',
    side: 'request',
    value: { region: 0, blockSize: 8 * MiB, sanitizeOnRelease: true },
    bytes: hex(`
      00                        # region 0
      00 00 00                  # reserved
      00 00 80 00 00 00 00 00   # block size 8 MiB
      01                        # flags: sanitize on release (bit 0)
      00 00 00                  # reserved
    `),
  },
  { name: '5602h response', command: 'setRegionConfig', side: 'response', value: {}, bytes: hex('') },
  {
    name: '5606h request',
    command: 'addReference',
    side: 'request',
    value: { tag: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' },
    bytes: hex('0f 1e 2d 3c 4b 5a 69 78 87 96 a5 b4 c3 d2 e1 f0  # tag, in written order'),
  },
  { name: '5606h response', command: 'addReference', side: 'response', value: {}, bytes: hex('') },
  {
    name: '5607h request',
    command: 'removeReference',
    side: 'request',
    value: { tag: 'ffffffff-0000-0000-0000-000000000001' },
    bytes: hex('ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 01  # tag'),
  },
  { name: '5607h response', command: 'removeReference', side: 'response', value: {}, bytes: hex('') },
  {
    name: '5608h request',
    command: 'listTags',
    side: 'request',
    value: { startIndex: 1, maxTags: 2 },
    bytes: hex(`
      01 00 00 00  # start index 1
      02 00 00 00  # max tags 2
    `),
  },
  {
    name: '5608h response',
    command: 'listTags',
    side: 'response',
    value: {
      generation: 9,
      totalTags: 3,
      referencesValid: true,
      pendingValid: true,
      tags: [
        { tag: '00112233-4455-6677-8899-aabbccddeeff', flags: 1, references: [0, 2, 9], pending: [] },
        { tag: 'ffffffff-0000-0000-0000-000000000001', flags: 0, references: [], pending: [255] },
      ],
    },
    bytes: hex(`
      09 00 00 00               # generation 9
      03 00 00 00               # total tags 3
      02 00 00 00               # tags returned 2
      03                        # validity: reference (bit 0) and pending (bit 1) bitmaps
      00 00 00                  # reserved
      00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff  # [0] tag
      01                        #     flags: FM holds a reference
      00 00 00                  #     reserved
      05 02 ${zeros(30)}        #     references: hosts 0, 2 (byte 0) and 9 (byte 1 bit 1)
      ${zeros(32)}              #     pending: none
      ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 01  # [1] tag
      00 00 00 00               #     flags, reserved
      ${zeros(32)}              #     references: none
      ${zeros(31)} 80           #     pending: host 255 (byte 31 bit 7)
    `),
  },
];

function codecOf(command: CommandName, side: 'request' | 'response') {
  return COMMANDS[command][side] as { encode(v: unknown): Uint8Array; decode(b: Uint8Array): unknown };
}

function payloadError(fn: () => unknown): PayloadError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PayloadError) return e;
    throw e;
  }
  throw new Error('expected a PayloadError');
}

describe('golden vectors', () => {
  it('covers a request and a response of every command', () => {
    for (const command of Object.keys(COMMANDS) as CommandName[]) {
      expect(GOLDEN.some((g) => g.command === command && g.side === 'request')).toBe(true);
      expect(GOLDEN.some((g) => g.command === command && g.side === 'response')).toBe(true);
    }
  });

  for (const g of GOLDEN) {
    it(`${g.name} encodes to the golden bytes`, () => {
      expect(toHex(codecOf(g.command, g.side).encode(g.value))).toBe(toHex(g.bytes));
    });
    it(`${g.name} decodes from the golden bytes`, () => {
      expect(codecOf(g.command, g.side).decode(g.bytes)).toEqual(g.value);
    });
    if (g.bytes.length > 0) {
      it(`${g.name} refuses one byte less and one byte more`, () => {
        const c = codecOf(g.command, g.side);
        const more = new Uint8Array(g.bytes.length + 1);
        more.set(g.bytes);
        expect(payloadError(() => c.decode(g.bytes.subarray(0, g.bytes.length - 1))).code).toBe(ReturnCode.InvalidPayloadLength);
        expect(payloadError(() => c.decode(more)).code).toBe(ReturnCode.InvalidPayloadLength);
      });
    } else {
      it(`${g.name} refuses any payload`, () => {
        expect(payloadError(() => codecOf(g.command, g.side).decode(hex('00'))).code).toBe(ReturnCode.InvalidPayloadLength);
      });
    }
  }
});

describe('reserved fields', () => {
  it('are ignored on decode', () => {
    const c = codecOf('extentList', 'request');
    expect(c.decode(hex('01 00 ff ff 10 00 00 00 02 00 00 00'))).toEqual({ hostId: 1, extentCount: 16, startIndex: 2 });
    const m = codecOf('mhdInfo', 'response');
    expect(m.decode(hex('04 04 ff ff 01 03 ff ff 01 02 03'))).toEqual(mhdRsp);
    const ext = hex(`01 00 ff ff 02 00 00 00 01 00 00 00 03 00 00 00 07 00 00 00 ff ff ff ff
      00 00 20 00 01 00 00 00 00 00 20 00 00 00 00 00 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 00 00 ff ff ff ff ff ff`);
    expect(codecOf('extentList', 'response').decode(ext)).toEqual(extentsRsp);
  });

  it('ignore release flag bits 7:5 and the masks of absent regions', () => {
    const golden = GOLDEN.find((g) => g.name === '5605h request')!.bytes.slice();
    golden[2] = 0xf1; // bits 7:5 set, forced, prescriptive
    expect(codecOf('initiateRelease', 'request').decode(golden)).toEqual(releaseReq);
    const dcd = GOLDEN.find((g) => g.name === '5600h response')!.bytes.slice();
    dcd.fill(0xff, 28); // masks of regions 1..7
    expect(codecOf('dcdInfo', 'response').decode(dcd)).toEqual(dcdRsp);
  });
});

describe('list counts', () => {
  const add = GOLDEN.find((g) => g.name === '5604h request')!.bytes;

  it('must agree with the payload length', () => {
    const c = codecOf('initiateAdd', 'request');
    const oneShort = add.subarray(0, add.length - 40); // count says 2, one extent present
    expect(payloadError(() => c.decode(oneShort)).code).toBe(ReturnCode.InvalidPayloadLength);
    const bumped = add.slice();
    bumped[28] = 3;
    expect(payloadError(() => c.decode(bumped)).code).toBe(ReturnCode.InvalidPayloadLength);
    const huge = add.slice();
    huge.set([0xff, 0xff, 0xff, 0xff], 28);
    expect(payloadError(() => c.decode(huge)).code).toBe(ReturnCode.InvalidPayloadLength);
    expect(payloadError(() => c.decode(add.subarray(0, 31))).code).toBe(ReturnCode.InvalidPayloadLength);
  });

  it('are taken from the list on encode', () => {
    const bytes = COMMANDS.extentList.response.encode({ ...extentsRsp, extents: [] });
    expect(bytes.length).toBe(24);
    expect(bytes[8]).toBe(0);
  });

  it('with no list the header alone is valid', () => {
    const bytes = hex(`04 00 02 00 ${zeros(8)} ${zeros(16)} 00 00 00 00`);
    expect(COMMANDS.initiateAdd.request.decode(bytes)).toEqual({
      hostId: 4,
      selectionPolicy: SelectionPolicy.Prescriptive,
      region: 0,
      length: 0,
      tag: ZERO_TAG,
      extents: [],
    });
  });
});

describe('field validation', () => {
  const addBytes = GOLDEN.find((g) => g.name === '5604h request')!.bytes;
  const relBytes = GOLDEN.find((g) => g.name === '5605h request')!.bytes;
  const invalid = (command: CommandName, side: 'request' | 'response', b: Uint8Array) =>
    payloadError(() => codecOf(command, side).decode(b)).code;

  it('refuses unknown selection policies', () => {
    for (const p of [4, 0x12, 0xff]) {
      const b = addBytes.slice();
      b[2] = p;
      expect(invalid('initiateAdd', 'request', b)).toBe(ReturnCode.InvalidInput);
    }
    for (const p of [0, 1, 2, 3]) {
      const b = addBytes.slice();
      b[2] = p;
      expect((COMMANDS.initiateAdd.request.decode(b) as AddRequest).selectionPolicy).toBe(p);
    }
  });

  it('refuses unknown removal policies', () => {
    for (const flags of [0x02, 0x0f, 0x12]) {
      const b = relBytes.slice();
      b[2] = flags;
      expect(invalid('initiateRelease', 'request', b)).toBe(ReturnCode.InvalidInput);
    }
    const b = relBytes.slice();
    b[2] = 0x00;
    expect(COMMANDS.initiateRelease.request.decode(b)).toMatchObject({ removalPolicy: RemovalPolicy.TagBased, forced: false });
  });

  it('refuses regions past the eighth', () => {
    for (const bytes of [addBytes, relBytes]) {
      const b = bytes.slice();
      b[3] = 8;
      expect(invalid(bytes === addBytes ? 'initiateAdd' : 'initiateRelease', 'request', b)).toBe(ReturnCode.InvalidInput);
    }
  });

  it('refuses 64-bit quantities beyond 2^53-1', () => {
    const b = addBytes.slice();
    b.set([0, 0, 0, 0, 0, 0, 0x20, 0], 32); // first extent start DPA = 2^53
    expect(invalid('initiateAdd', 'request', b)).toBe(ReturnCode.InvalidInput);
    const len = addBytes.slice();
    len[11] = 0x80; // length bit 63
    expect(invalid('initiateAdd', 'request', len)).toBe(ReturnCode.InvalidInput);
  });

  it('keeps opaque 64-bit values whole', () => {
    const v = { ...identifyRsp, serialNumber: 0xffff_ffff_ffff_ffffn };
    expect(COMMANDS.identify.response.decode(COMMANDS.identify.response.encode(v))).toEqual(v);
  });

  it('refuses responses that contradict themselves', () => {
    const dcd = GOLDEN.find((g) => g.name === '5600h response')!.bytes.slice();
    dcd[1] = 9;
    expect(invalid('dcdInfo', 'response', dcd)).toBe(ReturnCode.InvalidInput);
    const ext = GOLDEN.find((g) => g.name === '5603h response')!.bytes.slice();
    ext[12] = 2; // total 2, but index 2 + 1 returned
    expect(invalid('extentList', 'response', ext)).toBe(ReturnCode.InvalidInput);
    const id = GOLDEN.find((g) => g.name === '0001h response')!.bytes.slice();
    id[16] = 7;
    expect(invalid('identify', 'response', id)).toBe(ReturnCode.InvalidInput);
  });

  it('refuses bad values on encode', () => {
    const enc = (command: CommandName, side: 'request' | 'response', v: unknown) =>
      payloadError(() => codecOf(command, side).encode(v)).code;
    expect(enc('initiateAdd', 'request', { ...addReq, hostId: 0x10000 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateAdd', 'request', { ...addReq, hostId: -1 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateAdd', 'request', { ...addReq, length: 1.5 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateAdd', 'request', { ...addReq, length: 2 ** 53 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateAdd', 'request', { ...addReq, tag: 'not-a-uuid' })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateAdd', 'request', { ...addReq, selectionPolicy: 7 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateRelease', 'request', { ...releaseReq, removalPolicy: 2 })).toBe(ReturnCode.InvalidInput);
    expect(enc('initiateRelease', 'request', { ...releaseReq, removalPolicy: 16 })).toBe(ReturnCode.InvalidInput);
    expect(enc('dcdInfo', 'response', { ...dcdRsp, totalCapacityBytes: 3 * MiB })).toBe(ReturnCode.InvalidInput);
    expect(enc('dcdInfo', 'response', { ...dcdRsp, regionBlockSizeMasks: Array(9).fill(0n) })).toBe(ReturnCode.InvalidInput);
    expect(enc('identify', 'response', { ...identifyRsp, serialNumber: 1 })).toBe(ReturnCode.InvalidInput);
    expect(enc('hostRegionConfig', 'response', { ...regionRsp, numRegions: 0 })).toBe(ReturnCode.InvalidInput);
    expect(enc('mhdInfo', 'response', { ...mhdRsp, ldMap: Array(256).fill(0) })).toBe(ReturnCode.InvalidInput);
  });

  it('writes tags in the order they are spelled and reads them back lower-case', () => {
    const upper = { ...extentsRsp, extents: [{ ...extentsRsp.extents[0]!, tag: TAG.toUpperCase() }] };
    const bytes = COMMANDS.extentList.response.encode(upper);
    expect(toHex(bytes.subarray(40, 56))).toBe('00112233445566778899aabbccddeeff');
    expect(COMMANDS.extentList.response.decode(bytes)).toEqual(extentsRsp);
  });
});

describe('round trips', () => {
  it('survive encode → decode → encode for every golden value', () => {
    for (const g of GOLDEN) {
      const c = codecOf(g.command, g.side);
      const once = c.encode(g.value);
      expect(toHex(c.encode(c.decode(once)))).toBe(toHex(once));
    }
  });

  it('carry large lists', () => {
    const extents = Array.from({ length: 1000 }, (_, i) => ({
      startDpa: 4 * GiB + i * 2 * MiB,
      len: 2 * MiB,
      tag: ZERO_TAG,
      sharedSeq: i & 0xffff,
    }));
    const v = { ...addReq, length: 1000 * 2 * MiB, extents };
    const bytes = COMMANDS.initiateAdd.request.encode(v);
    expect(bytes.length).toBe(32 + 40 * 1000);
    expect(COMMANDS.initiateAdd.request.decode(bytes)).toEqual(v);
  });
});
