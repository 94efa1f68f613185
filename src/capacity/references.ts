// FM references on tagged allocations (CXL r3.2 5606h/5607h) and the tag
// list 5608h reports. A reference keeps a tag's blocks allocated, contents
// intact, after the last head released them; the last reference removed
// frees them. The counts are journaled (ref-add/ref-remove) and read back
// from the journal's image at start, so they survive a backend restart.
import {
  FmError,
  type ReferenceRequest,
  ReturnCode,
  type SetRegionConfigRequest,
  TagFlag,
  type TagInfo,
  type TagListRequest,
  type TagListResponse,
  ZERO_TAG,
} from '../fmapi/index.js';
import { dataObjectPath, type Pool } from '../pool/index.js';
import type { AllocationView } from './allocation-view.js';
import type { TagRegistry } from './allocations.js';
import type { Piece } from './delivery.js';
import { checkRegionConfig, loadRegionSetting, type RegionSetting, supportedBlockSizes } from './region.js';
import { zeroReturning } from './sanitize.js';

export interface Kept {
  count: number;
  shared: boolean;
  extents: Piece[];
}

export class TagReferences {
  private readonly byTag = new Map<string, Kept>();

  /** The references the journal holds (writer only; a read-only pool has none to act on). */
  static load(pool: Pool): TagReferences {
    const refs = new TagReferences();
    if (!pool.hasWriterLock) return refs;
    const bb = pool.state.header.blockBytes;
    for (const r of pool.image.references()) {
      refs.byTag.set(r.tag, {
        count: r.count,
        shared: r.shared,
        extents: r.ranges.map((x) => ({ offset: x.first * bb, len: x.count * bb })),
      });
    }
    return refs;
  }

  has(tag: string): boolean {
    return this.byTag.has(tag);
  }

  count(tag: string): number {
    return this.byTag.get(tag)?.count ?? 0;
  }

  /** One more reference on the allocation `a`. */
  add(tag: string, a: { shared: boolean; extents: Piece[] }): void {
    const cur = this.byTag.get(tag);
    this.byTag.set(tag, { count: (cur?.count ?? 0) + 1, shared: a.shared, extents: a.extents.map((e) => ({ ...e })) });
  }

  /** One fewer; true when it was the last. */
  remove(tag: string): boolean {
    const cur = this.byTag.get(tag);
    if (!cur) return false;
    if (cur.count > 1) {
      cur.count--;
      return false;
    }
    this.byTag.delete(tag);
    return true;
  }

  entries(): [string, Kept][] {
    return [...this.byTag].map(([t, k]) => [t, { ...k, extents: k.extents.map((e) => ({ ...e })) }]);
  }
}

/**
 * 5608h's records, in tag order: who holds each allocation (`active`), whose
 * hold is being released (`releasing`), and whether the FM keeps it.
 */
export function tagRecords(
  allocations: AllocationView[],
  refs: TagReferences,
  holders: (tag: string) => { active: number[]; releasing: number[] },
): TagInfo[] {
  return [...allocations]
    .sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0))
    .map((a) => {
      const h = holders(a.tag);
      const asc = (l: number[]) => [...l].sort((x, y) => x - y);
      return { tag: a.tag, flags: refs.has(a.tag) ? TagFlag.FmReference : 0, references: asc(h.active), pending: asc(h.releasing) };
    });
}

export type KeptView = { tag: string } & Kept;

/** What the r3.2 commands need of the manager: its pool, tag registry and grants, and its one way of freeing blocks. */
export interface R32Context {
  pool: Pool;
  tags: TagRegistry;
  /** Extents granted, all heads. */
  extentCount(): number;
  /** Heads whose grants with `tag` are in `state`, ascending. */
  holders(tag: string, which: 'active' | 'pending'): number[];
  log?: (msg: string) => void;
}

/**
 * 5602h and 5606h–5608h: the region setting and the references, each
 * change journaled before it is answered. The manager serializes calls.
 */
export class R32Commands {
  region: RegionSetting;
  private readonly refs: TagReferences;
  /** 5608h's generation: bumped by every change a tag list could show. */
  private generation = 0;

  constructor(private readonly ctx: R32Context) {
    this.region = loadRegionSetting(ctx.pool);
    this.refs = TagReferences.load(ctx.pool);
    for (const [tag, k] of this.refs.entries()) ctx.tags.adopt(k.extents.map((e) => ({ ...e, tag, shared: k.shared })));
  }

  /**
   * The one way blocks of grants or references go back to the pool: `free`
   * frees them, and with sanitize on release those left with no holder and
   * no reference are zeroed first, while no head can be given them.
   */
  returnBlocks(ranges: Piece[], leaving: { head?: number; dropRef?: boolean }, free: () => void): void {
    if (this.region.sanitizeOnRelease) zeroReturning(dataObjectPath(this.ctx.pool.name), this.ctx.pool.state, ranges, leaving);
    free();
  }

  kept(tag: string): boolean {
    return this.refs.has(tag);
  }

  bump(): void {
    this.generation = (this.generation + 1) >>> 0;
  }

  setRegionConfig(req: SetRegionConfigRequest): void {
    const h = this.ctx.pool.state.header;
    const held = this.ctx.extentCount();
    const kept = this.refs.entries().length;
    const busy =
      held + kept === 0
        ? null
        : [held && `${held} extent(s) granted`, kept && `${kept} tag(s) kept by references`].filter(Boolean).join(', ');
    checkRegionConfig(req, supportedBlockSizes(h.blockBytes, h.capacityBytes), busy);
    this.ctx.pool.recordRegionConfig({ region: req.region, blockSize: req.blockSize, sanitizeOnRelease: req.sanitizeOnRelease });
    this.region = { blockSize: req.blockSize, sanitizeOnRelease: req.sanitizeOnRelease };
    this.ctx.log?.(`region 0: block size ${req.blockSize}, sanitize on release ${req.sanitizeOnRelease ? 'on' : 'off'}`);
  }

  addReference(req: ReferenceRequest): void {
    const a = req.tag === ZERO_TAG ? undefined : this.ctx.tags.allocation(req.tag);
    if (!a) throw new FmError(ReturnCode.InvalidInput, `no capacity is tagged ${req.tag}`);
    const s = this.ctx.pool.state;
    this.ctx.pool.addReference(
      req.tag,
      a.shared,
      a.extents.map((e) => s.bytesToBlocks(e.offset, e.len)),
    );
    this.refs.add(req.tag, a);
    this.bump();
  }

  removeReference(req: ReferenceRequest): void {
    const a = this.ctx.tags.allocation(req.tag);
    if (!a || !this.refs.has(req.tag)) throw new FmError(ReturnCode.InvalidInput, `the FM holds no reference on tag ${req.tag}`);
    const last = this.refs.count(req.tag) === 1;
    const s = this.ctx.pool.state;
    const ranges = a.extents.map((e) => s.bytesToBlocks(e.offset, e.len));
    this.returnBlocks(last ? a.extents : [], { dropRef: true }, () => this.ctx.pool.removeReference(req.tag, last, ranges));
    this.refs.remove(req.tag);
    this.ctx.tags.prune();
    this.bump();
  }

  listTags(req: TagListRequest): TagListResponse {
    const all = tagRecords(this.ctx.tags.list(), this.refs, (tag) => ({
      active: this.ctx.holders(tag, 'active'),
      releasing: this.ctx.holders(tag, 'pending'),
    }));
    return {
      generation: this.generation,
      totalTags: all.length,
      tags: all.slice(req.startIndex, req.startIndex + req.maxTags),
      referencesValid: true,
      pendingValid: true,
    };
  }

  references(): KeptView[] {
    return this.refs.entries().map(([tag, k]) => ({ tag, ...k }));
  }
}
