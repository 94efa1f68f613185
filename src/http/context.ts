// What every route handler shares: the backend's view, the northbound's
// store, auth, the event hub with its subscriptions, the FM-API link, the
// telemetry, and one fresh PoolModel per request.
import type { Accounts } from './accounts.js';
import type { Auth } from './auth.js';
import type { TlsIdentity } from './certificate.js';
import type { EventHub } from './events.js';
import type { FmLink } from './fmlink.js';
import { PoolModel } from './model.js';
import type { Notifier } from './notifier.js';
import type { Store } from './store.js';
import type { Telemetry } from './telemetry.js';
import type { NorthboundDeps } from './types.js';

const MODEL_MAX_AGE_MS = 100;

export class Context {
  readonly pool: string;
  readonly serial: string;
  /** Connections being made right now: not yet visible, not stale either. */
  readonly pending = new Set<string>();

  /** The accounts service over auth's users; the server sets it right after construction. */
  accounts!: Accounts;
  /** The HTTPS certificate and key; null when the service speaks plain HTTP. Set by the server. */
  tls: TlsIdentity | null = null;
  /** The port the service listens on, once it does (in-process tests never listen). */
  port: number | null = null;
  /** The TelemetryService's metrics and reports; set with accounts. */
  telemetry!: Telemetry;

  constructor(
    readonly deps: NorthboundDeps,
    readonly store: Store,
    readonly auth: Auth,
    readonly hub: EventHub,
    readonly fm: FmLink,
    readonly events: Notifier,
  ) {
    this.pool = deps.pool;
    this.serial = deps.serial ?? deps.pool;
    store.onChange = () => this.invalidate();
  }

  /** ServiceRoot's UUID: the same across restarts, so an aggregator knows the service again. */
  get uuid(): string {
    return this.events.subs.identity.service;
  }

  /**
   * The pool in Redfish terms. Built from the backend's snapshot at most
   * once per change: every change to the pool comes with a backend event
   * and every change of the store calls onChange, both of which drop it
   * (`invalidate`); MODEL_MAX_AGE_MS bounds what a change without an event
   * (a 5606h reference, a QEMU pid) could leave unseen. Under a GET load it
   * is built a few times a second instead of once per request.
   */
  model(): PoolModel {
    const now = performance.now();
    let m = this.cached;
    if (!m || now - this.cachedAt > MODEL_MAX_AGE_MS) {
      m = new PoolModel(this.deps.snapshot(), this.store);
      this.cached = m;
      this.cachedAt = now;
    }
    const stale = m.staleConnections(this.store).filter((id) => !this.pending.has(id));
    for (const id of stale) this.store.removeConnection(id);
    return stale.length > 0 ? this.model() : m;
  }

  /** The pool or the store changed: the next model() is built afresh. */
  invalidate(): void {
    this.cached = null;
  }

  private cached: PoolModel | null = null;
  private cachedAt = 0;
}
