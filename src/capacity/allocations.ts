// Tagged allocations: the rule that a non-zero tag names one set of extents
// while any head holds it (famfs-style shared memory: the same tag is the
// same bytes on every host), the shared extent sequence numbers 5603h
// reports, and the all-or-nothing add of one allocation to several heads.
// Who holds a tag is not stored here: it is read from the heads' grants, so
// a release, a QEMU exit, a guest reset or a recovery can never leave it stale.
import { type AddRequest, FmError, type ReleaseRequest, RemovalPolicy, ReturnCode, ZERO_TAG } from '../fmapi/index.js';
import type { AllocationView } from './allocation-view.js';
import type { Piece } from './delivery.js';
import type { RegionLabel } from './lsa.js';

interface Allocation {
  shared: boolean;
  /** Ascending pool offset, which is the sequence order: the same on every head, and rebuilt alike after a restart. */
  extents: Piece[];
}

const byOffset = (a: Piece, b: Piece) => a.offset - b.offset;
const overlaps = (a: Piece, b: Piece) => a.offset < b.offset + b.len && b.offset < a.offset + a.len;
const show = (ps: Piece[]) => ps.map((p) => `${p.len}@${p.offset}`).join(', ');

export class TagRegistry {
  private readonly byTag = new Map<string, Allocation>();

  /**
   * `holdersOf(tag)`: the heads whose grants carry the tag (active or being
   * released); `kept(tag)`: an FM reference keeps the allocation while no head holds it.
   */
  constructor(
    private readonly holdersOf: (tag: string) => number[],
    private readonly kept: (tag: string) => boolean = () => false,
  ) {}

  /** The allocation a tag names, while a head holds it or a reference keeps it. */
  allocation(tag: string): { shared: boolean; extents: Piece[] } | undefined {
    this.prune();
    const a = this.byTag.get(tag);
    return a && { shared: a.shared, extents: a.extents.map((e) => ({ ...e })) };
  }

  /**
   * Checks an add of `pieces` with `tag` to `head` against the tag rules
   * (throws Invalid Input) and returns the region label of each piece, in
   * the pieces' order (undefined for untagged adds).
   */
  admit(head: number, tag: string, shared: boolean, pieces: Piece[]): (RegionLabel | undefined)[] {
    if (tag === ZERO_TAG) return pieces.map(() => undefined);
    this.prune();
    const a = this.byTag.get(tag);
    let extents: Piece[];
    const asked = [...pieces].sort(byOffset);
    const same = (x: Allocation) =>
      asked.length === x.extents.length && asked.every((p, i) => p.offset === x.extents[i]?.offset && p.len === x.extents[i]?.len);
    if (a && this.holdersOf(tag).length === 0) {
      // Kept by a reference alone: an add takes it back whole, the way it was allocated.
      if (shared !== a.shared)
        throw new FmError(
          ReturnCode.InvalidInput,
          `the allocation tagged ${tag} is kept ${a.shared ? 'shared' : 'exclusive'} by a reference; add it ${a.shared ? 'with shared access' : 'without shared access'}`,
        );
      if (!same(a)) {
        throw new FmError(
          ReturnCode.InvalidInput,
          `the allocation tagged ${tag} is ${show(a.extents)} (pool offsets); an add joining it must name exactly those extents, not ${show(asked)}`,
        );
      }
      extents = a.extents;
    } else if (a) {
      // The same blocks while another head holds them exclusively: a conflict over blocks, as without a tag.
      if (!a.shared && same(a) && !this.holdersOf(tag).includes(head)) {
        throw new FmError(
          ReturnCode.ResourcesExhausted,
          `the allocation tagged ${tag} is held exclusively by head(s) ${this.holdersOf(tag).join(', ')}`,
        );
      }
      if (!shared || !a.shared) {
        throw new FmError(
          ReturnCode.InvalidInput,
          `tag ${tag} is in use by head(s) ${this.holdersOf(tag).join(', ')}; a tag names one allocation`,
        );
      }
      if (this.holdersOf(tag).includes(head))
        throw new FmError(ReturnCode.InvalidInput, `head ${head} already holds the allocation tagged ${tag}`);
      if (!same(a)) {
        throw new FmError(
          ReturnCode.InvalidInput,
          `the allocation tagged ${tag} is ${show(a.extents)} (pool offsets); an add joining it must name exactly those extents, not ${show(asked)}`,
        );
      }
      extents = a.extents;
    } else {
      extents = asked;
      for (const [other, b] of this.byTag) {
        const hit = b.extents.find((e) => extents.some((p) => overlaps(p, e)));
        if (hit) throw new FmError(ReturnCode.InvalidInput, `extent ${hit.len}@${hit.offset} belongs to the allocation tagged ${other}`);
      }
    }
    return pieces.map((p) => ({
      uuid: tag,
      nlabel: extents.length,
      position: extents.findIndex((e) => e.offset === p.offset),
      rawsize: p.len,
    }));
  }

  /** The add `admit` allowed succeeded: a new tag's extents are fixed from now on. */
  record(tag: string, shared: boolean, pieces: Piece[]): void {
    if (tag === ZERO_TAG || this.byTag.has(tag)) return;
    this.byTag.set(tag, { shared, extents: pieces.map((p) => ({ offset: p.offset, len: p.len })).sort(byOffset) });
  }

  /** A re-adopted head's grants (backend restart): allocations are rebuilt from what the heads hold. */
  adopt(grants: { tag: string; shared: boolean; offset: number; len: number }[]): void {
    for (const g of grants) {
      if (g.tag === ZERO_TAG) continue;
      const a = this.byTag.get(g.tag) ?? { shared: g.shared, extents: [] };
      if (!a.extents.some((e) => e.offset === g.offset)) a.extents.push({ offset: g.offset, len: g.len });
      a.extents.sort(byOffset);
      this.byTag.set(g.tag, a);
    }
  }

  /**
   * A tag names its extents as one unit: a prescriptive release must take
   * all of a tagged allocation's extents that the head holds, or none.
   */
  checkWhole(head: number, targets: { tag: string; offset: number }[], held: { tag: string; offset: number }[]): void {
    for (const tag of new Set(targets.map((t) => t.tag))) {
      if (tag === ZERO_TAG) continue;
      const want = targets.filter((t) => t.tag === tag).length;
      const has = held.filter((g) => g.tag === tag).length;
      if (want !== has)
        throw new FmError(
          ReturnCode.InvalidInput,
          `head ${head} holds ${has} extents tagged ${tag}: release them all (or by tag), not ${want}`,
        );
    }
  }

  /** Shared extent sequence number of the extent at `offset` (0 when untagged). */
  seq(tag: string, offset: number): number {
    const i = this.byTag.get(tag)?.extents.findIndex((e) => e.offset === offset) ?? -1;
    return Math.max(0, i);
  }

  /** Tags no head holds and no reference keeps are free for other blocks again. */
  prune(): void {
    for (const tag of [...this.byTag.keys()]) if (this.holdersOf(tag).length === 0 && !this.kept(tag)) this.byTag.delete(tag);
  }

  list(): AllocationView[] {
    this.prune();
    return [...this.byTag].map(([tag, a]) => ({
      tag,
      shared: a.shared,
      extents: a.extents.map((e) => ({ ...e })),
      holders: this.holdersOf(tag),
    }));
  }
}

/** The two FM-API calls an add across heads needs (an FmClient, or the manager itself). */
export interface AddReleaser {
  initiateAdd(req: AddRequest): Promise<void>;
  initiateRelease(req: ReleaseRequest): Promise<void>;
}

/**
 * Adds one allocation (same tag, same extents) to every head in `hosts`,
 * in order, all-or-nothing: when one head's add fails, the heads already
 * given it release it again (by tag) and the first error is rethrown.
 * `requestFor` builds each head's request (DPAs depend on the head's region
 * base); `onProgress` hears each step, for a CLI's progress lines.
 */
export async function addToHosts(
  fm: AddReleaser,
  hosts: number[],
  requestFor: (hostId: number) => AddRequest | Promise<AddRequest>,
  onProgress: (msg: string) => void = () => undefined,
): Promise<void> {
  if (hosts.length === 0) throw new FmError(ReturnCode.InvalidInput, 'no host given');
  if (new Set(hosts).size !== hosts.length) throw new FmError(ReturnCode.InvalidInput, `host list ${hosts.join(',')} names a head twice`);
  const done: { hostId: number; region: number; tag: string }[] = [];
  for (const hostId of hosts) {
    try {
      const req = await requestFor(hostId);
      if (hosts.length > 1 && req.tag === ZERO_TAG)
        throw new FmError(ReturnCode.InvalidInput, 'adding to several heads needs a tag (it names the allocation)');
      await fm.initiateAdd(req);
      done.push({ hostId, region: req.region, tag: req.tag });
    } catch (e) {
      onProgress(
        `head ${hostId}: add failed (${(e as Error).message}); releasing it from head(s) ${done.map((d) => d.hostId).join(', ') || 'none'}`,
      );
      for (const d of done.reverse()) {
        await fm
          .initiateRelease({ ...d, removalPolicy: RemovalPolicy.TagBased, forced: false, length: 0, extents: [] })
          .catch((r) => onProgress(`head ${d.hostId}: rollback release failed: ${(r as Error).message}`));
      }
      throw e;
    }
    onProgress(`head ${hostId}: added`);
  }
}
