// The northbound's view of the backend (docs/redfish.md), whose types the
// backend (src/heads) owns. Type-only: src/http needs nothing of
// src/heads at run time, and tests hand it any object of this shape.
import type { Duplex } from 'node:stream';
import type { BackendEvent, BackendSnapshot, StampedEvent } from '../heads/index.js';

export type { BackendEvent, StampedEvent };

/** What `status --json` shows: the pool status and the backend's head records. */
export type SnapshotView = BackendSnapshot;

/** Everything the northbound needs from the running backend. */
export interface NorthboundDeps {
  pool: string;
  /** The device's serial, shown on the Chassis. */
  serial?: string;
  snapshot(): SnapshotView;
  subscribe(listener: (e: StampedEvent) => void): () => void;
  /** An FM-API channel to the backend's FmApiServer (the daemon's `fmChannel`). */
  fmChannel(): Duplex;
}
