// An event destination for push-delivery tests: a real HTTP server on
// loopback that records every Event POSTed to it (with the time it arrived)
// and answers as the test says: 200, 500, or not at all until released
// (slow). `down()` closes it so the port refuses connections.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

export interface Received {
  at: number;
  body: {
    Id: string;
    Context: string;
    Events: { MessageId: string; EventId: string; MessageArgs: string[]; OriginOfCondition: { '@odata.id': string } }[];
  };
  headers: IncomingMessage['headers'];
}

export interface Destination {
  url: string;
  received: Received[];
  /** Every POST that reached it, answered or not. */
  attempts: number;
  /** How the next POSTs are answered. */
  mode: 'ok' | 'fail' | 'hold';
  /** The next this many POSTs get 500 whatever the mode. */
  failNext: number;
  /** Requests held in 'hold' mode; release() answers them 200. */
  release(): void;
  held(): number;
  down(): Promise<void>;
  /** Resolves once `n` events have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
}

const open: Server[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

export async function destination(): Promise<Destination> {
  const received: Received[] = [];
  const holding: ServerResponse[] = [];
  const waiters: (() => void)[] = [];
  const d: Destination = {
    url: '',
    received,
    attempts: 0,
    failNext: 0,
    mode: 'ok',
    release() {
      for (const r of holding.splice(0)) r.writeHead(200).end();
    },
    held: () => holding.length,
    async down() {
      d.release();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
    waitFor(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${received.length} of ${n} events arrived at ${d.url}`)), timeoutMs);
        const check = () => {
          if (received.length >= n) {
            clearTimeout(t);
            resolve(received.slice(0, n));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => {
      text += c;
    });
    req.on('end', () => {
      d.attempts++;
      if (d.mode === 'fail' || d.failNext > 0) {
        d.failNext = Math.max(0, d.failNext - 1);
        res.writeHead(500).end();
        return;
      }
      received.push({ at: performance.now(), body: JSON.parse(text), headers: req.headers });
      for (const w of waiters.splice(0)) w();
      if (d.mode === 'hold') holding.push(res);
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  open.push(server);
  d.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  return d;
}
