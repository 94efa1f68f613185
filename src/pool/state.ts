// PoolState owns the lock-free operations on a pool's state image: block
// claims and releases, the head table and the FM-LD lease. The image is any
// ArrayBuffer laid out as in layout.ts — a shared mapping of the state object
// in production, a private buffer when the journal is replayed — and every
// mutation goes through the addon's atomics, so several processes can share
// one mapping safely. What each operation makes of a block word is
// block-word.ts's; this file runs it atomically on the image.
import { type BlockUsage, native } from '../native/index.js';
import { bitOf, claimedWord, clearedWord, conflictMessage, maskHolders, unreferencedWord } from './block-word.js';
import { PoolError } from './errors.js';
import {
  blockWordOffset,
  decodeHeader,
  E,
  encodeHeader,
  type Geometry,
  H,
  type Header,
  HeadState,
  headEntryOffset,
  MASK_BITS,
  REF_FLAG,
  SHARED_FLAG,
  stateObjectBytes,
} from './layout.js';

export interface ClaimOptions {
  /** A shared claim admits other shared holders; an exclusive one admits none. */
  shared?: boolean;
}

export interface BlockRange {
  first: number;
  count: number;
}

export interface BlockInfo {
  block: number;
  holders: number[];
  shared: boolean;
  /** A tag reference keeps it allocated even with no holder. */
  referenced: boolean;
}

export interface HeadInfo {
  id: number;
  attached: boolean;
  pid: number;
  attachGeneration: number;
  attachedMs: number;
  changedMs: number;
  flags: number;
}

export interface LeaseInfo {
  owner: number | null;
  epoch: number;
}

export class PoolState {
  readonly header: Header;
  private readonly u32: Uint32Array;

  private constructor(
    private readonly buf: ArrayBuffer,
    header: Header,
  ) {
    this.header = header;
    this.u32 = new Uint32Array(buf);
  }

  /** Formats `buf` (zeroed, stateObjectBytes long) as a new pool image. */
  static format(buf: ArrayBuffer, g: Geometry, createdMs = Date.now(), poolId = ''): PoolState {
    encodeHeader(new Uint8Array(buf, 0, 4096), g, createdMs, poolId);
    return PoolState.attach(buf, 'new pool image');
  }

  /** Wraps an existing image, validating its header. */
  static attach(buf: ArrayBuffer, what: string): PoolState {
    return new PoolState(buf, decodeHeader(new Uint8Array(buf), buf.byteLength, what));
  }

  /** A private, zeroed image with the same geometry (journal replay). */
  static blank(g: Geometry, createdMs: number, poolId = ''): PoolState {
    const blockCount = g.capacityBytes / g.blockBytes;
    return PoolState.format(new ArrayBuffer(stateObjectBytes(blockCount)), g, createdMs, poolId);
  }

  get buffer(): ArrayBuffer {
    return this.buf;
  }
  get blockCount(): number {
    return this.header.blockCount;
  }
  get headCount(): number {
    return this.header.headCount;
  }

  // ---- checks ---------------------------------------------------------

  private checkOpen(): void {
    if (this.buf.byteLength === 0) throw new PoolError('CLOSED', 'the pool state was closed');
  }

  checkHead(head: number): void {
    this.checkOpen();
    if (!Number.isInteger(head) || head < 0 || head >= this.header.headCount) {
      throw new PoolError('UNKNOWN_HEAD', `head ${head} does not exist: this pool has heads 0..${this.header.headCount - 1}`, { head });
    }
  }

  checkRange(r: BlockRange): void {
    this.checkOpen();
    const { first, count } = r;
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > this.header.blockCount) {
      throw new PoolError(
        'OUT_OF_RANGE',
        `blocks ${first}..${first + count - 1} are outside the pool (blocks 0..${this.header.blockCount - 1})`,
        { first, count },
      );
    }
  }

  /** Converts a byte range of the pool to blocks; both ends must be block aligned. */
  bytesToBlocks(offset: number, length: number): BlockRange {
    const b = this.header.blockBytes;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      throw new PoolError('OUT_OF_RANGE', `byte range ${offset}+${length} is not a valid range`);
    }
    if (offset % b !== 0 || length % b !== 0) {
      throw new PoolError('OUT_OF_RANGE', `byte range ${offset}+${length} is not aligned to the pool's ${b}-byte blocks`);
    }
    if (offset + length > this.header.capacityBytes) {
      throw new PoolError('OUT_OF_RANGE', `byte range ${offset}+${length} ends past the pool's ${this.header.capacityBytes} bytes`);
    }
    return { first: offset / b, count: length / b };
  }

  // ---- counters -------------------------------------------------------

  get generation(): number {
    return Number(native.load64(this.buf, H.generation));
  }
  private bumpGeneration(): number {
    return Number(native.fetchAdd64(this.buf, H.generation, 1n)) + 1;
  }
  /** Takes the next journal sequence number; unique across processes sharing the image. */
  nextJournalSeq(): number {
    return Number(native.fetchAdd64(this.buf, H.journalSeq, 1n)) + 1;
  }
  /** The last journal seq handed out (every line written since the pool was made has a seq at or below it). */
  get journalSeq(): number {
    return Number(native.load64(this.buf, H.journalSeq));
  }
  /** Raises the journal counter to at least `seq` (journal replay into shm). */
  raiseJournalSeq(seq: number): void {
    for (;;) {
      const cur = native.load64(this.buf, H.journalSeq);
      if (cur >= BigInt(seq) || native.cas64(this.buf, H.journalSeq, cur, BigInt(seq)) === cur) return;
    }
  }

  // ---- head table ------------------------------------------------------

  head(head: number): HeadInfo {
    this.checkHead(head);
    const o = headEntryOffset(head);
    return {
      id: head,
      attached: native.load32(this.buf, o + E.state) === HeadState.Attached,
      pid: native.load32(this.buf, o + E.pid),
      attachGeneration: Number(native.load64(this.buf, o + E.attachGeneration)),
      attachedMs: Number(native.load64(this.buf, o + E.attachedMs)),
      changedMs: Number(native.load64(this.buf, o + E.changedMs)),
      flags: native.load32(this.buf, o + E.flags),
    };
  }

  heads(): HeadInfo[] {
    return Array.from({ length: this.header.headCount }, (_, i) => this.head(i));
  }

  isAttached(head: number): boolean {
    this.checkHead(head);
    return native.load32(this.buf, headEntryOffset(head) + E.state) === HeadState.Attached;
  }

  registerHead(head: number, pid: number, now = Date.now()): void {
    this.checkHead(head);
    const o = headEntryOffset(head);
    const seen = native.cas32(this.buf, o + E.state, HeadState.Free, HeadState.Attached);
    if (seen !== HeadState.Free) {
      throw new PoolError('HEAD_ATTACHED', `head ${head} is already attached (QEMU pid ${native.load32(this.buf, o + E.pid)})`, { head });
    }
    native.store32(this.buf, o + E.pid, pid >>> 0);
    native.store64(this.buf, o + E.attachedMs, BigInt(now));
    native.store64(this.buf, o + E.changedMs, BigInt(now));
    const gen = this.bumpGeneration();
    native.store64(this.buf, o + E.attachGeneration, BigInt(gen));
  }

  /** Refuses while the head still holds blocks: release them first, so nothing is orphaned. */
  unregisterHead(head: number, now = Date.now()): void {
    this.checkHead(head);
    const held = this.blocksOf(head).length;
    if (held > 0) {
      throw new PoolError('HEAD_HOLDS_BLOCKS', `head ${head} still holds ${held} block(s); release them before unregistering`, {
        head,
        held,
      });
    }
    const o = headEntryOffset(head);
    if (native.cas32(this.buf, o + E.state, HeadState.Attached, HeadState.Free) !== HeadState.Attached) {
      throw new PoolError('HEAD_NOT_ATTACHED', `head ${head} is not attached`, { head });
    }
    native.store32(this.buf, o + E.pid, 0);
    native.store64(this.buf, o + E.changedMs, BigInt(now));
    this.bumpGeneration();
  }

  /** Sets a head entry's state outright (journal recovery only). */
  forceHeadState(head: number, attached: boolean, pid: number): void {
    this.checkHead(head);
    const o = headEntryOffset(head);
    native.store32(this.buf, o + E.pid, attached ? pid >>> 0 : 0);
    native.store32(this.buf, o + E.state, attached ? HeadState.Attached : HeadState.Free);
    this.bumpGeneration();
  }

  // ---- blocks ----------------------------------------------------------

  private word(block: number): bigint {
    return native.load64(this.buf, blockWordOffset(block));
  }

  /**
   * Claims every block of the range for `head`, or none: on the first
   * conflict the blocks taken so far are given back and CONFLICT is thrown
   * naming the block and its holders.
   */
  claim(head: number, range: BlockRange, opts: ClaimOptions = {}): void {
    this.checkHead(head);
    this.checkRange(range);
    if (!this.isAttached(head)) {
      throw new PoolError('HEAD_NOT_ATTACHED', `head ${head} is not attached; only attached heads can hold blocks`, { head });
    }
    const shared = opts.shared === true;
    const end = range.first + range.count;
    for (let b = range.first; b < end; b++) {
      const off = blockWordOffset(b);
      let expected = 0n;
      for (;;) {
        const desired = claimedWord(expected, head, shared);
        if (desired === null) {
          this.rollback(head, range.first, b);
          throw new PoolError('CONFLICT', conflictMessage(head, b, expected, shared, this.header.blockBytes), {
            head,
            block: b,
            holders: maskHolders(expected & MASK_BITS),
            sharedHolder: (expected & SHARED_FLAG) !== 0n,
          });
        }
        const seen = native.cas64(this.buf, off, expected, desired);
        if (seen === expected) break;
        expected = seen;
      }
    }
    this.bumpGeneration();
  }

  private rollback(head: number, first: number, end: number): void {
    for (let b = first; b < end; b++) this.clearBit(b, head);
  }

  /** Removes `head` from a block; the word returns to 0 when no holder is left. */
  private clearBit(block: number, head: number): boolean {
    const off = blockWordOffset(block);
    const bit = bitOf(head);
    let expected = bit;
    for (;;) {
      if ((expected & bit) === 0n) return false;
      const seen = native.cas64(this.buf, off, expected, clearedWord(expected, head));
      if (seen === expected) return true;
      expected = seen;
    }
  }

  /** Releases the range; refuses (changing nothing) unless `head` holds every block of it. */
  release(head: number, range: BlockRange): void {
    this.checkHead(head);
    this.checkRange(range);
    const bit = bitOf(head);
    const end = range.first + range.count;
    for (let b = range.first; b < end; b++) {
      if ((this.word(b) & bit) === 0n) {
        throw new PoolError('NOT_HELD', `head ${head} does not hold block ${b} (pool offset ${b * this.header.blockBytes})`, {
          head,
          block: b,
        });
      }
    }
    for (let b = range.first; b < end; b++) this.clearBit(b, head);
    this.bumpGeneration();
  }

  /** Releases every block `head` holds; returns how many. */
  releaseAll(head: number, opts: { sharedOnly?: boolean } = {}): number {
    this.checkHead(head);
    let n = 0;
    for (const b of this.blocksOf(head)) {
      if (opts.sharedOnly && (this.word(b) & SHARED_FLAG) === 0n) continue;
      if (this.clearBit(b, head)) n++;
    }
    if (n > 0) this.bumpGeneration();
    return n;
  }

  block(block: number): BlockInfo {
    this.checkRange({ first: block, count: 1 });
    const w = this.word(block);
    const referenced = (w & REF_FLAG) !== 0n;
    return {
      block,
      holders: maskHolders(w & MASK_BITS),
      shared: (w & SHARED_FLAG) !== 0n && ((w & MASK_BITS) !== 0n || referenced),
      referenced,
    };
  }

  /**
   * Marks the range as kept by a tag reference. Every block must be
   * allocated (held, or referenced already); refuses, changing nothing, if not.
   */
  reference(range: BlockRange): void {
    this.checkRange(range);
    const end = range.first + range.count;
    for (let b = range.first; b < end; b++) {
      if (this.word(b) === 0n) {
        throw new PoolError(
          'NOT_HELD',
          `block ${b} (pool offset ${b * this.header.blockBytes}) is free: only allocated blocks take a reference`,
          {
            block: b,
          },
        );
      }
    }
    for (let b = range.first; b < end; b++) {
      const off = blockWordOffset(b);
      let expected = this.word(b);
      for (;;) {
        const seen = native.cas64(this.buf, off, expected, expected | REF_FLAG);
        if (seen === expected) break;
        expected = seen;
      }
    }
    this.bumpGeneration();
  }

  /** Drops the reference mark; blocks no head holds become free. Returns how many did. */
  unreference(range: BlockRange): number {
    this.checkRange(range);
    let freed = 0;
    for (let b = range.first; b < range.first + range.count; b++) {
      const off = blockWordOffset(b);
      let expected = this.word(b);
      for (;;) {
        const desired = unreferencedWord(expected);
        const seen = native.cas64(this.buf, off, expected, desired);
        if (seen === expected) {
          if (desired === 0n && expected !== 0n) freed++;
          break;
        }
        expected = seen;
      }
    }
    this.bumpGeneration();
    return freed;
  }

  /** Blocks held by `head`, ascending. A snapshot: plain reads, no atomics. */
  blocksOf(head: number): number[] {
    this.checkHead(head);
    const out: number[] = [];
    const bit = 2 ** head;
    const u32 = this.u32;
    const base = blockWordOffset(0) / 4;
    for (let b = 0; b < this.header.blockCount; b++) {
      if (Math.floor(u32[base + 2 * b]! / bit) % 2 === 1) out.push(b);
    }
    return out;
  }

  /**
   * One pass over the bitmap: blocks held per head and free blocks. Atomic
   * relaxed reads of each word; the result is a snapshot, which is all a
   * status display needs. In C (the addon): `status` runs it once per
   * process, before the JIT has compiled a loop over a million words.
   */
  usage(): BlockUsage {
    return native.blockUsage(this.buf, blockWordOffset(0), this.header.blockCount, this.header.headCount);
  }

  /** Raw block word (fsck and golden tests). */
  rawBlockWord(block: number): bigint {
    this.checkRange({ first: block, count: 1 });
    return this.word(block);
  }

  /** Sets a raw block word (journal replay and damage tests only). */
  setRawBlockWord(block: number, value: bigint): void {
    this.checkRange({ first: block, count: 1 });
    native.store64(this.buf, blockWordOffset(block), value);
  }

  // ---- FM-LD lease -----------------------------------------------------

  lease(): LeaseInfo {
    this.checkOpen();
    const w = native.load32(this.buf, H.leaseOwner);
    return { owner: w === 0 ? null : w - 1, epoch: native.load32(this.buf, H.leaseEpoch) };
  }

  /** Takes the lease for `head` if nobody holds it. True if `head` holds it afterwards. */
  acquireLease(head: number): boolean {
    this.checkHead(head);
    if (!this.isAttached(head)) {
      throw new PoolError('HEAD_NOT_ATTACHED', `head ${head} is not attached and cannot own the FM-LD`, { head });
    }
    const seen = native.cas32(this.buf, H.leaseOwner, 0, head + 1);
    if (seen === 0) {
      native.fetchAdd32(this.buf, H.leaseEpoch, 1);
      this.bumpGeneration();
      return true;
    }
    return seen === head + 1;
  }

  /** Sets the lease word as the journal says it is (replay only: the owner may be detached by then). */
  setRawLease(owner: number | null): void {
    if (owner !== null) this.checkHead(owner);
    native.store32(this.buf, H.leaseOwner, owner === null ? 0 : owner + 1);
  }

  /**
   * Moves the lease from `from` (null: free) to `to`, bumping the epoch, so
   * anything still acting under the old epoch can tell. Refuses if the owner
   * changed meanwhile. Returns the new epoch.
   */
  takeLease(from: number | null, to: number): number {
    this.checkHead(to);
    if (!this.isAttached(to)) {
      throw new PoolError('HEAD_NOT_ATTACHED', `head ${to} is not attached and cannot own the FM-LD`, { head: to });
    }
    const expected = from === null ? 0 : from + 1;
    const seen = native.cas32(this.buf, H.leaseOwner, expected, to + 1);
    if (seen !== expected) {
      throw new PoolError('CONFLICT', `the FM-LD lease moved meanwhile (now ${seen === 0 ? 'free' : `head ${seen - 1}`})`, { head: to });
    }
    const epoch = native.fetchAdd32(this.buf, H.leaseEpoch, 1) + 1;
    this.bumpGeneration();
    return epoch;
  }

  /** Raises the lease epoch to at least `epoch` (journal replay into shm). */
  raiseLeaseEpoch(epoch: number): void {
    for (;;) {
      const cur = native.load32(this.buf, H.leaseEpoch);
      if (cur >= epoch || native.cas32(this.buf, H.leaseEpoch, cur, epoch) === cur) return;
    }
  }

  /** Frees the lease if `head` holds it. True if it did. */
  releaseLease(head: number): boolean {
    this.checkHead(head);
    if (native.cas32(this.buf, H.leaseOwner, head + 1, 0) !== head + 1) return false;
    this.bumpGeneration();
    return true;
  }

  // ---- writer bookkeeping -----------------------------------------------

  get writerPid(): number {
    this.checkOpen();
    return native.load32(this.buf, H.writerPid);
  }
  setWriterPid(pid: number): void {
    native.store32(this.buf, H.writerPid, pid >>> 0);
  }
}
