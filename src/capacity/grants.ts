// What the capacity manager tells the rest about grants: a grant and its
// view, the events it reports, and the names of paths that change capacity.
import { ZERO_TAG } from '../pool/lite.js';
import type { Delivered } from './delivery.js';

export interface Grant {
  head: number;
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  delivered: Delivered;
  /**
   * 'releasing' from the moment QEMU accepted the release; 'quarantined' once
   * the answer went out without evidence that the guest cannot reach the
   * blocks; either way held until that evidence (release.ts).
   */
  state: 'active' | 'releasing' | 'quarantined';
  /** Why a quarantined grant is still reachable, as QEMU showed it. */
  reason?: string;
  /** The path that asked for the release under way, named in its event. */
  releaseVia?: string;
}

/**
 * What the manager reports once a change is journaled (heads/events puts
 * them on the backend's bus). `via` names the path that caused it.
 */
export type CapacityEvent =
  | { kind: 'capacity-added'; head: number; offset: number; len: number; shared: boolean; tag: string | null; via: string }
  | { kind: 'capacity-released'; head: number; offset: number; len: number; tag: string | null; via: string }
  /** Released by the FM, but QEMU shows no evidence yet that the guest lost it: still held by the head. */
  | { kind: 'capacity-quarantined'; head: number; offset: number; len: number; tag: string | null; via: string; reason: string };

/** The `via` of changes made outside any FM-API path. */
export const VIA = { qemuExit: 'qemu-exit', guestReset: 'guest-reset', recovery: 'recovery', fmApi: 'fm-api' } as const;

export interface GrantView {
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  state: Grant['state'];
  reason?: string;
  delivery: string;
  device?: string;
  /** The shared extent sequence number, as 5603h reports it (0 for an extent that is not shared). */
  seq: number;
}

/** A tag as events carry it: null for the zero tag (untagged). */
export const tagOrNull = (tag: string): string | null => (tag === ZERO_TAG ? null : tag);
