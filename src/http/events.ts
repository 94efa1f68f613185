// The EventService's stream: every published Redfish event, and every
// MetricReport the TelemetryService sends as an event, gets the next id and
// goes into a bounded ring and to every SSE client (DSP0266
// ServerSentEventUri). A reconnecting client's Last-Event-ID replays what it
// missed from the ring. Clients are capped, and one that stops reading is
// cut off rather than buffered without bound.
import type { ServerResponse } from 'node:http';
import { typeOf } from './dmtf.js';

export interface EventRecord {
  EventType: 'Other';
  EventId: string;
  EventTimestamp: string;
  MemberId: string;
  MessageId: string;
  Message: string;
  MessageArgs: string[];
  MessageSeverity: 'OK' | 'Warning' | 'Critical';
  OriginOfCondition: { '@odata.id': string };
  Oem?: Record<string, unknown>;
}

export interface RedfishEvent {
  id: number;
  at: string;
  /** Empty when this is a metric report. */
  records: Omit<EventRecord, 'EventId' | 'MemberId' | 'EventTimestamp'>[];
  /** A MetricReport body (EventFormatType MetricReport) instead of records. */
  report?: Record<string, unknown>;
}

export interface HubOptions {
  ringSize?: number;
  maxClients?: number;
  heartbeatMs?: number;
  /** A client with more than this many bytes unsent is cut off. */
  maxBacklogBytes?: number;
}

interface Client {
  res: ServerResponse;
  close: () => void;
}

/**
 * The Redfish Event for one published change: `context` is the subscriber's
 * (a push destination's Context), `only` the indices of the records its
 * filters let through (EventIds stay those of the whole event).
 */
export function eventPayload(e: RedfishEvent, context = 'cxl-mhd', only?: number[]): Record<string, unknown> {
  const picked = only ?? e.records.map((_, i) => i);
  return {
    '@odata.type': typeOf('Event'),
    Id: String(e.id),
    Name: 'cxl-mhd event',
    Context: context,
    Events: picked.map((i) => ({ ...e.records[i], EventId: `${e.id}.${i}`, MemberId: String(i), EventTimestamp: e.at })),
  };
}

export class EventHub {
  private readonly ring: RedfishEvent[] = [];
  private readonly clients = new Set<Client>();
  private nextId = 1;
  private readonly heartbeat: NodeJS.Timeout;
  readonly ringSize: number;
  readonly maxClients: number;
  private readonly maxBacklog: number;
  /** In-process listeners (tests, the bench); they see what SSE clients see. */
  private readonly taps = new Set<(e: RedfishEvent) => void>();

  constructor(opts: HubOptions = {}) {
    this.ringSize = opts.ringSize ?? 1024;
    this.maxClients = opts.maxClients ?? 64;
    this.maxBacklog = opts.maxBacklogBytes ?? 1024 * 1024;
    this.heartbeat = setInterval(() => this.broadcast(': keep-alive\n\n'), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get lastId(): number {
    return this.nextId - 1;
  }

  publish(records: RedfishEvent['records'], at = new Date().toISOString()): RedfishEvent | null {
    if (records.length === 0) return null;
    return this.push({ id: this.nextId++, at, records });
  }

  /** A MetricReport sent as an event: it takes the next id, like an Event, so SSE ids stay unique and ordered. */
  publishReport(report: Record<string, unknown>, at = new Date().toISOString()): RedfishEvent {
    return this.push({ id: this.nextId++, at, records: [], report });
  }

  private push(e: RedfishEvent): RedfishEvent {
    this.ring.push(e);
    if (this.ring.length > this.ringSize) this.ring.shift();
    this.broadcast(frame(e));
    for (const t of this.taps) t(e);
    return e;
  }

  tap(fn: (e: RedfishEvent) => void): () => void {
    this.taps.add(fn);
    return () => this.taps.delete(fn);
  }

  /** Events after `lastId`; a lastId from another run (ahead of ours) replays the whole ring. */
  since(lastId: number | null): { events: RedfishEvent[]; lost: number } {
    if (lastId === null) return { events: [], lost: 0 };
    if (lastId >= this.nextId) return { events: [...this.ring], lost: 0 };
    const events = this.ring.filter((e) => e.id > lastId);
    const first = events[0]?.id ?? this.nextId;
    return { events, lost: Math.max(0, first - lastId - 1) };
  }

  /**
   * Takes over the response as an SSE stream; null when the client cap is
   * reached. `onClose` runs once when the stream ends, however it ends; the
   * returned close() ends it from this side.
   */
  attach(res: ServerResponse, lastEventId: string | undefined, onClose: () => void = () => {}): { close: () => void } | null {
    if (this.clients.size >= this.maxClients) return null;
    const parsed = lastEventId !== undefined && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : null;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'OData-Version': '4.0',
      'X-Accel-Buffering': 'no',
    });
    // An open stream is not an idle socket.
    res.socket?.setTimeout(0);
    const { events, lost } = this.since(parsed);
    let head = 'retry: 1000\n\n';
    if (lost > 0) head += `: ${lost} event(s) after ${parsed} fell out of the ring of ${this.ringSize}\n\n`;
    for (const e of events) head += frame(e);
    res.write(head);
    const client: Client = {
      res,
      close: () => {
        this.clients.delete(client);
        if (!res.destroyed) res.destroy();
      },
    };
    this.clients.add(client);
    res.once('close', () => {
      this.clients.delete(client);
      onClose();
    });
    return client;
  }

  private broadcast(text: string): void {
    for (const c of this.clients) {
      if (c.res.destroyed || c.res.writableLength > this.maxBacklog) {
        c.close();
        continue;
      }
      c.res.write(text);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const c of [...this.clients]) c.close();
  }
}

function frame(e: RedfishEvent): string {
  return `id: ${e.id}\ndata: ${JSON.stringify(e.report ?? eventPayload(e))}\n\n`;
}
