// The journal's image: what replaying a pool's journal yields, kept as one
// object so the writer can hold it in memory (applying each line as it is
// written), write it out as a snapshot, and read it back. It carries
// everything recovery needs: block words, registered heads, the lease and
// its epoch, each head's dynamic grants (tag, shared, delivery, device,
// releasing) and FM adds that began and never ended (journals written
// before one-write adds). Effects are per head, so concurrent writers'
// order does not matter.

import { ZERO_TAG } from './constants.js';
import { PoolError } from './errors.js';
import type { JournalEntry } from './journal-events.js';
import { originOf } from './journal-schema.js';
import { type Geometry, MASK_BITS, REF_FLAG, SHARED_FLAG } from './layout.js';
import { PoolState } from './state.js';

export const SNAPSHOT_VERSION = 1;

/** A dynamic grant as the journal knows it. */
export interface ImageGrant {
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  delivery: string | null;
  device: string | null;
  /** QEMU accepted its release; the blocks are freed once QEMU shows the guest can no longer reach them. */
  releasing: boolean;
  /** Why the release was quarantined (the guest may still reach the blocks), when it was. */
  quarantined?: string;
}

export interface UnfinishedAdd {
  tx: number;
  head: number;
  ranges: { first: number; count: number }[];
}

/** A tag the FM holds references on (5606h): how many, and the blocks they keep. */
export interface ImageReference {
  tag: string;
  count: number;
  shared: boolean;
  ranges: { first: number; count: number }[];
}

/** What 5602h set for a DC region; absent until it is set. */
export interface ImageRegionConfig {
  region: number;
  blockSize: number;
  sanitizeOnRelease: boolean;
}

export interface PoolCreateArgs extends Geometry {
  createdMs: number;
  mode: number;
  /** The pool's identity, also in the state object's header (absent in pools made before it). */
  poolId?: string;
}

/** The snapshot file's body (JSON). */
export interface Snapshot {
  version: number;
  /** The last journal seq the snapshot covers: replay skips tail lines at or below it. */
  lastSeq: number;
  pool: PoolCreateArgs;
  /** Runs of equal non-zero block words: [first block, count, word in hex]. */
  blocks: [number, number, string][];
  heads: { head: number; pid: number }[];
  lease: { owner: number | null; epoch: number };
  grants: ({ head: number } & ImageGrant)[];
  unfinished: UnfinishedAdd[];
  /** Absent in snapshots written before tag references. */
  references?: ImageReference[];
  regions?: ImageRegionConfig[];
}

// Lines come from disk: a field replay depends on is checked, not trusted to the type.
const num = <A extends object>(args: A, key: keyof A & string): number => {
  const v: unknown = args[key];
  if (typeof v !== 'number') throw new PoolError('BAD_STATE', `journal entry lacks numeric "${key}"`);
  return v;
};

export class JournalImage {
  private readonly words: BigUint64Array;
  private readonly registered = new Map<number, number>(); // head → pid
  private leaseOwner: number | null = null;
  private leaseEpoch = 0;
  private readonly grants = new Map<number, Map<number, ImageGrant>>(); // head → offset → grant
  private readonly unfinished = new Map<number, UnfinishedAdd>(); // tx → add
  private readonly refs = new Map<string, ImageReference>();
  private readonly regions = new Map<number, ImageRegionConfig>();
  lastSeq = 0;

  private constructor(readonly pool: PoolCreateArgs) {
    this.words = new BigUint64Array(pool.capacityBytes / pool.blockBytes);
  }

  static fromCreate(args: PoolCreateArgs): JournalImage {
    return new JournalImage(args);
  }

  /** Replays journal lines (all of them: the first successful pool-create founds the image). */
  static fromEntries(entries: JournalEntry[]): JournalImage {
    const create = entries.find((e) => e.op === 'pool-create' && e.result.ok);
    if (create?.op !== 'pool-create') throw new PoolError('BAD_STATE', 'journal has no pool-create entry');
    const a = create.args;
    const img = new JournalImage({
      capacityBytes: num(a, 'capacityBytes'),
      blockBytes: num(a, 'blockBytes'),
      headCount: num(a, 'headCount'),
      createdMs: num(a, 'createdMs'),
      mode: typeof a.mode === 'number' ? a.mode : 0o600,
      ...(typeof a.poolId === 'string' ? { poolId: a.poolId } : {}),
    });
    for (const e of entries) img.apply(e);
    return img;
  }

  static fromSnapshot(s: Snapshot, what: string): JournalImage {
    if (s?.version !== SNAPSHOT_VERSION || typeof s.lastSeq !== 'number' || typeof s.pool !== 'object') {
      throw new PoolError('BAD_STATE', `${what} is not a version ${SNAPSHOT_VERSION} snapshot`);
    }
    const img = new JournalImage(s.pool);
    img.lastSeq = s.lastSeq;
    for (const [first, count, hex] of s.blocks) img.words.fill(BigInt(`0x${hex}`), first, first + count);
    for (const h of s.heads) img.registered.set(h.head, h.pid);
    img.leaseOwner = s.lease.owner;
    img.leaseEpoch = s.lease.epoch;
    for (const { head, ...g } of s.grants) img.grantMap(head).set(g.offset, g);
    for (const u of s.unfinished) img.unfinished.set(u.tx, u);
    for (const r of s.references ?? []) img.refs.set(r.tag, r);
    for (const r of s.regions ?? []) img.regions.set(r.region, r);
    return img;
  }

  toSnapshot(): Snapshot {
    const blocks: [number, number, string][] = [];
    const w = this.words;
    for (let b = 0; b < w.length; ) {
      const v = w[b] as bigint;
      let e = b + 1;
      while (e < w.length && w[e] === v) e++;
      if (v !== 0n) blocks.push([b, e - b, v.toString(16)]);
      b = e;
    }
    return {
      version: SNAPSHOT_VERSION,
      lastSeq: this.lastSeq,
      pool: this.pool,
      blocks,
      heads: [...this.registered].map(([head, pid]) => ({ head, pid })),
      lease: { owner: this.leaseOwner, epoch: this.leaseEpoch },
      grants: [...this.grants].flatMap(([head, m]) => [...m.values()].map((g) => ({ head, ...g }))),
      unfinished: [...this.unfinished.values()],
      references: [...this.refs.values()],
      regions: [...this.regions.values()],
    };
  }

  // ---- reading -------------------------------------------------------------

  /** The image as a private PoolState (fsck and recovery compare shared memory with it). */
  toState(): PoolState {
    const state = PoolState.blank(this.pool, this.pool.createdMs, this.pool.poolId);
    for (const [h, pid] of this.registered) state.registerHead(h, pid, 0);
    // The lease outlives its owner's detach while other heads remain (docs/design.md §5).
    state.setRawLease(this.leaseOwner);
    this.words.forEach((v, b) => {
      if (v !== 0n) state.setRawBlockWord(b, v);
    });
    return state;
  }

  get lease(): { owner: number | null; epoch: number } {
    return { owner: this.leaseOwner, epoch: this.leaseEpoch };
  }

  /** A head's dynamic grants since it last registered, by offset. */
  grantsOf(head: number): ImageGrant[] {
    return [...(this.grants.get(head)?.values() ?? [])].sort((a, b) => a.offset - b.offset).map((g) => ({ ...g }));
  }

  /** Tags the FM holds references on. */
  references(): ImageReference[] {
    return [...this.refs.values()].map((r) => ({ ...r, ranges: r.ranges.map((x) => ({ ...x })) }));
  }

  regionConfigs(): ImageRegionConfig[] {
    return [...this.regions.values()].map((r) => ({ ...r }));
  }

  unfinishedAdds(): UnfinishedAdd[] {
    return [...this.unfinished.values()].map((u) => ({ ...u, ranges: [...u.ranges] }));
  }

  // ---- applying lines -----------------------------------------------------------

  private grantMap(head: number): Map<number, ImageGrant> {
    let m = this.grants.get(head);
    if (!m) {
      m = new Map();
      this.grants.set(head, m);
    }
    return m;
  }

  private setBits(head: number, first: number, count: number, shared: boolean): void {
    const bit = (1n << BigInt(head)) | (shared ? SHARED_FLAG : 0n);
    for (let b = first; b < first + count; b++) this.words[b] = (this.words[b] as bigint) | bit;
  }

  private clearBits(head: number, first: number, count: number): void {
    const bit = 1n << BigInt(head);
    for (let b = first; b < first + count; b++) {
      const v = (this.words[b] as bigint) & ~bit;
      this.words[b] = (v & MASK_BITS) === 0n && (v & REF_FLAG) === 0n ? 0n : v;
    }
  }

  private checkRange(first: number, count: number): void {
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > this.words.length) {
      throw new PoolError('BAD_STATE', `journal names blocks ${first}+${count}, outside the pool`);
    }
  }

  /** Applies one line; a line that names what the pool does not have is refused with its file and line. */
  apply(e: JournalEntry): void {
    try {
      this.applyLine(e);
    } catch (err) {
      const where = originOf(e);
      if (err instanceof PoolError && where) throw new PoolError(err.code, `journal ${where}: ${err.message}`, err.detail);
      throw err;
    }
  }

  private checkHead(head: number): number {
    if (!Number.isInteger(head) || head < 0 || head >= this.pool.headCount) {
      throw new PoolError('BAD_STATE', `journal names head ${head}, outside the pool's ${this.pool.headCount} heads`);
    }
    return head;
  }

  private applyLine(e: JournalEntry): void {
    this.lastSeq = Math.max(this.lastSeq, e.seq);
    if (e.op !== 'pool-create' && e.op !== 'note' && typeof (e.args as { head?: unknown }).head === 'number') {
      this.checkHead((e.args as { head: number }).head);
    }
    if (!e.result.ok) return;
    const bb = this.pool.blockBytes;
    switch (e.op) {
      case 'head-register': {
        const head = num(e.args, 'head');
        this.registered.set(head, typeof e.args.pid === 'number' ? e.args.pid : 0);
        this.grants.delete(head);
        break;
      }
      case 'head-unregister':
        this.registered.delete(num(e.args, 'head'));
        this.grants.delete(num(e.args, 'head'));
        break;
      case 'claim': {
        const a = e.args;
        const head = num(a, 'head');
        this.checkRange(num(a, 'first'), num(a, 'count'));
        this.setBits(head, a.first, a.count, a.shared === true);
        if (a.kind === 'dynamic') {
          const offset = a.first * bb;
          this.grantMap(head).set(offset, {
            offset,
            len: a.count * bb,
            tag: a.tag ?? ZERO_TAG,
            shared: a.shared === true,
            delivery: a.delivery ?? null,
            device: null,
            releasing: false,
          });
        }
        if (typeof a.tx === 'number') this.unfinished.get(a.tx)?.ranges.push({ first: a.first, count: a.count });
        break;
      }
      case 'release': {
        const a = e.args;
        const head = num(a, 'head');
        this.checkRange(num(a, 'first'), num(a, 'count'));
        this.clearBits(head, a.first, a.count);
        if (a.kind === 'dynamic') this.grants.get(head)?.delete(a.first * bb);
        if (typeof a.tx === 'number') {
          const u = this.unfinished.get(a.tx);
          if (u) u.ranges = u.ranges.filter((r) => r.first !== a.first);
        }
        break;
      }
      case 'release-all': {
        const head = num(e.args, 'head');
        const sharedOnly = e.args.sharedOnly === true;
        const bit = 1n << BigInt(head);
        this.words.forEach((v, b) => {
          if ((v & bit) !== 0n && (!sharedOnly || (v & SHARED_FLAG) !== 0n)) this.clearBits(head, b, 1);
        });
        const m = this.grants.get(head);
        if (m) for (const [o, g] of m) if (!sharedOnly || g.shared) m.delete(o);
        break;
      }
      case 'fm-add': {
        const a = e.args;
        const head = num(a, 'head');
        for (const p of a.pieces) {
          this.checkRange(num(p, 'first'), num(p, 'count'));
          this.setBits(head, p.first, p.count, a.shared === true);
          const offset = p.first * bb;
          this.grantMap(head).set(offset, {
            offset,
            len: p.count * bb,
            tag: a.tag,
            shared: a.shared === true,
            delivery: a.delivery,
            device: p.device ?? null,
            releasing: false,
          });
        }
        break;
      }
      case 'fm-release': {
        const m = this.grants.get(num(e.args, 'head'));
        for (const p of e.args.pieces) {
          const g = m?.get(p.first * bb);
          if (g) g.releasing = true;
        }
        break;
      }
      case 'ref-add': {
        const a = e.args;
        for (const r of a.ranges) {
          this.checkRange(num(r, 'first'), num(r, 'count'));
          for (let b = r.first; b < r.first + r.count; b++) this.words[b] = (this.words[b] as bigint) | REF_FLAG;
        }
        const cur = this.refs.get(a.tag);
        this.refs.set(a.tag, { tag: a.tag, count: (cur?.count ?? 0) + 1, shared: a.shared === true, ranges: a.ranges });
        break;
      }
      case 'ref-remove': {
        const a = e.args;
        if (a.last) {
          for (const r of a.ranges) {
            this.checkRange(num(r, 'first'), num(r, 'count'));
            for (let b = r.first; b < r.first + r.count; b++) {
              const v = (this.words[b] as bigint) & ~REF_FLAG;
              this.words[b] = (v & MASK_BITS) === 0n ? 0n : v;
            }
          }
          this.refs.delete(a.tag);
        } else {
          const cur = this.refs.get(a.tag);
          if (cur) cur.count = Math.max(1, cur.count - 1);
        }
        break;
      }
      case 'region-config':
        this.regions.set(num(e.args, 'region'), {
          region: e.args.region,
          blockSize: num(e.args, 'blockSize'),
          sanitizeOnRelease: e.args.sanitizeOnRelease === true,
        });
        break;
      case 'lease-acquire':
        if (e.result.acquired === true) {
          const head = num(e.args, 'head');
          if (this.leaseOwner !== head) this.leaseEpoch = typeof e.result.epoch === 'number' ? e.result.epoch : this.leaseEpoch + 1;
          this.leaseOwner = head;
        }
        break;
      case 'lease-release':
        if (e.result.released === true) this.leaseOwner = null;
        break;
      case 'lease-takeover':
        this.leaseOwner = num(e.args, 'to');
        this.leaseEpoch = num(e.result, 'epoch');
        break;
      case 'note': {
        const n = e.args;
        if (n.event === 'fm-add-begin') this.unfinished.set(e.seq, { tx: e.seq, head: n.head, ranges: [] });
        else if (n.event === 'release-quarantined') {
          const g = this.grants.get(n.head)?.get(n.offset);
          if (g) g.quarantined = n.reason;
        } else if (n.event === 'fm-add-end') this.unfinished.delete(n.tx);
        break;
      }
      case 'pool-create':
        break;
    }
  }
}
