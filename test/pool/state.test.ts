// PoolState operations on a private image: claims, releases, head table,
// lease, and the byte layout (golden vectors of docs/state-layout.md).
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PoolError, PoolState } from '../../src/pool/index.js';
import { blockWordOffset, decodeHeader, headEntryOffset, stateObjectBytes } from '../../src/pool/layout.js';

const MiB = 2 ** 20;
const geometry = { capacityBytes: 512 * MiB, blockBytes: 2 * MiB, headCount: 4 };

function fresh(): PoolState {
  const s = PoolState.blank(geometry, 1_700_000_000_000);
  for (let h = 0; h < 4; h++) s.registerHead(h, 1000 + h, 1_700_000_000_000);
  return s;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof PoolError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('layout (golden)', () => {
  it('encodes the header byte for byte', () => {
    const s = PoolState.blank(geometry, 0x0102030405);
    const b = new Uint8Array(s.buffer);
    const hex = Buffer.from(b.subarray(0, 64)).toString('hex');
    expect(hex).toBe(
      [
        '43584c4d48445354', // "CXLMHDST"
        '01000000', // version 1
        '04000000', // 4 heads
        '0000002000000000', // capacity 512 MiB
        '0000200000000000', // block 2 MiB
        '0001000000000000', // 256 blocks
        '00040000', // head table at 1024
        '40000000', // 64-byte head entries
        '0010000000000000', // bitmap at 4096
        '0504030201000000', // created ms
      ].join(''),
    );
    const crc = new DataView(s.buffer).getUint32(64, true);
    expect(crc).toBe(crc32(b.subarray(0, 64)));
    expect(s.buffer.byteLength).toBe(stateObjectBytes(256));
    expect(stateObjectBytes(256)).toBe(8192); // 4096 + 256 words of 8 bytes, rounded up to a page
    expect(stateObjectBytes(512 * 1024)).toBe(4096 + 4 * MiB);
  });

  it('places head entries, lease and block words where the doc says', () => {
    const s = PoolState.blank(geometry, 0);
    s.registerHead(2, 0xabcd, 5);
    s.acquireLease(2);
    s.claim(2, { first: 3, count: 1 }, { shared: true });
    const v = new DataView(s.buffer);
    expect(headEntryOffset(2)).toBe(1024 + 128);
    expect(v.getUint32(1024 + 128, true)).toBe(1); // state attached
    expect(v.getUint32(1024 + 128 + 4, true)).toBe(0xabcd); // pid
    expect(v.getBigUint64(1024 + 128 + 16, true)).toBe(5n); // attached ms
    expect(v.getUint32(88, true)).toBe(3); // lease owner = head + 1
    expect(v.getUint32(92, true)).toBe(1); // lease epoch
    expect(blockWordOffset(3)).toBe(4096 + 24);
    expect(v.getBigUint64(4096 + 24, true)).toBe((1n << 32n) | 4n); // shared flag | bit 2
    expect(v.getBigUint64(72, true)).toBe(3n); // generation: register, lease, claim
  });

  it('refuses damaged, foreign or mis-sized images', () => {
    const s = PoolState.blank(geometry, 0);
    const bytes = () => new Uint8Array(s.buffer.slice(0));
    const damaged = bytes();
    damaged[20] = damaged[20]! ^ 1; // capacity, under the CRC
    expect(() => decodeHeader(damaged, damaged.byteLength, 'x')).toThrow(/checksum/);
    const foreign = bytes();
    foreign[0] = 0x41;
    expect(() => decodeHeader(foreign, foreign.byteLength, 'x')).toThrow(/magic/);
    const future = bytes();
    future[8] = 2;
    expect(() => decodeHeader(future, future.byteLength, 'x')).toThrow(/version 2/);
    const ok = bytes();
    expect(() => decodeHeader(ok, ok.byteLength + 4096, 'x')).toThrow(/needs/);
    expect(() => decodeHeader(ok.subarray(0, 100), 100, 'x')).toThrow(/too small/);
  });
});

describe('claims', () => {
  it('exclusive claim, query, release', () => {
    const s = fresh();
    s.claim(1, { first: 10, count: 5 });
    expect(s.blocksOf(1)).toEqual([10, 11, 12, 13, 14]);
    expect(s.block(12)).toEqual({ block: 12, holders: [1], shared: false, referenced: false });
    expect(s.usage().perHead).toEqual([0, 5, 0, 0]);
    expect(s.usage().free).toBe(256 - 5);
    s.release(1, { first: 10, count: 5 });
    expect(s.blocksOf(1)).toEqual([]);
    expect(s.rawBlockWord(12)).toBe(0n);
  });

  it('usage (the scan in the addon) agrees with the blocks one by one: holders, shared, referenced, free', () => {
    // Every kind of block word, at the first and last block and around 512-block boundaries.
    const s = PoolState.blank({ capacityBytes: 8192 * MiB, blockBytes: 2 * MiB, headCount: 4 }, 1_700_000_000_000);
    for (let h = 0; h < 4; h++) s.registerHead(h, 1000 + h, 1_700_000_000_000);
    s.claim(0, { first: 0, count: 1 });
    s.claim(1, { first: 511, count: 2 });
    s.claim(2, { first: 1023, count: 1 }, { shared: true });
    s.claim(3, { first: 1023, count: 1 }, { shared: true });
    // A reference that outlives its holder: referenced, not free.
    s.claim(2, { first: 2048, count: 1 });
    s.reference({ first: 2048, count: 1 });
    s.release(2, { first: 2048, count: 1 });
    s.claim(1, { first: 3071, count: 1 });
    s.claim(0, { first: 4095, count: 1 });
    const expected = { perHead: [0, 0, 0, 0], sharedPerHead: [0, 0, 0, 0], free: 0, referenced: 0 };
    for (let b = 0; b < 4096; b++) {
      const info = s.block(b);
      if (info.referenced) expected.referenced++;
      else if (info.holders.length === 0) expected.free++;
      for (const h of info.holders) {
        expected.perHead[h]!++;
        if (info.shared) expected.sharedPerHead[h]!++;
      }
    }
    expect(s.usage()).toEqual(expected);
    expect(s.usage()).toEqual({ perHead: [2, 3, 1, 1], sharedPerHead: [0, 0, 1, 1], free: 4096 - 7, referenced: 1 });
  });

  it('is all-or-nothing: a conflict rolls back what was taken', () => {
    const s = fresh();
    s.claim(0, { first: 20, count: 1 });
    const gen = s.generation;
    let err: PoolError | undefined;
    try {
      s.claim(1, { first: 15, count: 10 });
    } catch (e) {
      err = e as PoolError;
    }
    expect(err?.code).toBe('CONFLICT');
    expect(err?.message).toMatch(/block 20 .* held exclusively by head 0/);
    expect(err?.detail).toMatchObject({ block: 20, holders: [0] });
    expect(s.blocksOf(1)).toEqual([]);
    expect(s.blocksOf(0)).toEqual([20]);
    expect(s.generation).toBe(gen);
  });

  it('shared claims admit shared holders only', () => {
    const s = fresh();
    s.claim(0, { first: 0, count: 4 }, { shared: true });
    s.claim(1, { first: 0, count: 4 }, { shared: true });
    expect(s.block(2)).toEqual({ block: 2, holders: [0, 1], shared: true, referenced: false });
    expect(code(() => s.claim(2, { first: 3, count: 1 }))).toBe('CONFLICT');
    expect(code(() => s.claim(0, { first: 0, count: 1 }, { shared: true }))).toBe('CONFLICT'); // already holds
    s.claim(3, { first: 10, count: 1 });
    expect(code(() => s.claim(2, { first: 10, count: 1 }, { shared: true }))).toBe('CONFLICT');
    expect(s.usage().sharedPerHead).toEqual([4, 4, 0, 0]);
    s.release(0, { first: 0, count: 4 });
    expect(s.block(1)).toEqual({ block: 1, holders: [1], shared: true, referenced: false });
    s.release(1, { first: 0, count: 4 });
    expect(s.rawBlockWord(1)).toBe(0n); // last holder gone: word fully cleared, flag too
    s.claim(2, { first: 0, count: 4 }); // now free for an exclusive claim
    expect(s.block(0).shared).toBe(false);
  });

  it('release refuses (changing nothing) unless every block is held', () => {
    const s = fresh();
    s.claim(2, { first: 0, count: 2 });
    expect(code(() => s.release(2, { first: 0, count: 3 }))).toBe('NOT_HELD');
    expect(s.blocksOf(2)).toEqual([0, 1]);
    expect(code(() => s.release(1, { first: 0, count: 1 }))).toBe('NOT_HELD');
  });

  it('releaseAll, optionally only shared blocks', () => {
    const s = fresh();
    s.claim(1, { first: 0, count: 3 }, { shared: true });
    s.claim(1, { first: 5, count: 2 });
    expect(s.releaseAll(1, { sharedOnly: true })).toBe(3);
    expect(s.blocksOf(1)).toEqual([5, 6]);
    expect(s.releaseAll(1)).toBe(2);
    expect(s.releaseAll(1)).toBe(0);
  });

  it('rejects bad ranges and unknown or detached heads', () => {
    const s = fresh();
    expect(code(() => s.claim(0, { first: 250, count: 10 }))).toBe('OUT_OF_RANGE');
    expect(code(() => s.claim(0, { first: -1, count: 1 }))).toBe('OUT_OF_RANGE');
    expect(code(() => s.claim(0, { first: 0, count: 0 }))).toBe('OUT_OF_RANGE');
    expect(code(() => s.claim(0, { first: 0.5, count: 1 }))).toBe('OUT_OF_RANGE');
    expect(code(() => s.claim(4, { first: 0, count: 1 }))).toBe('UNKNOWN_HEAD');
    expect(code(() => s.claim(-1, { first: 0, count: 1 }))).toBe('UNKNOWN_HEAD');
    s.unregisterHead(3);
    expect(code(() => s.claim(3, { first: 0, count: 1 }))).toBe('HEAD_NOT_ATTACHED');
  });

  it('converts aligned byte ranges to blocks and refuses the rest', () => {
    const s = fresh();
    expect(s.bytesToBlocks(256 * MiB, 256 * MiB)).toEqual({ first: 128, count: 128 });
    expect(code(() => s.bytesToBlocks(MiB, 2 * MiB))).toBe('OUT_OF_RANGE');
    expect(code(() => s.bytesToBlocks(0, 3 * MiB))).toBe('OUT_OF_RANGE');
    expect(code(() => s.bytesToBlocks(256 * MiB, 512 * MiB))).toBe('OUT_OF_RANGE');
  });
});

describe('heads and lease', () => {
  it('register/unregister with pid and generation', () => {
    const s = PoolState.blank(geometry, 0);
    s.registerHead(1, 4242, 99);
    expect(s.head(1)).toMatchObject({ id: 1, attached: true, pid: 4242, attachedMs: 99, attachGeneration: 1 });
    expect(code(() => s.registerHead(1, 1))).toBe('HEAD_ATTACHED');
    s.claim(1, { first: 0, count: 1 });
    expect(code(() => s.unregisterHead(1))).toBe('HEAD_HOLDS_BLOCKS');
    s.release(1, { first: 0, count: 1 });
    s.unregisterHead(1);
    expect(s.head(1)).toMatchObject({ attached: false, pid: 0 });
    expect(code(() => s.unregisterHead(1))).toBe('HEAD_NOT_ATTACHED');
    expect(code(() => s.head(7))).toBe('UNKNOWN_HEAD');
  });

  it('lease: only if free, idempotent for the owner, released only by the owner', () => {
    const s = fresh();
    expect(s.lease()).toEqual({ owner: null, epoch: 0 });
    expect(s.acquireLease(1)).toBe(true);
    expect(s.acquireLease(0)).toBe(false);
    expect(s.acquireLease(1)).toBe(true);
    expect(s.lease()).toEqual({ owner: 1, epoch: 1 });
    expect(s.releaseLease(0)).toBe(false);
    expect(s.releaseLease(1)).toBe(true);
    expect(s.lease().owner).toBe(null);
    expect(s.acquireLease(0)).toBe(true);
    expect(s.lease()).toEqual({ owner: 0, epoch: 2 });
    const t = PoolState.blank(geometry, 0);
    expect(code(() => t.acquireLease(0))).toBe('HEAD_NOT_ATTACHED');
  });
});
