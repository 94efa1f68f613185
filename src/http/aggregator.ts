// The agent's side of being aggregated by a fabric manager above this one
// (the OFA Sunfish contract, learnt from its event handlers): announce this
// service to the aggregator's /EventListener with ResourceEvent
// AggregationSourceDiscovered (MessageArgs: "Redfish" and this service's URL
// carrying the ReadOnly account the aggregator reads with; OriginOfCondition
// the ConnectionMethod served here), let the aggregator PATCH the Context of
// the subscription `SunfishServer` that points back at it, and then push
// ResourceCreated for the trees it should mirror, carrying that Context.
// The subscription persists, so after a backend restart the agent does not
// announce again: it pushes the trees afresh, and the mirror catches up with
// whatever changed while it was down.
import { postJson } from './delivery.js';
import { eventPayload } from './events.js';
import type { Notifier } from './notifier.js';
import { CONNECTION_METHOD } from './paths.js';
import { aggregationSourceDiscovered, resourceRecord } from './registries.js';
import { NO_FILTERS } from './subscriptions.js';

export const AGGREGATOR_SUBSCRIPTION = 'SunfishServer';

export interface AnnouncerOptions {
  /** The aggregator's base URL; events go to `<it>/EventListener`. */
  aggregator: string;
  /** This service's own base URL (http://host:port). */
  agentUrl: string;
  /** The ReadOnly account the aggregator reads with. */
  user: string;
  password: string;
  /** Resources whose trees the aggregator mirrors. */
  roots: string[];
  log: (msg: string) => void;
  /** First pause between announcement attempts; doubles up to 30 s. */
  retryMs?: number;
}

/** The aggregator's EventListener for a base URL given on the command line. */
export function listenerUrl(aggregator: string): string {
  return `${aggregator.replace(/\/+$/, '')}/EventListener`;
}

/** This service's URL with the aggregator's account in it (an aggregator's HTTP client reads Basic credentials from there). */
export function announcedUrl(agentUrl: string, user: string, password: string): string {
  const u = new URL(agentUrl);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.href.replace(/\/$/, '');
}

export class Announcer {
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly offContext: () => void;
  /** Announcements sent and answered, for status and tests. */
  announced = 0;

  constructor(
    private readonly events: Notifier,
    private readonly o: AnnouncerOptions,
  ) {
    this.offContext = events.onContext((s) => {
      if (s.id !== AGGREGATOR_SUBSCRIPTION || s.context === '') return;
      this.events.unhold(s.id);
      this.pushTrees();
    });
  }

  start(): void {
    const dest = listenerUrl(this.o.aggregator);
    const subs = this.events.subs;
    const old = subs.get(AGGREGATOR_SUBSCRIPTION);
    if (old && (old.destination !== dest || old.owner !== this.o.user)) this.events.remove(old.id);
    const sub = subs.get(AGGREGATOR_SUBSCRIPTION);
    if (!sub) {
      subs.add({
        id: AGGREGATOR_SUBSCRIPTION,
        destination: dest,
        context: '',
        ...NO_FILTERS,
        // What an aggregator acts on: resources created, changed and removed.
        registryPrefixes: ['ResourceEvent'],
        retryPolicy: 'SuspendRetries',
        owner: this.o.user,
      });
    } else if (sub.state === 'Disabled') {
      this.events.setState(sub.id, 'Enabled');
    }
    if (subs.get(AGGREGATOR_SUBSCRIPTION)?.context) this.pushTrees();
    else {
      // Changes before the aggregator's Context are covered by the crawl that ResourceCreated starts.
      this.events.hold(AGGREGATOR_SUBSCRIPTION);
      void this.announce(this.o.retryMs ?? 1000);
    }
  }

  /** ResourceCreated for every root: the aggregator crawls each tree. */
  pushTrees(): void {
    this.events.sendTo(
      AGGREGATOR_SUBSCRIPTION,
      this.o.roots.map((r) => resourceRecord('ResourceCreated', r)),
    );
  }

  private async announce(pauseMs: number): Promise<void> {
    if (this.closed || this.events.subs.get(AGGREGATOR_SUBSCRIPTION)?.context) return;
    const body = JSON.stringify(
      eventPayload(
        {
          id: 0,
          at: new Date().toISOString(),
          records: [aggregationSourceDiscovered(announcedUrl(this.o.agentUrl, this.o.user, this.o.password), CONNECTION_METHOD)],
        },
        '',
      ),
    );
    try {
      // The aggregator may crawl this service before it answers: a generous timeout.
      await postJson(listenerUrl(this.o.aggregator), body, { timeoutMs: 60_000 });
      this.announced++;
      return;
    } catch (e) {
      this.o.log(`aggregator ${this.o.aggregator}: announcement failed (${(e as Error).message}); trying again in ${pauseMs} ms`);
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.announce(Math.min(30_000, pauseMs * 2)), pauseMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    this.offContext();
    if (this.timer) clearTimeout(this.timer);
  }
}
