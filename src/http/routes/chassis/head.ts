// A head number in a URI segment.
import type { PoolModel } from '../../model.js';

/** The head a URI segment names, or null when the pool has no such head. */
export function headParam(m: PoolModel, text: string): number | null {
  if (!/^\d{1,3}$/.test(text)) return null;
  const head = Number(text);
  return head < m.snap.status.headCount ? head : null;
}
