// Which extents an Initiate DC Add names: a prescriptive (or enable-shared)
// list checked against region 0, the head's delivery granularity and itself,
// or the free/contiguous policies' first fit over the bitmap. Pure reads of
// the pool state; the manager claims what this returns.
import { type AddRequest, FmError, ReturnCode, SelectionPolicy } from '../fmapi/index.js';
import type { PoolState } from '../pool/index.js';
import type { Delivery, Piece } from './delivery.js';

/** `unit`: the add's granularity, the head's delivery unit or the region's (5602h) block if larger. */
export function prescribedPieces(req: AddRequest, d: Delivery, state: PoolState, unit = d.unit): Piece[] {
  if (req.extents.length === 0) throw new FmError(ReturnCode.InvalidInput, 'a prescriptive add needs at least one extent');
  const cap = state.header.capacityBytes;
  const pieces = req.extents.map((e) => ({ offset: e.startDpa - d.regionBase, len: e.len }));
  let total = 0;
  for (const p of pieces) {
    const at = `extent ${p.len}@DPA ${p.offset + d.regionBase}`;
    if (p.offset < 0 || p.offset + p.len > cap)
      throw new FmError(ReturnCode.InvalidInput, `${at} is outside region 0 (DPA ${d.regionBase}..${d.regionBase + cap})`);
    if (p.len <= 0 || p.offset % unit !== 0 || p.len % unit !== 0) {
      throw new FmError(
        ReturnCode.InvalidInput,
        `${at} is not aligned to ${unit === d.unit ? `this head's ${unit}-byte ${d.kind} granularity` : `the region's ${unit}-byte blocks`}`,
      );
    }
    total += p.len;
  }
  const sorted = [...pieces].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1] as Piece;
    if ((sorted[i] as Piece).offset < prev.offset + prev.len) throw new FmError(ReturnCode.InvalidInput, 'the extent list overlaps itself');
  }
  if (req.length !== 0 && req.length !== total) {
    throw new FmError(ReturnCode.InvalidInput, `length ${req.length} differs from the extents' total ${total}`);
  }
  return pieces;
}

/** Free and contiguous policies: first fit over unit-aligned free runs of the bitmap. */
export function firstFit(length: number, d: Delivery, policy: SelectionPolicy, state: PoolState, unit = d.unit): Piece[] {
  if (length <= 0 || length % unit !== 0)
    throw new FmError(ReturnCode.InvalidInput, `length ${length} must be a positive multiple of ${unit}`);
  const s = state;
  const per = unit / s.header.blockBytes;
  const units = Math.floor(s.header.capacityBytes / unit);
  const free = (u: number) => {
    for (let b = u * per; b < (u + 1) * per; b++) {
      const info = s.block(b);
      if (info.holders.length > 0 || info.referenced) return false;
    }
    return true;
  };
  const want = length / unit;
  const pieces: Piece[] = [];
  let got = 0;
  for (let u = 0; u < units && got < want; ) {
    if (!free(u)) {
      u++;
      continue;
    }
    let end = u;
    while (end < units && end - u < want - got && free(end)) end++;
    if (policy === SelectionPolicy.Contiguous && end - u < want) {
      u = end + 1;
      continue;
    }
    pieces.push({ offset: u * unit, len: (end - u) * unit });
    got += end - u;
    u = end;
  }
  if (got < want)
    throw new FmError(
      ReturnCode.ResourcesExhausted,
      `the pool has no ${policy === SelectionPolicy.Contiguous ? 'contiguous ' : ''}${length} bytes free`,
    );
  return pieces;
}
