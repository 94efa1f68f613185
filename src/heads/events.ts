// The backend's event bus: every change a northbound client (Redfish, a
// dashboard) needs to follow, emitted synchronously right after the change
// is journaled, whichever path made it (an FM-API port, a QEMU exit, a guest
// reset, attach/refuse, recovery). Stamped with a per-run sequence number
// and the time; a listener that throws is reported, never the backend's problem.
import type { CapacityEvent } from '../capacity/index.js';

export type BackendEvent =
  | { kind: 'head-attached'; head: number; pid: number; fmld: boolean; delivery: 'hotplug' | 'dcd' | null }
  | { kind: 'head-detached'; head: number; pid: number | null; reason: string }
  | { kind: 'head-refused'; head: number; pid: number | null; reason: string }
  | { kind: 'lease-acquired'; head: number; epoch: number }
  | { kind: 'lease-released'; head: number; epoch: number }
  | CapacityEvent;

/** An event as listeners see it: `seq` is monotonic per backend run, `at` an ISO time. */
export type StampedEvent = BackendEvent & { seq: number; at: string };

export type BackendListener = (e: StampedEvent) => void;

/** How many past events `recent()` keeps (for clients that attach late, e.g. an event log page). */
const HISTORY = 256;

export class EventBus {
  private seq = 0;
  private readonly listeners = new Set<BackendListener>();
  private readonly history: StampedEvent[] = [];

  constructor(private readonly onListenerError: (e: unknown) => void = () => {}) {}

  /** Returns the function that unsubscribes. */
  subscribe(listener: BackendListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(event: BackendEvent): StampedEvent {
    const stamped: StampedEvent = { ...event, seq: ++this.seq, at: new Date().toISOString() };
    this.history.push(stamped);
    if (this.history.length > HISTORY) this.history.shift();
    for (const l of [...this.listeners]) {
      try {
        l(stamped);
      } catch (e) {
        // A listener's bug must not undo or stall a change that is already journaled, nor starve the other listeners.
        this.onListenerError(e);
      }
    }
    return stamped;
  }

  /** The last events (up to 256), oldest first. */
  recent(): StampedEvent[] {
    return [...this.history];
  }
}
