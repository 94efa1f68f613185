// Released blocks go back to the pool only on evidence that the releasing
// guest can no longer reach them (docs/security.md): the manager's state
// machine with a delivery stub that says what QEMU would show (quarantine,
// Retry Required, re-checks, guest reset, QEMU exit, a backend restart).
// What QEMU shows is read by qemu/reach.ts (test/qemu/reach.test.ts).
import { describe, expect, it } from 'vitest';
import { type CapacityEvent, CapacityManager } from '../../src/capacity/index.js';
import { type ReleaseRequest, RemovalPolicy, ReturnCode, ZERO_TAG } from '../../src/fmapi/index.js';
import { fsck } from '../../src/pool/index.js';
import { add, code, GiB, MiB, pool, StubDelivery } from '../helpers/capacity.js';

const LD = 256 * MiB;
const release = (hostId: number, offset: number, len = LD): ReleaseRequest => ({
  hostId,
  removalPolicy: RemovalPolicy.Prescriptive,
  forced: false,
  region: 0,
  length: 0,
  tag: ZERO_TAG,
  extents: [{ startDpa: offset, len, tag: ZERO_TAG, sharedSeq: 0 }],
});
const ALIAS = "alias cxl-direct-mapping-alias-0 of cxl-mhd-ldmem-7 in the guest's memory map";

function setup(settle = { answerWithinMs: 200, recheckMs: 10, recheckMaxMs: 20 }) {
  const p = pool();
  const d1 = new StubDelivery();
  const d2 = new StubDelivery();
  const events: CapacityEvent[] = [];
  const m = new CapacityManager(p, { serial: 1n, onEvent: (e) => events.push(e), settle });
  m.registerDelivery(1, d1);
  m.registerDelivery(2, d2);
  return { p, d1, d2, m, events };
}

const until = async (fn: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !fn(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!fn()) throw new Error(`timed out waiting for ${what}`);
};

describe('release quarantine', () => {
  it('reachable after the release: Retry Required, held and announced once; freed when the evidence comes, and a retry then answers Success once', async () => {
    const { p, d1, m, events } = setup({ answerWithinMs: 200, recheckMs: 60_000, recheckMaxMs: 60_000 });
    await m.initiateAdd(add(1, [[GiB, LD]]));
    d1.reach.set(GiB, [ALIAS]);
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe(ReturnCode.RetryRequired);
    expect(m.view(1)).toEqual([expect.objectContaining({ offset: GiB, state: 'quarantined', reason: ALIAS })]);
    expect(p.state.blocksOf(1)).toHaveLength(128); // still the head's
    expect(await code(() => m.initiateAdd(add(2, [[GiB, LD]])))).toBe(ReturnCode.ResourcesExhausted);
    expect(events.filter((e) => e.kind === 'capacity-quarantined')).toEqual([
      { kind: 'capacity-quarantined', head: 1, offset: GiB, len: LD, tag: null, via: 'fm-api', reason: ALIAS },
    ]);
    expect(p.loadImage().image.grantsOf(1)).toEqual([expect.objectContaining({ offset: GiB, releasing: true, quarantined: ALIAS })]);
    expect(fsck(p).pendingReleases).toEqual([{ head: 1, offset: GiB, len: LD, reason: ALIAS }]);
    // The retry asks QEMU again instead of releasing twice; no second event.
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe(ReturnCode.RetryRequired);
    expect(d1.released).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'capacity-quarantined')).toHaveLength(1);
    // QEMU no longer maps it: the next retry frees it and says so.
    d1.reach.delete(GiB);
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe('ok');
    expect(p.state.blocksOf(1)).toEqual([]);
    expect(events.at(-1)).toMatchObject({ kind: 'capacity-released', head: 1, offset: GiB });
    expect(fsck(p).pendingReleases).toEqual([]);
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe(ReturnCode.InvalidInput);
  });

  it('a quarantine ended by a background re-check: the blocks go to another head, and one retry still answers Success', async () => {
    const { p, d1, m, events } = setup();
    await m.initiateAdd(add(1, [[GiB, LD]]));
    d1.reach.set(GiB, [ALIAS]);
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe(ReturnCode.RetryRequired);
    d1.reach.delete(GiB);
    await until(() => p.state.blocksOf(1).length === 0, 'the re-check to free the blocks');
    expect(events.map((e) => e.kind)).toEqual(['capacity-added', 'capacity-quarantined', 'capacity-released']);
    await m.initiateAdd(add(2, [[GiB, LD]]));
    expect(p.state.blocksOf(2)).toHaveLength(128);
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe('ok');
  });

  it('a device that has not left in time: quarantined; freed once it leaves and nothing maps it', async () => {
    const { p, d1, m } = setup();
    d1.holdRemovals = true;
    await m.initiateAdd(add(1, [[GiB, LD]]));
    expect(await code(() => m.initiateRelease(release(1, GiB)))).toBe(ReturnCode.RetryRequired);
    expect(m.view(1)[0]).toMatchObject({
      state: 'quarantined',
      reason: expect.stringMatching(/has not finished removing it after 200 ms/),
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(p.state.blocksOf(1)).toHaveLength(128);
    d1.holdGone?.();
    await until(() => p.state.blocksOf(1).length === 0, 'the freed blocks');
  });

  it('evidence within the answer: Success, and nothing was ever quarantined', async () => {
    const { p, d1, m, events } = setup({ answerWithinMs: 5000, recheckMs: 10, recheckMaxMs: 20 });
    d1.holdRemovals = true;
    await m.initiateAdd(add(1, [[GiB, LD]]));
    const answer = m.initiateRelease(release(1, GiB));
    await until(() => d1.holdGone !== null, 'device_del');
    expect(m.view(1)[0]?.state).toBe('releasing');
    d1.holdGone?.();
    await answer;
    expect(p.state.blocksOf(1)).toEqual([]);
    expect(events.some((e) => e.kind === 'capacity-quarantined')).toBe(false);
  });

  it('QEMU exit frees quarantined blocks; a guest reset frees them only when QEMU then shows no way in', async () => {
    const { p, d1, m, events } = setup({ answerWithinMs: 50, recheckMs: 60_000, recheckMaxMs: 60_000 });
    await m.initiateAdd(add(1, [[GiB, LD]]));
    await m.initiateAdd(add(1, [[GiB + LD, LD]]));
    d1.reach.set(GiB, [ALIAS]).set(GiB + LD, [ALIAS]);
    await code(() => m.initiateRelease(release(1, GiB)));
    await code(() => m.initiateRelease(release(1, GiB + LD)));
    await m.onReset(1);
    expect(m.view(1).map((g) => g.state)).toEqual(['quarantined', 'quarantined']);
    d1.reach.delete(GiB);
    await m.onReset(1);
    expect(m.view(1)).toEqual([expect.objectContaining({ offset: GiB + LD, state: 'quarantined' })]);
    // The exit itself releases every block in shm (the daemon's detach); the manager forgets and announces.
    p.releaseAll(1);
    m.forgetHead(1);
    expect(events.at(-1)).toMatchObject({ kind: 'capacity-released', offset: GiB + LD, via: 'qemu-exit' });
    expect(p.state.blocksOf(1)).toEqual([]);
  });

  it('a restarted backend keeps the quarantine: the journal says releasing, QEMU is asked again', async () => {
    const { p, d1, m } = setup({ answerWithinMs: 50, recheckMs: 60_000, recheckMaxMs: 60_000 });
    await m.initiateAdd(add(1, [[GiB, LD]]));
    d1.reach.set(GiB, [ALIAS]);
    await code(() => m.initiateRelease(release(1, GiB)));
    // A new manager over the same pool: what recovery hands it from the journal.
    const events: CapacityEvent[] = [];
    const again = new CapacityManager(p, {
      serial: 1n,
      onEvent: (e) => events.push(e),
      settle: { answerWithinMs: 50, recheckMs: 60_000, recheckMaxMs: 60_000 },
    });
    again.registerDelivery(1, d1);
    const g = p.loadImage().image.grantsOf(1)[0];
    expect(g).toMatchObject({ releasing: true, quarantined: ALIAS });
    again.adopt(1, [{ offset: GiB, len: LD, tag: ZERO_TAG, shared: false, delivered: { offset: GiB, len: LD }, releasing: true }]);
    await again.resumeReleases(1);
    expect(again.view(1)).toEqual([expect.objectContaining({ state: 'quarantined', reason: ALIAS })]);
    expect(p.state.blocksOf(1)).toHaveLength(128);
    d1.reach.delete(GiB);
    await again.onReset(1);
    expect(p.state.blocksOf(1)).toEqual([]);
    expect(events.map((e) => e.kind)).toEqual(['capacity-added', 'capacity-quarantined', 'capacity-released']);
  });
});
