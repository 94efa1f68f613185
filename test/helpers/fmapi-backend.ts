// A scripted FmBackend for server and client tests: canned answers that
// follow the request, a log of calls, and hooks to throw or delay.
import {
  type AddRequest,
  type DcdInfoResponse,
  type Extent,
  type ExtentListRequest,
  type ExtentListResponse,
  type HeadInfoRequest,
  type HeadInfoResponse,
  type MhdInfoRequest,
  type MhdInfoResponse,
  type RegionConfigRequest,
  type RegionConfigResponse,
  type ReleaseRequest,
  ZERO_TAG,
} from '../../src/fmapi/commands.js';
import type { FmBackend, IdentifyInfo } from '../../src/fmapi/server.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
export const REGION_BASE = 4 * GiB;
export const POOL_BYTES = 4 * GiB;
export const HEADS = 4;

export class FakeBackend implements FmBackend {
  calls: { method: string; req: unknown }[] = [];
  /** Extents each host holds, absolute DPA. */
  extents = new Map<number, Extent[]>();
  generation = 1;
  /** Thrown (or rejected) by the next call of the named method, once. */
  failNext = new Map<string, unknown>();
  /** Delay before answering, per method, in ms. */
  delay = new Map<string, number>();

  private async enter(method: string, req: unknown): Promise<void> {
    this.calls.push({ method, req });
    const ms = this.delay.get(method);
    if (ms) await new Promise((r) => setTimeout(r, ms));
    if (this.failNext.has(method)) {
      const e = this.failNext.get(method);
      this.failNext.delete(method);
      throw e;
    }
  }

  async identify(): Promise<IdentifyInfo> {
    await this.enter('identify', {});
    return {
      vendorId: 0x1b36,
      deviceId: 0x0d93,
      subsystemVendorId: 0,
      subsystemId: 0,
      serialNumber: 0xfeed_0000_0000_0001n,
      componentType: 3,
    };
  }

  async mhdInfo(req: MhdInfoRequest): Promise<MhdInfoResponse> {
    await this.enter('mhdInfo', req);
    const ldMap: number[] = [];
    for (let ld = req.startLd; ld < HEADS && ldMap.length < req.ldMapListLimit; ld++) ldMap.push(ld);
    return { numLds: HEADS, numHeads: HEADS, startLd: req.startLd, ldMap };
  }

  async headInfo(req: HeadInfoRequest): Promise<HeadInfoResponse> {
    await this.enter('headInfo', req);
    const heads = [];
    for (let h = req.startHead; h < HEADS && heads.length < req.numHeads; h++) {
      heads.push({
        port: h,
        maxLinkWidth: 16,
        negotiatedLinkWidth: 16,
        supportedLinkSpeeds: 0x1f,
        maxLinkSpeed: 5,
        currentLinkSpeed: 5,
        ltssmState: 0x11,
        firstNegotiatedLane: 0,
        linkStateFlags: 0,
      });
    }
    return { heads };
  }

  async dcdInfo(): Promise<DcdInfoResponse> {
    await this.enter('dcdInfo', {});
    return {
      numHosts: HEADS,
      addPolicyMask: 1 << 2,
      removalPolicyMask: 1 << 1,
      sanitizeMask: 0,
      totalCapacityBytes: POOL_BYTES,
      regionBlockSizeMasks: [BigInt(2 * MiB)],
    };
  }

  async hostRegionConfig(req: RegionConfigRequest): Promise<RegionConfigResponse> {
    await this.enter('hostRegionConfig', req);
    const all = [
      { base: REGION_BASE, decodeLength: POOL_BYTES, length: POOL_BYTES, blockSize: 2 * MiB, dsmasFlags: 0x08, sanitizeOnRelease: 0 },
    ];
    return {
      hostId: req.hostId,
      numRegions: all.length,
      regions: all.slice(req.startRegion, req.startRegion + req.regionCount),
      extentsSupported: 512,
      extentsAvailable: 512 - (this.extents.get(req.hostId)?.length ?? 0),
      tagsSupported: 0,
      tagsAvailable: 0,
    };
  }

  async extentList(req: ExtentListRequest): Promise<ExtentListResponse> {
    await this.enter('extentList', req);
    const all = this.extents.get(req.hostId) ?? [];
    const start = Math.min(req.startIndex, all.length);
    return {
      hostId: req.hostId,
      startIndex: start,
      totalExtents: all.length,
      generation: this.generation,
      extents: all.slice(start, start + req.extentCount),
    };
  }

  async initiateAdd(req: AddRequest): Promise<void> {
    await this.enter('initiateAdd', req);
    const list = this.extents.get(req.hostId) ?? [];
    list.push(...req.extents.map((e) => ({ ...e, tag: req.tag === ZERO_TAG ? e.tag : req.tag })));
    this.extents.set(req.hostId, list);
    this.generation++;
  }

  async initiateRelease(req: ReleaseRequest): Promise<void> {
    await this.enter('initiateRelease', req);
    const list = this.extents.get(req.hostId) ?? [];
    this.extents.set(
      req.hostId,
      list.filter((e) => !req.extents.some((r) => r.startDpa === e.startDpa)),
    );
    this.generation++;
  }
}
