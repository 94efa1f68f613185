// The block word's rules, as pure functions of its value: which heads hold
// a block, what a claim, a release or a dropped reference makes of the word,
// and how a refused claim is explained. No atomics here: PoolState (state.ts)
// runs these inside its compare-and-swap loops on the shared image.
import { MASK_BITS, REF_FLAG, SHARED_FLAG } from './layout.js';

export const bitOf = (head: number): bigint => 1n << BigInt(head);

export function maskHolders(mask: bigint | number): number[] {
  const out: number[] = [];
  let m = BigInt(mask);
  for (let h = 0; m !== 0n; h++, m >>= 1n) if (m & 1n) out.push(h);
  return out;
}

/** The word once `head` joins it, or null if its claim conflicts. */
export function claimedWord(word: bigint, head: number, shared: boolean): bigint | null {
  const bit = bitOf(head);
  const mask = word & MASK_BITS;
  if (mask === 0n && (word & REF_FLAG) === 0n) return shared ? bit | SHARED_FLAG : bit;
  // A referenced block with no holder is rejoined as it was allocated: shared or exclusive.
  if (mask === 0n && shared === ((word & SHARED_FLAG) !== 0n)) return word | bit;
  if (shared && (word & SHARED_FLAG) !== 0n && (mask & bit) === 0n) return word | bit;
  return null;
}

/** The word once `head` leaves it: 0 when no holder and no reference is left. */
export function clearedWord(word: bigint, head: number): bigint {
  const bit = bitOf(head);
  const rest = word & MASK_BITS & ~bit;
  return rest === 0n && (word & REF_FLAG) === 0n ? 0n : word & ~bit;
}

/** The word once its reference mark goes: free if no head holds it. */
export function unreferencedWord(word: bigint): bigint {
  return (word & MASK_BITS) === 0n ? 0n : word & ~REF_FLAG;
}

/** Why `head`'s claim of `block` (whose word is `word`) was refused. */
export function conflictMessage(head: number, block: number, word: bigint, shared: boolean, blockBytes: number): string {
  const holders = maskHolders(word & MASK_BITS);
  const at = `block ${block} (pool offset ${block * blockBytes})`;
  if (holders.length === 0)
    return `${at} is kept by a tag reference as ${(word & SHARED_FLAG) !== 0n ? 'shared' : 'exclusive'}; ${shared ? 'a shared' : 'an exclusive'} claim for head ${head} conflicts`;
  if (holders.includes(head)) return `head ${head} already holds ${at}`;
  const kind = (word & SHARED_FLAG) !== 0n ? 'shared' : 'exclusively';
  return `${at} is held ${kind} by head${holders.length > 1 ? 's' : ''} ${holders.join(', ')}; ${shared ? 'a shared' : 'an exclusive'} claim for head ${head} conflicts`;
}
