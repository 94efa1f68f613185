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
  type ReferenceRequest,
  type RegionConfigRequest,
  type RegionConfigResponse,
  type ReleaseRequest,
  type SetRegionConfigRequest,
  TagFlag,
  type TagListRequest,
  type TagListResponse,
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

  /** References per tag (5606h/5607h); a tag is known while some host holds it or it has a reference. */
  references = new Map<string, number>();
  regionSetting = { blockSize: 2 * MiB, sanitizeOnRelease: false };

  async setRegionConfig(req: SetRegionConfigRequest): Promise<void> {
    await this.enter('setRegionConfig', req);
    this.regionSetting = { blockSize: req.blockSize, sanitizeOnRelease: req.sanitizeOnRelease };
  }

  private tagsHeld(): string[] {
    const held = [...this.extents.values()].flat().map((e) => e.tag);
    return [...new Set([...held, ...this.references.keys()])].filter((t) => t !== ZERO_TAG).sort();
  }

  async addReference(req: ReferenceRequest): Promise<void> {
    await this.enter('addReference', req);
    this.references.set(req.tag, (this.references.get(req.tag) ?? 0) + 1);
    this.generation++;
  }

  async removeReference(req: ReferenceRequest): Promise<void> {
    await this.enter('removeReference', req);
    // Canned, not strict: the fuzzer predicts answers from the codecs alone, so the fake refuses nothing.
    const n = this.references.get(req.tag) ?? 0;
    if (n <= 1) this.references.delete(req.tag);
    else this.references.set(req.tag, n - 1);
    this.generation++;
  }

  async listTags(req: TagListRequest): Promise<TagListResponse> {
    await this.enter('listTags', req);
    const all = this.tagsHeld().map((tag) => ({
      tag,
      flags: this.references.has(tag) ? TagFlag.FmReference : 0,
      // A 5608h bitmap names hosts 0..255 only.
      references: [...this.extents]
        .filter(([h, l]) => h < 256 && l.some((e) => e.tag === tag))
        .map(([h]) => h)
        .sort((a, b) => a - b),
      pending: [],
    }));
    const start = Math.min(req.startIndex, all.length);
    return {
      generation: this.generation,
      totalTags: all.length,
      tags: all.slice(start, start + req.maxTags),
      referencesValid: true,
      pendingValid: true,
    };
  }
}
