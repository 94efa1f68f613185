// Push delivery of events to subscriptions (DSP0266 "POST to Destination"):
// one ordered lane per subscription, each with its own queue and its own
// HTTP exchange in flight, so a slow or dead destination only ever holds up
// itself, never an FM operation (enqueueing is synchronous and bounded) nor
// another subscriber. A failed POST is retried DeliveryRetryAttempts times,
// DeliveryRetryIntervalSeconds apart; then the subscription's retry policy
// decides: suspend it (Status.State Disabled until re-enabled), delete it,
// or keep trying.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { DeliverySettings, Subscription } from './subscriptions.js';

export interface DeliveryOptions {
  settings: () => DeliverySettings;
  /** A POST that has not answered within this counts as failed. */
  timeoutMs?: number;
  /** Events waiting per lane; beyond it the oldest are dropped (and counted). */
  maxQueue?: number;
  /** Retries ran out: the engine stopped the lane; the caller suspends or deletes the subscription. */
  onGiveUp: (sub: Subscription, lastError: string) => void;
}

export interface LaneStats {
  queued: number;
  delivered: number;
  dropped: number;
  failures: number;
  lastError: string | null;
}

interface Lane {
  sub: Subscription;
  queue: string[];
  running: boolean;
  stats: LaneStats;
  /** Set when the lane is dropped: its worker stops at the next step. */
  gone: boolean;
  wake: (() => void) | null;
}

export class Delivery {
  private readonly lanes = new Map<string, Lane>();
  private readonly timeoutMs: number;
  private readonly maxQueue: number;
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 2 });
  private readonly https = new HttpsAgent({ keepAlive: true, maxSockets: 2 });
  private closed = false;

  constructor(private readonly opts: DeliveryOptions) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxQueue = opts.maxQueue ?? 1024;
  }

  /** Queues one serialized Event for a push subscription and starts its lane if idle; never waits. */
  enqueue(sub: Subscription, body: string): void {
    if (this.closed || sub.kind !== 'RedfishEvent' || sub.state !== 'Enabled') return;
    let lane = this.lanes.get(sub.id);
    if (!lane) {
      lane = {
        sub,
        queue: [],
        running: false,
        gone: false,
        wake: null,
        stats: { queued: 0, delivered: 0, dropped: 0, failures: 0, lastError: null },
      };
      this.lanes.set(sub.id, lane);
    }
    lane.sub = sub;
    lane.queue.push(body);
    if (lane.queue.length > this.maxQueue) {
      lane.queue.splice(0, lane.queue.length - this.maxQueue);
      lane.stats.dropped++;
    }
    if (!lane.running) void this.run(lane);
  }

  stats(id: string): LaneStats | null {
    const l = this.lanes.get(id);
    return l ? { ...l.stats, queued: l.queue.length } : null;
  }

  /** The subscription is gone or suspended: its queue is dropped, its worker stops. */
  drop(id: string): void {
    const l = this.lanes.get(id);
    if (!l) return;
    l.gone = true;
    l.queue.length = 0;
    l.wake?.();
    this.lanes.delete(id);
  }

  /** Resolves once every lane is idle (tests, shutdown). */
  async idle(): Promise<void> {
    while ([...this.lanes.values()].some((l) => l.running)) await new Promise((r) => setTimeout(r, 5));
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.lanes.keys()]) this.drop(id);
    this.http.destroy();
    this.https.destroy();
  }

  private async run(lane: Lane): Promise<void> {
    lane.running = true;
    try {
      while (!lane.gone && !this.closed && lane.queue.length > 0) {
        const body = lane.queue[0] as string;
        let ok = false;
        for (let attempt = 0; !lane.gone; attempt++) {
          try {
            await this.post(lane.sub, body);
            ok = true;
            break;
          } catch (e) {
            lane.stats.failures++;
            lane.stats.lastError = (e as Error).message;
          }
          const { retryAttempts, retryIntervalSeconds } = this.opts.settings();
          if (lane.sub.retryPolicy !== 'RetryForever' && attempt >= retryAttempts) break;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, retryIntervalSeconds * 1000);
            lane.wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
          lane.wake = null;
        }
        if (lane.gone) return;
        if (!ok) {
          this.drop(lane.sub.id);
          this.opts.onGiveUp(lane.sub, lane.stats.lastError ?? 'delivery failed');
          return;
        }
        lane.queue.shift();
        lane.stats.delivered++;
      }
    } finally {
      lane.running = false;
    }
  }

  private post(sub: Subscription, body: string): Promise<void> {
    const agent = sub.destination.startsWith('https:') ? this.https : this.http;
    return postJson(sub.destination, body, { agent, headers: sub.headers, timeoutMs: this.timeoutMs });
  }
}

/** One JSON POST that resolves on a 2xx answer and rejects on anything else, an error or no answer within the timeout. */
export function postJson(
  url: string,
  body: string,
  o: { agent?: HttpAgent | HttpsAgent; headers?: Record<string, string>; timeoutMs: number },
): Promise<void> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  return new Promise<void>((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      u,
      {
        method: 'POST',
        ...(o.agent ? { agent: o.agent } : {}),
        headers: { ...o.headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        timeout: o.timeoutMs,
      },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        if (code >= 200 && code < 300) resolve();
        else reject(new Error(`${url} answered ${code}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${o.timeoutMs} ms`)));
    req.on('error', (e) => reject(e));
    req.end(body);
  });
}
