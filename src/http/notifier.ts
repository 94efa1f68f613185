// The EventService's engine: every event the hub publishes goes, filtered
// per subscription and with that subscription's Context, to the delivery
// lanes of the push subscriptions (Events to those of EventFormatType
// Event, metric reports to those of MetricReport); SSE streams are
// EventDestinations of their own for as long as they are open, and deleting
// one ends its stream.
// A subscription whose retries ran out is suspended (Status.State Disabled)
// or deleted, as its DeliveryRetryPolicy says.
import type { ServerResponse } from 'node:http';
import { Delivery, type LaneStats } from './delivery.js';
import { type EventHub, eventPayload, type RedfishEvent } from './events.js';
import { matches, type Subscription, SubscriptionStore, wantsReport } from './subscriptions.js';

export interface NotifierOptions {
  /** Where push subscriptions persist (0600); null keeps them in memory. */
  stateFile: string | null;
  /** Per-POST answer timeout. */
  timeoutMs?: number;
  log?: (msg: string) => void;
}

export class Notifier {
  readonly subs: SubscriptionStore;
  readonly delivery: Delivery;
  private readonly streams = new Map<string, () => void>();
  private readonly untap: () => void;
  private readonly log: (msg: string) => void;
  /** Context changes of push subscriptions, for the aggregator announcer. */
  private readonly contextListeners = new Set<(s: Subscription) => void>();

  constructor(
    private readonly hub: EventHub,
    opts: NotifierOptions,
  ) {
    this.log = opts.log ?? (() => {});
    this.subs = new SubscriptionStore(opts.stateFile);
    this.delivery = new Delivery({
      settings: () => this.subs.settings,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      onGiveUp: (sub, why) => this.giveUp(sub, why),
    });
    this.untap = hub.tap((e) => this.fanOut(e));
  }

  /**
   * Subscriptions that get nothing from the hub for now: an aggregator's,
   * until it has given its Context (without one it cannot tell whose events
   * they are, and answers them with errors that would hold up the queue).
   */
  private readonly held = new Set<string>();

  hold(id: string): void {
    this.held.add(id);
  }

  unhold(id: string): void {
    this.held.delete(id);
  }

  /**
   * Sends one published event to every enabled push subscription whose
   * filters let any of its records through; a metric report goes to those
   * whose EventFormatType is MetricReport, with their Context.
   */
  private fanOut(e: RedfishEvent): void {
    for (const s of this.subs.list()) {
      if (s.kind !== 'RedfishEvent' || s.state !== 'Enabled' || this.held.has(s.id)) continue;
      if (e.report) {
        const definition = (e.report.MetricReportDefinition as { '@odata.id'?: string } | undefined)?.['@odata.id'];
        if (s.format === 'MetricReport' && wantsReport(s, definition)) {
          this.delivery.enqueue(s, JSON.stringify({ ...e.report, Context: s.context }));
        }
        continue;
      }
      if (s.format === 'MetricReport') continue;
      const only = e.records.flatMap((r, i) => (matches(s, r) ? [i] : []));
      if (only.length > 0) this.delivery.enqueue(s, JSON.stringify(eventPayload(e, s.context, only)));
    }
  }

  /** One Event straight to one subscription, outside the hub (the aggregator's own records). */
  sendTo(id: string, records: RedfishEvent['records']): void {
    const s = this.subs.get(id);
    if (s?.kind !== 'RedfishEvent' || s.state !== 'Enabled') return;
    const e: RedfishEvent = { id: this.hub.lastId, at: new Date().toISOString(), records };
    this.delivery.enqueue(s, JSON.stringify(eventPayload(e, s.context)));
  }

  private giveUp(sub: Subscription, why: string): void {
    if (sub.retryPolicy === 'TerminateAfterRetries') {
      this.subs.remove(sub.id);
      this.log(`event subscription ${sub.id} (${sub.destination}) deleted after its retries ran out: ${why}`);
      return;
    }
    this.subs.update(sub.id, { state: 'Disabled' });
    this.log(`event subscription ${sub.id} (${sub.destination}) suspended after its retries ran out: ${why}`);
  }

  /** Suspends or resumes a subscription; resuming starts afresh with the next event. */
  setState(id: string, state: 'Enabled' | 'Disabled'): Subscription | undefined {
    const s = this.subs.update(id, { state });
    if (s && state === 'Disabled') this.delivery.drop(id);
    return s;
  }

  setContext(id: string, context: string): Subscription | undefined {
    const s = this.subs.update(id, { context });
    if (s) for (const l of this.contextListeners) l(s);
    return s;
  }

  onContext(fn: (s: Subscription) => void): () => void {
    this.contextListeners.add(fn);
    return () => this.contextListeners.delete(fn);
  }

  remove(id: string): Subscription | undefined {
    const s = this.subs.remove(id);
    if (!s) return undefined;
    this.delivery.drop(id);
    this.streams.get(id)?.();
    return s;
  }

  stats(id: string): LaneStats | null {
    return this.delivery.stats(id);
  }

  /** Opens an SSE stream on `res` as a new EventDestination; null when the stream cap is reached. */
  openStream(res: ServerResponse, lastEventId: string | undefined, owner: string, uri: string): Subscription | null {
    const sub = this.subs.addStream({ destination: uri, owner });
    const handle = this.hub.attach(res, lastEventId, () => {
      this.streams.delete(sub.id);
      this.subs.remove(sub.id);
    });
    if (!handle) {
      this.subs.remove(sub.id);
      return null;
    }
    this.streams.set(sub.id, () => handle.close());
    return sub;
  }

  async close(): Promise<void> {
    this.untap();
    this.delivery.close();
    for (const close of [...this.streams.values()]) close();
    await this.subs.flush();
  }
}
