// What every route handler shares: the backend's view, the northbound's
// store, auth, the event hub with its subscriptions, the FM-API link, and
// one fresh PoolModel per request.
import type { Accounts } from './accounts.js';
import type { Auth } from './auth.js';
import type { EventHub } from './events.js';
import type { FmLink } from './fmlink.js';
import { PoolModel } from './model.js';
import type { Notifier } from './notifier.js';
import type { Store } from './store.js';
import type { NorthboundDeps } from './types.js';

export class Context {
  readonly pool: string;
  readonly serial: string;
  /** Connections being made right now: not yet visible, not stale either. */
  readonly pending = new Set<string>();

  /** The accounts service over auth's users; the server sets it right after construction. */
  accounts!: Accounts;

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
  }

  /** ServiceRoot's UUID: the same across restarts, so an aggregator knows the service again. */
  get uuid(): string {
    return this.events.subs.identity.service;
  }

  model(): PoolModel {
    const m = new PoolModel(this.deps.snapshot(), this.store);
    for (const id of m.staleConnections(this.store)) if (!this.pending.has(id)) this.store.removeConnection(id);
    return m;
  }
}
