// Tagged shared allocations (src/capacity/allocations.ts) over a real shm
// pool: a tag names one set of extents while any head holds it, 5603h shows
// the same sequence numbers on every head, blocks go back to the pool only
// with the last holder, one head's exit or reset drops only its share, a
// restart rebuilds the allocations, and adds across heads are all-or-nothing.
import { describe, expect, it } from 'vitest';
import { addToHosts, allocationsOf } from '../../src/capacity/index.js';
import { RemovalPolicy, ReturnCode, SelectionPolicy, ZERO_TAG } from '../../src/fmapi/index.js';
import { add, code, GiB, MiB, manager, pool, StubDelivery } from '../helpers/capacity.js';
import { prng } from '../helpers/fmapi-util.js';

const T1 = '11111111-2222-4333-8444-555555555555';
const T2 = '99999999-8888-4777-8666-555555555555';
const U = 256 * MiB;
const shared = (host: number, extents: [number, number][], tag = T1) =>
  add(host, extents, { selectionPolicy: SelectionPolicy.EnableSharedAccess, tag });
const byTag = (host: number, tag = T1) => ({
  hostId: host,
  removalPolicy: RemovalPolicy.TagBased,
  forced: false,
  region: 0,
  length: 0,
  tag,
  extents: [],
});
const tick = () => new Promise((r) => setImmediate(r));

function setup(heads = 3, slots = 4) {
  const p = pool(heads);
  const d = Array.from({ length: heads }, () => Object.assign(new StubDelivery(), { slots }));
  const m = manager(p, Object.fromEntries(d.map((x, i) => [i, x])));
  return { p, d, m };
}

describe('tagged shared allocations', () => {
  it('the first add fixes the extents; joining heads must name the same ones', async () => {
    const { p, m } = setup();
    await m.initiateAdd(
      shared(0, [
        [GiB, U],
        [0, U],
      ]),
    );
    // same extents in another order: the same allocation
    await m.initiateAdd(
      shared(1, [
        [0, U],
        [GiB, U],
      ]),
    );
    expect(p.state.block(0).holders).toEqual([0, 1]);
    expect(await code(() => m.initiateAdd(shared(2, [[0, U]])))).toBe(ReturnCode.InvalidInput);
    expect(
      await code(() =>
        m.initiateAdd(
          shared(2, [
            [0, U],
            [GiB + U, U],
          ]),
        ),
      ),
    ).toBe(ReturnCode.InvalidInput);
    // joining twice, or using the tag for an exclusive add, is refused too
    expect(
      await code(() =>
        m.initiateAdd(
          shared(1, [
            [0, U],
            [GiB, U],
          ]),
        ),
      ),
    ).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.initiateAdd(add(2, [[2 * U, U]], { tag: T1 })))).toBe(ReturnCode.InvalidInput);
    expect(p.state.blocksOf(2)).toEqual([]);
    // the allocation is one unit: a prescriptive release of part of it is refused
    const part = {
      ...byTag(0, ZERO_TAG),
      removalPolicy: RemovalPolicy.Prescriptive,
      extents: [{ startDpa: 0, len: U, tag: T1, sharedSeq: 0 }],
    };
    expect(await code(() => m.initiateRelease(part))).toBe(ReturnCode.InvalidInput);
    expect(m.allocations()).toEqual([
      {
        tag: T1,
        shared: true,
        extents: [
          { offset: 0, len: U },
          { offset: GiB, len: U },
        ],
        holders: [0, 1],
      },
    ]);
  });

  it('a tag is not reused for other blocks, nor its blocks for another tag, while any head holds it', async () => {
    const { m } = setup();
    await m.initiateAdd(shared(0, [[0, U]]));
    expect(await code(() => m.initiateAdd(shared(1, [[U, U]])))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.initiateAdd(shared(1, [[0, U]], T2)))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => m.initiateAdd(add(1, [], { selectionPolicy: SelectionPolicy.Free, length: U, tag: T1 })))).toBe(
      ReturnCode.InvalidInput,
    );
    // an exclusive tagged grant owns its tag the same way
    await m.initiateAdd(add(2, [[GiB, U]], { tag: T2 }));
    expect(await code(() => m.initiateAdd(add(1, [[U, U]], { tag: T2 })))).toBe(ReturnCode.InvalidInput);
    // the same blocks asked by another head, shared or not: taken, as they would be without a tag
    expect(await code(() => m.initiateAdd(shared(1, [[GiB, U]], T2)))).toBe(ReturnCode.ResourcesExhausted);
    expect(await code(() => m.initiateAdd(add(1, [[GiB, U]], { tag: T2 })))).toBe(ReturnCode.ResourcesExhausted);
    // once nobody holds it, the tag may name other blocks
    await m.initiateRelease(byTag(0));
    await tick();
    await m.initiateAdd(shared(1, [[3 * U, U]]));
    expect(m.allocations().find((a) => a.tag === T1)?.extents).toEqual([{ offset: 3 * U, len: U }]);
  });

  it('5603h: shared sequence numbers 0..n-1 in pool order, identical on every head; labels carry them', async () => {
    const { m, d } = setup();
    const ext: [number, number][] = [
      [2 * GiB - U, U],
      [0, U],
      [GiB, U],
    ];
    await m.initiateAdd(shared(0, ext));
    await m.initiateAdd(shared(2, [...ext].reverse()));
    const list = (h: number) =>
      m.extentList({ hostId: h, startIndex: 0, extentCount: 10 }).extents.map((e) => [e.startDpa, e.tag, e.sharedSeq]);
    expect(list(0)).toEqual([
      [0, T1, 0],
      [GiB, T1, 1],
      [2 * GiB - U, T1, 2],
    ]);
    expect(list(2)).toEqual(list(0));
    // what each hot-added LD's label area says: the tag, 3 extents, its own position
    const labels = (x: StubDelivery) => x.labels.map((l) => [l?.uuid, l?.nlabel, l?.position]);
    expect(labels(d[0] as StubDelivery)).toEqual([
      [T1, 3, 2],
      [T1, 3, 0],
      [T1, 3, 1],
    ]);
    expect(labels(d[2] as StubDelivery)).toEqual([
      [T1, 3, 1],
      [T1, 3, 0],
      [T1, 3, 2],
    ]);
    // untagged shared extents keep sequence number 0 and get no label
    await m.initiateAdd(add(1, [[U, U]], { selectionPolicy: SelectionPolicy.EnableSharedAccess }));
    expect(m.extentList({ hostId: 1, startIndex: 0, extentCount: 10 }).extents[0]).toMatchObject({ tag: ZERO_TAG, sharedSeq: 0 });
    expect((d[1] as StubDelivery).labels).toEqual([undefined]);
  });

  it('5605h by tag releases one head’s share; the blocks are free only after the last holder', async () => {
    const { p, m } = setup();
    for (const h of [0, 1, 2]) await m.initiateAdd(shared(h, [[0, U]]));
    await m.initiateRelease(byTag(1));
    await tick();
    expect(p.state.block(0).holders).toEqual([0, 2]);
    expect(m.allocations()[0]?.holders).toEqual([0, 2]);
    expect(allocationsOf([0, 1, 2].map((id) => ({ id, grants: m.grantsOf(id) })))).toEqual(m.allocations());
    // QEMU exit of head 0 drops only its share (its blocks were released with it in shm)
    p.releaseAll(0);
    m.forgetHead(0);
    expect(m.allocations()[0]?.holders).toEqual([2]);
    // a guest reset of head 2 drops the last share: the tag and the blocks are free
    await m.onReset(2);
    expect(p.state.block(0).holders).toEqual([]);
    expect(m.allocations()).toEqual([]);
    expect(await code(() => m.initiateRelease(byTag(2)))).toBe(ReturnCode.InvalidInput);
  });

  it('a restarted backend rebuilds the allocations from the re-adopted heads', async () => {
    const { p, m, d } = setup();
    const ext: [number, number][] = [
      [GiB, U],
      [0, U],
    ];
    await m.initiateAdd(shared(0, ext));
    await m.initiateAdd(shared(1, ext));
    const fresh = manager(p, { 0: d[0] as StubDelivery, 1: d[1] as StubDelivery, 2: d[2] as StubDelivery });
    for (const h of [0, 1]) fresh.adopt(h, m.grantsOf(h));
    expect(fresh.allocations()).toEqual(m.allocations());
    expect(fresh.extentList({ hostId: 1, startIndex: 0, extentCount: 9 }).extents.map((e) => e.sharedSeq)).toEqual([0, 1]);
    expect(await code(() => fresh.initiateAdd(shared(2, [[0, U]])))).toBe(ReturnCode.InvalidInput);
    await fresh.initiateAdd(shared(2, ext));
    expect(fresh.allocations()[0]?.holders).toEqual([0, 1, 2]);
  });

  it('adds across hosts are all-or-nothing: a failing head rolls back the heads already given it', async () => {
    const { p, m, d } = setup(4);
    (d[3] as StubDelivery).failAdd = true;
    const steps: string[] = [];
    const req = (h: number) => shared(h, [[0, U]]);
    expect(await code(() => addToHosts(m, [1, 2, 3], req, (s) => steps.push(s)))).toBe(ReturnCode.InternalError);
    await tick();
    expect([1, 2, 3].map((h) => p.state.blocksOf(h).length)).toEqual([0, 0, 0]);
    expect(m.allocations()).toEqual([]);
    expect(steps).toEqual([
      'head 1: added',
      'head 2: added',
      expect.stringMatching(/^head 3: add failed .*releasing it from head\(s\) 1, 2$/),
    ]);
    // the same allocation then goes to all three once head 3 works
    (d[3] as StubDelivery).failAdd = false;
    await addToHosts(m, [1, 2, 3], req);
    expect(m.allocations()[0]?.holders).toEqual([1, 2, 3]);
    expect(await code(() => addToHosts(m, [1, 1], req))).toBe(ReturnCode.InvalidInput);
    expect(await code(() => addToHosts(m, [0, 1], (h) => ({ ...req(h), tag: ZERO_TAG })))).toBe(ReturnCode.InvalidInput);
    expect(p.state.blocksOf(0)).toEqual([]);
  });
});

describe('tag rules under random 5604h/5605h', () => {
  it('keep one extent set per tag, equal sequence numbers on every holder, and shm in step, through 3000 seeded requests', async () => {
    const r = prng(0x11c0ffee);
    const { p, m, d } = setup(4, 6);
    const tags = [T1, T2, '33333333-3333-4333-8333-333333333333', ZERO_TAG];
    const unit = () => r.int(8) * U; // the 2 GiB pool in 256 MiB units
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const host = r.int(4);
      (d[host] as StubDelivery).failAdd = r.next() < 0.05;
      const extents: [number, number][] = Array.from({ length: 1 + r.int(3) }, () => [unit(), U]);
      const tag = r.pick(tags);
      const op = r.int(10);
      const req =
        op < 4
          ? m.initiateAdd(shared(host, extents, tag))
          : op < 6
            ? m.initiateAdd(add(host, extents, { tag }))
            : op < 9
              ? m.initiateRelease(byTag(host, tag))
              : m.initiateRelease({
                  ...byTag(host, ZERO_TAG),
                  removalPolicy: RemovalPolicy.Prescriptive,
                  extents: m.extentList({ hostId: host, startIndex: 0, extentCount: 1 }).extents,
                });
      const result = await code(() => req);
      outcomes.set(String(result), (outcomes.get(String(result)) ?? 0) + 1);
      await tick();
      // invariants after every request
      const lists = [0, 1, 2, 3].map((h) => m.extentList({ hostId: h, startIndex: 0, extentCount: 100 }).extents);
      for (const a of m.allocations()) {
        const per = a.holders.map((h) => (lists[h] ?? []).filter((e) => e.tag === a.tag).map((e) => [e.startDpa, e.len, e.sharedSeq]));
        for (const x of per) expect(x).toEqual(per[0]);
        if (a.shared) expect((per[0] ?? []).map((e) => e[2])).toEqual(a.extents.map((_, k) => k));
        expect((per[0] ?? []).map((e) => e[0])).toEqual(a.extents.map((e) => e.offset));
      }
      for (let h = 0; h < 4; h++) {
        const held = (lists[h] ?? []).reduce((n, e) => n + e.len, 0);
        expect(p.state.blocksOf(h).length * 2 * MiB).toBe(held);
      }
    }
    // every kind of answer happened, and nothing but FM-API return codes came out
    const seen = [...outcomes.keys()].sort();
    expect(seen).toEqual(
      ['ok', String(ReturnCode.InternalError), String(ReturnCode.InvalidInput), String(ReturnCode.ResourcesExhausted)].sort(),
    );
  });
});
