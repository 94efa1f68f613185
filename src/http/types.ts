// The northbound's view of the backend: the event and snapshot shapes of
// the cross-helper contract (CONTRACT.md), declared structurally here so
// src/http depends on no other folder's internals.

export type BackendEvent =
  | { kind: 'head-attached'; head: number; pid: number; fmld: boolean; delivery: 'hotplug' | 'dcd' | null }
  | { kind: 'head-detached'; head: number; pid: number | null; reason: string }
  | { kind: 'head-refused'; head: number; pid: number | null; reason: string }
  | { kind: 'lease-acquired'; head: number; epoch: number }
  | { kind: 'lease-released'; head: number; epoch: number }
  | { kind: 'capacity-added'; head: number; offset: number; len: number; shared: boolean; tag: string | null; via: string }
  | { kind: 'capacity-released'; head: number; offset: number; len: number; tag: string | null; via: string };

export type StampedEvent = BackendEvent & { seq: number; at: string };

/** What `status --json` shows for one head, as far as the northbound reads it. */
export interface HeadStatusView {
  id: number;
  attached: boolean;
  pid: number | null;
  grantedBytes: number;
  sharedBytes: number;
  attachedAt?: string | null;
}

export interface PoolStatusView {
  pool: string;
  capacityBytes: number;
  blockBytes: number;
  blockCount: number;
  headCount: number;
  fmldOwner: number | null;
  leaseEpoch: number;
  freeBytes: number;
  heads: HeadStatusView[];
}

export interface GrantRecordView {
  offset: number;
  len: number;
  tag: string;
  shared: boolean;
  state: string;
  delivery: string;
  device?: string;
}

export interface HeadRecordView {
  head: number;
  phase: string;
  pid: number | null;
  reason: string | null;
  since: string;
  windows: { offset: number; size: number; exclusive: boolean }[];
  fmld: boolean;
  delivery: string | null;
  grants: GrantRecordView[];
}

export interface SnapshotView {
  status: PoolStatusView;
  heads: HeadRecordView[];
}

/** Everything the northbound needs from the running backend. */
export interface NorthboundDeps {
  pool: string;
  /** The pool's serial (the device's), shown on the Chassis. */
  serial?: string;
  snapshot(): SnapshotView;
  subscribe(listener: (e: StampedEvent) => void): () => void;
  fmSocketPath: string;
}
