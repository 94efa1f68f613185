// 5602h (region block size, sanitize on release) and the r3.2 tag
// references 5606h–5608h over a real shm pool and its journal: what is
// refused and with which code, what a reference keeps (blocks and bytes),
// what the last one frees (zeroed when the region says so), and a restart
// that replays all of it from the journal.
import { describe, expect, it } from 'vitest';
import { ReturnCode, SelectionPolicy, TagFlag, ZERO_TAG } from '../../src/fmapi/index.js';
import type { PoolModel } from '../../src/http/model.js';
import { memoryDomain } from '../../src/http/routes/chassis/index.js';
import { fsck, Pool, poolStatus } from '../../src/pool/index.js';
import { add, cleanups, code, MiB, manager, peek, poke, pool, StubDelivery } from '../helpers/capacity.js';
import { eventually } from '../helpers/qemu.js';

const TAG = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';
const OTHER = '11111111-2222-4333-8444-555555555555';
const tick = () => new Promise((r) => setImmediate(r));

/** A DCD-like delivery: 2 MiB granularity, so the region's block size is what limits adds. */
class FineDelivery extends StubDelivery {
  override readonly unit = 2 * MiB;
  override slots = 64;
}

function locked(heads = 3): Pool {
  const p = pool(heads);
  p.lockWriter();
  return p;
}

function setup(p = locked()) {
  const d = [new FineDelivery(), new FineDelivery(), new FineDelivery()];
  return { p, d, m: manager(p, { 0: d[0]!, 1: d[1]!, 2: d[2]! }) };
}

const shared = (h: number, ext: [number, number][], tag = TAG) => add(h, ext, { selectionPolicy: SelectionPolicy.EnableSharedAccess, tag });
const byTag = (h: number, tag = TAG) => ({ hostId: h, removalPolicy: 0, forced: false, region: 0, length: 0, tag, extents: [] });

const PATTERN = Buffer.from('cxl-mhd sanitize pattern '.repeat(40));

describe('5602h Set DC Region Configuration', () => {
  it('offers the pool block and its doublings, sets one, and 5601h reports it', async () => {
    const { m } = setup();
    const info = m.dcdInfo();
    expect(info.regionBlockSizeMasks).toEqual([(1n << 21n) | (1n << 22n) | (1n << 23n) | (1n << 24n)]);
    expect(info.sanitizeMask).toBe(1);
    expect(m.hostRegionConfig({ hostId: 0, startRegion: 0, regionCount: 1 }).regions[0]).toMatchObject({
      blockSize: 2 * MiB,
      sanitizeOnRelease: 0,
    });
    await m.setRegionConfig({ region: 0, blockSize: 8 * MiB, sanitizeOnRelease: true });
    expect(m.hostRegionConfig({ hostId: 1, startRegion: 0, regionCount: 1 }).regions[0]).toMatchObject({
      blockSize: 8 * MiB,
      sanitizeOnRelease: 1,
    });
  });

  it('refuses an unsupported size or region (Invalid Input) and any change while the region holds extents (Unsupported)', async () => {
    const { m } = setup();
    expect(await code(() => m.setRegionConfig({ region: 0, blockSize: 32 * MiB, sanitizeOnRelease: false }))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.setRegionConfig({ region: 0, blockSize: 3 * MiB, sanitizeOnRelease: false }))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.setRegionConfig({ region: 1, blockSize: 2 * MiB, sanitizeOnRelease: false }))).toBe(ReturnCode.InvalidInput);
    await m.initiateAdd(add(2, [[0, 2 * MiB]]));
    expect(await code(() => m.setRegionConfig({ region: 0, blockSize: 4 * MiB, sanitizeOnRelease: true }))).toBe(ReturnCode.Unsupported);
    expect(m.hostRegionConfig({ hostId: 2, startRegion: 0, regionCount: 1 }).regions[0]?.blockSize).toBe(2 * MiB);
  });

  it('makes adds follow the region block: a 2 MiB extent is refused after 8 MiB blocks are set', async () => {
    const { p, m } = setup();
    await m.setRegionConfig({ region: 0, blockSize: 8 * MiB, sanitizeOnRelease: false });
    expect(await code(() => m.initiateAdd(add(0, [[0, 2 * MiB]])))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.initiateAdd(add(0, [[2 * MiB, 8 * MiB]])))).toBe(ReturnCode.InvalidInput);
    await m.initiateAdd(add(0, [[8 * MiB, 8 * MiB]]));
    await m.initiateAdd(add(1, [], { selectionPolicy: SelectionPolicy.Free, length: 8 * MiB }));
    expect(p.state.blocksOf(1)).toEqual([0, 1, 2, 3]); // first fit, 8 MiB aligned
  });
});

describe('sanitize on release', () => {
  for (const sanitize of [true, false]) {
    it(`${sanitize ? 'zeroes' : 'keeps'} the bytes of released blocks before another head gets them (flag ${sanitize ? 'on' : 'off'})`, async () => {
      const { p, m } = setup();
      await m.setRegionConfig({ region: 0, blockSize: 2 * MiB, sanitizeOnRelease: sanitize });
      await m.initiateAdd(add(0, [[64 * MiB, 4 * MiB]]));
      poke(p, 64 * MiB + 4096, PATTERN);
      poke(p, 68 * MiB - PATTERN.length, PATTERN);
      const { extents } = m.extentList({ hostId: 0, startIndex: 0, extentCount: 9 });
      await m.initiateRelease({ ...byTag(0, ZERO_TAG), removalPolicy: 1, extents });
      await tick();
      expect(p.state.blocksOf(0)).toEqual([]);
      await m.initiateAdd(add(1, [[64 * MiB, 4 * MiB]]));
      const want = sanitize ? Buffer.alloc(PATTERN.length) : PATTERN;
      expect(peek(p, 64 * MiB + 4096, PATTERN.length)).toEqual(want);
      expect(peek(p, 68 * MiB - PATTERN.length, PATTERN.length)).toEqual(want);
    });
  }

  it('leaves shared blocks alone while another head still holds them, and zeroes them when the last one lets go', async () => {
    const { p, m } = setup();
    await m.setRegionConfig({ region: 0, blockSize: 2 * MiB, sanitizeOnRelease: true });
    await m.initiateAdd(shared(0, [[0, 2 * MiB]]));
    await m.initiateAdd(shared(1, [[0, 2 * MiB]]));
    poke(p, 100, PATTERN);
    await m.initiateRelease(byTag(0));
    await tick();
    expect(peek(p, 100, PATTERN.length)).toEqual(PATTERN);
    await m.initiateRelease(byTag(1));
    await tick();
    expect(peek(p, 100, PATTERN.length)).toEqual(Buffer.alloc(PATTERN.length));
  });

  it('zeroes the blocks of a head whose QEMU went away', async () => {
    const { p, m } = setup();
    await m.setRegionConfig({ region: 0, blockSize: 2 * MiB, sanitizeOnRelease: true });
    await m.initiateAdd(add(2, [[10 * MiB, 2 * MiB]]));
    poke(p, 10 * MiB, PATTERN);
    p.releaseAll(2);
    m.forgetHead(2);
    expect(peek(p, 10 * MiB, PATTERN.length)).toEqual(Buffer.alloc(PATTERN.length));
  });
});

describe('5606h/5607h/5608h tag references', () => {
  it('a reference keeps the allocation and its bytes after every head released it; a new head joins it; the last reference frees it', async () => {
    const { p, m } = setup();
    const ext: [number, number][] = [
      [32 * MiB, 4 * MiB],
      [0, 2 * MiB],
    ];
    await m.initiateAdd(shared(0, ext));
    await m.initiateAdd(shared(1, ext));
    poke(p, 32 * MiB, PATTERN);
    await m.addReference({ tag: TAG });
    for (const h of [0, 1]) await m.initiateRelease(byTag(h));
    await tick();
    expect(m.grantsOf(0)).toEqual([]);
    expect(p.state.block(16)).toMatchObject({ holders: [], referenced: true, shared: true });
    const report = fsck(p);
    expect(report.findings).toEqual([]);
    expect(report.references).toEqual([{ tag: TAG, count: 1, blocks: 3 }]);
    const status = poolStatus(p);
    expect(status).toMatchObject({ referencedBytes: 6 * MiB, references: [{ tag: TAG, count: 1, shared: true }] });
    expect(status.references[0]?.extents).toEqual([
      { offset: 0, len: 2 * MiB },
      { offset: 32 * MiB, len: 4 * MiB },
    ]);
    // The Redfish memory domain carries them (its body reads the status only).
    const domain = memoryDomain({ snap: { status } } as unknown as PoolModel, 'pool') as {
      Oem: { CxlMhd: { ReferencedBytes: number; ReferencedTags: string[] } };
    };
    expect(domain.Oem.CxlMhd).toMatchObject({ ReferencedBytes: 6 * MiB, ReferencedTags: [TAG] });
    let list = m.listTags({ startIndex: 0, maxTags: 10 });
    expect(list.tags).toEqual([{ tag: TAG, flags: TagFlag.FmReference, references: [], pending: [] }]);
    // Kept blocks are not free: nothing else gets them.
    expect(await code(() => m.initiateAdd(add(2, [[32 * MiB, 2 * MiB]])))).toBe(ReturnCode.ResourcesExhausted);
    expect(await code(() => m.initiateAdd(shared(2, [[0, 2 * MiB]])))).toBe(ReturnCode.InvalidInput);
    await m.initiateAdd(shared(2, ext));
    expect(peek(p, 32 * MiB, PATTERN.length)).toEqual(PATTERN);
    list = m.listTags({ startIndex: 0, maxTags: 10 });
    expect(list.tags[0]?.references).toEqual([2]);
    await m.removeReference({ tag: TAG });
    expect(p.state.block(16)).toMatchObject({ holders: [2], referenced: false });
    await m.initiateRelease(byTag(2));
    await tick();
    expect(p.state.block(16)).toMatchObject({ holders: [], referenced: false });
    expect(m.listTags({ startIndex: 0, maxTags: 10 }).totalTags).toBe(0);
  });

  it('removing the last reference of an unheld allocation frees it, zeroed when the region sanitizes', async () => {
    for (const sanitize of [false, true]) {
      const { p, m } = setup();
      await m.setRegionConfig({ region: 0, blockSize: 2 * MiB, sanitizeOnRelease: sanitize });
      await m.initiateAdd(add(0, [[6 * MiB, 2 * MiB]], { tag: OTHER }));
      poke(p, 6 * MiB, PATTERN);
      await m.addReference({ tag: OTHER });
      await m.addReference({ tag: OTHER });
      await m.initiateRelease(byTag(0, OTHER));
      await tick();
      expect(p.state.block(3).referenced).toBe(true);
      await m.removeReference({ tag: OTHER });
      expect(p.state.block(3).referenced).toBe(true); // one left
      expect(peek(p, 6 * MiB, PATTERN.length)).toEqual(PATTERN);
      await m.removeReference({ tag: OTHER });
      expect(p.state.block(3)).toMatchObject({ holders: [], referenced: false });
      expect(peek(p, 6 * MiB, PATTERN.length)).toEqual(sanitize ? Buffer.alloc(PATTERN.length) : PATTERN);
      expect(await code(() => m.removeReference({ tag: OTHER }))).toBe(ReturnCode.InvalidInput);
    }
  });

  it('refuses unknown tags and the zero tag with Invalid Input', async () => {
    const { m } = setup();
    expect(await code(() => m.addReference({ tag: TAG }))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.addReference({ tag: ZERO_TAG }))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.removeReference({ tag: TAG }))).toBe(ReturnCode.InvalidInput);
    await m.initiateAdd(add(0, [[0, 2 * MiB]], { tag: TAG }));
    expect(await code(() => m.removeReference({ tag: TAG }))).toBe(ReturnCode.InvalidInput);
  });

  it('lists tags in order, paged by start index and count, with holders, pending releases and a generation that moves', async () => {
    const { p, m, d } = setup();
    const tags = ['33333333-0000-4000-8000-000000000000', '11111111-0000-4000-8000-000000000000', '22222222-0000-4000-8000-000000000000'];
    for (const [i, t] of tags.entries()) await m.initiateAdd(add(i, [[i * 2 * MiB, 2 * MiB]], { tag: t }));
    const g0 = m.listTags({ startIndex: 0, maxTags: 0 });
    expect(g0).toMatchObject({ totalTags: 3, tags: [] });
    const page = m.listTags({ startIndex: 1, maxTags: 1 });
    expect(page.tags).toEqual([{ tag: tags[2], flags: 0, references: [2], pending: [] }]);
    expect(m.listTags({ startIndex: 5, maxTags: 9 }).tags).toEqual([]);
    // A release QEMU accepted but has not completed shows as pending.
    d[0]!.holdRemovals = true;
    const releasing = m.initiateRelease(byTag(0, tags[0]));
    await eventually(() => m.listTags({ startIndex: 2, maxTags: 1 }).tags[0]?.pending.length === 1, 'the release to be under way');
    expect(m.listTags({ startIndex: 2, maxTags: 1 }).tags[0]).toMatchObject({ references: [], pending: [0] });
    d[0]!.holdGone?.();
    await releasing;
    await tick();
    const after = m.listTags({ startIndex: 0, maxTags: 9 });
    expect(after.totalTags).toBe(2);
    expect(after.generation).not.toBe(g0.generation);
    expect(p.state.blocksOf(0)).toEqual([]);
  });
});

describe('journal', () => {
  it('a restarted backend replays the region setting and the references (blocks kept, counts, tag list)', async () => {
    const p = locked();
    const { m } = setup(p);
    await m.setRegionConfig({ region: 0, blockSize: 4 * MiB, sanitizeOnRelease: true });
    await m.initiateAdd(add(1, [[4 * MiB, 4 * MiB]], { tag: TAG }));
    await m.addReference({ tag: TAG });
    await m.addReference({ tag: TAG });
    await m.initiateRelease(byTag(1));
    await tick();
    p.compact(); // half in the snapshot, half in the tail
    await m.removeReference({ tag: TAG });
    const { name } = p;
    const stateDir = (p as unknown as { stateDir: string }).stateDir;
    p.close();
    const q = Pool.open({ name, stateDir });
    cleanups.push(() => q.close());
    q.lockWriter();
    expect(q.recoverFromJournal()).toEqual({ blocks: 0, heads: [], lease: false });
    const fresh = manager(q, { 0: new FineDelivery() });
    expect(fresh.hostRegionConfig({ hostId: 0, startRegion: 0, regionCount: 1 }).regions[0]).toMatchObject({
      blockSize: 4 * MiB,
      sanitizeOnRelease: 1,
    });
    expect(fresh.listTags({ startIndex: 0, maxTags: 9 }).tags).toEqual([
      { tag: TAG, flags: TagFlag.FmReference, references: [], pending: [] },
    ]);
    expect(q.state.block(2).referenced).toBe(true);
    expect(q.image.toState().rawBlockWord(2)).toBe(q.state.rawBlockWord(2));
    await fresh.removeReference({ tag: TAG }); // the second of two: it was counted across the restart
    expect(q.state.block(2)).toMatchObject({ holders: [], referenced: false });
    expect(await code(() => fresh.removeReference({ tag: TAG }))).toBe(ReturnCode.InvalidInput);
  });
});
