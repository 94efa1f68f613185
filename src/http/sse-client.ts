// A client of the northbound's Redfish event stream (EventService/SSE): it
// follows the stream, resuming with Last-Event-ID after a drop, and hands
// each event's JSON to the caller (`cxl-mhd events` prints them). Beside the
// server it speaks to, as the FM-API client sits beside the FM-API server.
import { request } from 'node:http';
import { request as requestTls } from 'node:https';
import { UsageError } from '../errors/index.js';

export interface FollowOptions {
  /** The northbound's base URL, e.g. http://127.0.0.1:8080. */
  base: string;
  /** Authorization or X-Auth-Token. */
  auth: Record<string, string>;
  /** For an https base: the certificate (or CA) to trust, e.g. the one the pool's http.json names. */
  ca?: Buffer;
  /** Resume after this event id. */
  lastEventId?: string;
  /** Stop after this many events (default: never). */
  limit?: number;
  onEvent: (event: Record<string, unknown>) => void;
}

/** Follows the stream, reconnecting with Last-Event-ID, until `limit` events (or forever); gives up after 30 failed tries in a row. */
export async function followEvents(o: FollowOptions): Promise<void> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  let seen = 0;
  let last = o.lastEventId;
  for (let attempt = 0; ; attempt++) {
    const ended = await new Promise<string | null>((resolve, reject) => {
      const url = `${o.base}/redfish/v1/EventService/SSE`;
      const headers = { Accept: 'text/event-stream', ...o.auth, ...(last ? { 'Last-Event-ID': last } : {}) };
      const req = url.startsWith('https:') ? requestTls(url, { headers, ...(o.ca ? { ca: o.ca } : {}) }) : request(url, { headers });
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            let why = body;
            try {
              why = JSON.parse(body).error.message;
            } catch {}
            reject(new UsageError(`the event stream answered ${res.statusCode}: ${why}`));
          });
          return;
        }
        attempt = 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: (.*)$/m.exec(frame)?.[1];
            const data = frame
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n');
            if (!data) continue;
            if (id) last = id;
            o.onEvent(JSON.parse(data) as Record<string, unknown>);
            if (++seen >= limit) {
              req.destroy();
              resolve(null);
              return;
            }
          }
        });
        res.on('end', () => resolve('the stream ended'));
        res.on('error', () => resolve('the stream failed'));
      });
      req.on('error', (e) => resolve(e.message));
      req.end();
    });
    if (ended === null) return;
    if (attempt >= 30) throw new UsageError(`cannot reach ${o.base}: ${ended}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
