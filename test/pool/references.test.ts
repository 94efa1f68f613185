// The tag-reference bit of a block word (REF_FLAG, CXL r3.2 5606h): what
// claims and releases do around it, what unreference frees, and that the
// journal's replay and fsck agree with shared memory.
import { describe, expect, it } from 'vitest';
import { checkInvariants, fsck, PoolError, PoolState } from '../../src/pool/index.js';
import { REF_FLAG, SHARED_FLAG } from '../../src/pool/layout.js';
import { pool } from '../helpers/capacity.js';

const MiB = 2 ** 20;

function fresh(): PoolState {
  const s = PoolState.blank({ capacityBytes: 64 * MiB, blockBytes: 2 * MiB, headCount: 4 }, 0);
  for (let h = 0; h < 4; h++) s.registerHead(h, 100 + h);
  return s;
}

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return e instanceof PoolError ? e.code : String(e);
  }
};

describe('referenced blocks', () => {
  it('stay allocated when the last holder releases, are rejoined only as allocated, and free on unreference', () => {
    const s = fresh();
    expect(code(() => s.reference({ first: 0, count: 2 }))).toBe('NOT_HELD');
    s.claim(1, { first: 0, count: 2 }, { shared: true });
    s.reference({ first: 0, count: 2 });
    s.release(1, { first: 0, count: 2 });
    expect(s.block(0)).toEqual({ block: 0, holders: [], shared: true, referenced: true });
    expect(s.rawBlockWord(0)).toBe(REF_FLAG | SHARED_FLAG);
    expect(s.usage()).toMatchObject({ free: 30, referenced: 2 });
    expect(code(() => s.claim(2, { first: 0, count: 1 }))).toBe('CONFLICT');
    s.claim(2, { first: 0, count: 2 }, { shared: true });
    expect(s.block(1)).toEqual({ block: 1, holders: [2], shared: true, referenced: true });
    expect(s.unreference({ first: 0, count: 2 })).toBe(0); // head 2 still holds them
    expect(s.block(1).referenced).toBe(false);
    s.claim(3, { first: 4, count: 1 });
    s.reference({ first: 4, count: 1 });
    s.releaseAll(3);
    expect(s.block(4)).toMatchObject({ holders: [], referenced: true, shared: false });
    expect(code(() => s.claim(0, { first: 4, count: 1 }, { shared: true }))).toBe('CONFLICT');
    expect(checkInvariants(s)).toEqual([]);
    expect(s.unreference({ first: 4, count: 1 })).toBe(1);
    expect(s.rawBlockWord(4)).toBe(0n);
  });

  it('journal replay (snapshot and tail) rebuilds the reference bits and counts; fsck finds nothing', () => {
    const p = pool(2);
    p.lockWriter();
    p.claim(0, { first: 3, count: 2 }, { shared: true }, { kind: 'dynamic', tag: 't' });
    p.addReference('t', true, [{ first: 3, count: 2 }]);
    p.compact();
    p.addReference('t', true, [{ first: 3, count: 2 }]);
    p.release(0, { first: 3, count: 2 }, { kind: 'dynamic', tag: 't' });
    expect(p.removeReference('t', false, [{ first: 3, count: 2 }])).toBe(0);
    p.recordRegionConfig({ region: 0, blockSize: 4 * MiB, sanitizeOnRelease: true });
    const img = p.loadImage().image;
    expect(img.references()).toEqual([{ tag: 't', count: 1, shared: true, ranges: [{ first: 3, count: 2 }] }]);
    expect(img.regionConfigs()).toEqual([{ region: 0, blockSize: 4 * MiB, sanitizeOnRelease: true }]);
    expect(img.toState().rawBlockWord(3)).toBe(p.state.rawBlockWord(3));
    expect(fsck(p).findings).toEqual([]);
    expect(p.removeReference('t', true, [{ first: 3, count: 2 }])).toBe(2);
    expect(p.loadImage().image.references()).toEqual([]);
    expect(p.loadImage().image.toState().rawBlockWord(3)).toBe(0n);
    expect(fsck(p).findings).toEqual([]);
  });
});
