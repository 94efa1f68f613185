// The tagged allocations a status shows, read from what each head holds:
// the same rule as the registry (allocations.ts), kept apart from it so the
// command line's `status` loads this and not the FM-API.
import { ZERO_TAG } from '../pool/lite.js';
import type { Piece } from './delivery.js';

export interface AllocationView {
  tag: string;
  shared: boolean;
  /** In sequence-number order: extent i has shared sequence number i. */
  extents: Piece[];
  holders: number[];
}

/**
 * Allocations by tag from what each head holds (status reads the backend's
 * head records): the same rule the registry uses, extents in pool order.
 */
export function allocationsOf(
  heads: { id: number; grants?: { offset: number; len: number; tag: string; shared: boolean }[] }[],
): AllocationView[] {
  const out = new Map<string, AllocationView>();
  for (const h of heads) {
    for (const g of h.grants ?? []) {
      if (g.tag === ZERO_TAG) continue;
      const a = out.get(g.tag) ?? { tag: g.tag, shared: g.shared, extents: [], holders: [] };
      if (!a.extents.some((e) => e.offset === g.offset)) a.extents.push({ offset: g.offset, len: g.len });
      if (!a.holders.includes(h.id)) a.holders.push(h.id);
      out.set(g.tag, a);
    }
  }
  for (const a of out.values()) a.extents.sort((x, y) => x.offset - y.offset);
  return [...out.values()];
}
