// The bodies of the two FM-API mutations, run one at a time by the
// CapacityManager: Initiate Dynamic Capacity Add (validate, pick or check
// the extents, stage the claims, deliver, journal once) and the start of
// Initiate Dynamic Capacity Release (find the named extents, ask QEMU to
// drop them, journal once, mark them releasing). How a release ends (the
// evidence, the quarantine) is release.ts's; the grant book they change is
// the manager's, reached through a Ledger.
import { type AddRequest, FmError, type ReleaseRequest, RemovalPolicy, ReturnCode, SelectionPolicy } from '../fmapi/index.js';
import { type Pool, PoolError } from '../pool/index.js';
import type { TagRegistry } from './allocations.js';
import type { Delivered, Delivery, Departure, Piece } from './delivery.js';
import { firstFit, prescribedPieces } from './extents.js';
import { type CapacityEvent, type Grant, tagOrNull } from './grants.js';

/** What of the manager the mutations read and change. */
export interface Ledger {
  readonly pool: Pool;
  /** Each head's grants, ascending by offset. */
  readonly grants: Map<number, Grant[]>;
  /** Per head, extents (`offset:len`) and tags (`tag:<uuid>`) whose release ended after it answered Retry Required. */
  readonly ended: Map<number, Set<string>>;
  readonly tags: TagRegistry;
  /** The region's block size as 5602h set it: no piece is smaller. */
  regionBlockSize(): number;
  /** The head's delivery; Invalid Input if the host does not exist or is not attached. */
  delivery(host: number): Delivery;
  /** The head's grants changed (generation, record). */
  changed(head: number): void;
  emit(e: CapacityEvent): void;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** A release QEMU accepted: `gone` settles when QEMU says the device left (with its evidence, when read). */
export interface StartedRelease {
  g: Grant;
  gone: Departure;
}

const noRegion = (region: number) =>
  new FmError(ReturnCode.InvalidInput, `region ${region} does not exist: each head has DC region 0 only`);

export async function addCapacity(m: Ledger, req: AddRequest, via: string): Promise<void> {
  const d = m.delivery(req.hostId);
  if (req.region !== 0) throw noRegion(req.region);
  const { pool } = m;
  const shared = req.selectionPolicy === SelectionPolicy.EnableSharedAccess;
  const unit = Math.max(d.unit, m.regionBlockSize());
  const pieces =
    req.selectionPolicy === SelectionPolicy.Prescriptive || shared
      ? prescribedPieces(req, d, pool.state, unit)
      : firstFit(req.length, d, req.selectionPolicy, pool.state, unit);
  const labels = m.tags.admit(req.hostId, req.tag, shared, pieces);
  if (pieces.length > d.capacityForPieces()) {
    throw new FmError(
      ReturnCode.ResourcesExhausted,
      `head ${req.hostId} can take ${d.capacityForPieces()} more extent(s) by ${d.kind}, not ${pieces.length}`,
    );
  }
  // One durable write per add (docs/reliability.md): claims are staged in shm,
  // QEMU gets the capacity, then one journal line says it all before Success.
  // A backend killed before that line is undone by recovery (shm back to the
  // journal, an orphan device removed on re-adoption).
  const claimed: Piece[] = [];
  const unstage = () => {
    for (const p of claimed) pool.unstage(req.hostId, pool.state.bytesToBlocks(p.offset, p.len));
  };
  try {
    for (const p of pieces) {
      pool.stage(req.hostId, pool.state.bytesToBlocks(p.offset, p.len), { shared });
      claimed.push(p);
    }
  } catch (e) {
    unstage();
    if (e instanceof PoolError && e.code === 'CONFLICT') throw new FmError(ReturnCode.ResourcesExhausted, e.message);
    throw e;
  }
  let delivered: Delivered[];
  try {
    delivered = await d.add(pieces.map((p, i) => ({ ...p, label: labels[i] })));
  } catch (e) {
    unstage();
    throw new FmError(ReturnCode.InternalError, `QEMU refused the ${d.kind} delivery to head ${req.hostId}: ${(e as Error).message}`);
  }
  pool.recordAdd({
    head: req.hostId,
    pieces: delivered.map((dv) => ({
      ...pool.state.bytesToBlocks(dv.offset, dv.len),
      ...(dv.deviceId ? { device: dv.deviceId } : {}),
    })),
    shared,
    tag: req.tag,
    delivery: d.kind,
  });
  const list = m.grants.get(req.hostId) ?? [];
  for (const dv of delivered)
    list.push({ head: req.hostId, offset: dv.offset, len: dv.len, tag: req.tag, shared, delivered: dv, state: 'active' });
  list.sort((a, b) => a.offset - b.offset);
  m.grants.set(req.hostId, list);
  m.tags.record(req.tag, shared, pieces);
  // Blocks given again start a new story: a later 5605h of them is no retry of an old one.
  const ended = m.ended.get(req.hostId);
  for (const dv of delivered) ended?.delete(`${dv.offset}:${dv.len}`);
  ended?.delete(`tag:${req.tag}`);
  m.changed(req.hostId);
  for (const dv of delivered) {
    m.emit({ kind: 'capacity-added', head: req.hostId, offset: dv.offset, len: dv.len, shared, tag: tagOrNull(req.tag), via });
  }
  m.log?.(`head ${req.hostId}: added ${pieces.map((p) => `${p.len}@${p.offset}`).join(', ')} by ${d.kind}`, { head: req.hostId });
}

/**
 * Starts a release: `started` are the grants QEMU accepted to drop (now
 * releasing), `retried` those already on their way out, which the caller
 * only asks again whether they have left.
 */
export async function startRelease(m: Ledger, req: ReleaseRequest, via: string): Promise<{ started: StartedRelease[]; retried: Grant[] }> {
  const d = m.delivery(req.hostId);
  if (req.region !== 0) throw noRegion(req.region);
  if (req.forced) throw new FmError(ReturnCode.InvalidInput, 'forced removal is not supported (QEMU 10.0 cannot force-release)');
  const held = m.grants.get(req.hostId) ?? [];
  const active = held.filter((g) => g.state === 'active');
  const ended = m.ended.get(req.hostId) ?? new Set<string>();
  let named: Grant[];
  if (req.removalPolicy === RemovalPolicy.TagBased) {
    named = held.filter((g) => g.tag === req.tag);
    if (named.length === 0 && ended.delete(`tag:${req.tag}`)) return { started: [], retried: [] };
    if (named.length === 0) throw new FmError(ReturnCode.InvalidInput, `head ${req.hostId} holds no extent tagged ${req.tag}`);
  } else {
    if (req.extents.length === 0) throw new FmError(ReturnCode.InvalidInput, 'a prescriptive release needs at least one extent');
    named = [];
    for (const e of req.extents) {
      const g = held.find((x) => x.offset + d.regionBase === e.startDpa && x.len === e.len);
      // A retry of a release that answered Retry Required and has ended since.
      if (!g && ended.has(`${e.startDpa - d.regionBase}:${e.len}`)) continue;
      if (!g)
        throw new FmError(
          ReturnCode.InvalidInput,
          `head ${req.hostId} holds no extent ${e.len}@DPA ${e.startDpa} (release whole extents as listed by 5603h)`,
        );
      named.push(g);
    }
    for (const e of req.extents) ended.delete(`${e.startDpa - d.regionBase}:${e.len}`);
  }
  // Extents already on their way out are not released twice: the caller asks whether they have left.
  const retried = named.filter((g) => g.state !== 'active');
  const targets = named.filter((g) => g.state === 'active');
  if (req.removalPolicy !== RemovalPolicy.TagBased) m.tags.checkWhole(req.hostId, targets, active);
  // One durable write per release, before the answer: what QEMU accepted is
  // marked releasing; the blocks are freed (journaled) only once QEMU shows
  // the guest cannot reach them (initiateRelease waits for that, bounded).
  const accepted: StartedRelease[] = [];
  try {
    for (const g of targets) {
      try {
        accepted.push({ g, ...(await d.release(g.delivered)) });
      } catch (e) {
        throw new FmError(ReturnCode.Busy, `QEMU refused to release ${g.len}@${g.offset} from head ${req.hostId}: ${(e as Error).message}`);
      }
    }
  } finally {
    if (accepted.length > 0) {
      m.pool.recordRelease({ head: req.hostId, pieces: accepted.map(({ g }) => m.pool.state.bytesToBlocks(g.offset, g.len)) });
    }
    for (const { g } of accepted) {
      g.state = 'releasing';
      g.releaseVia = via;
    }
    if (accepted.length > 0) m.changed(req.hostId);
  }
  return { started: accepted, retried };
}
