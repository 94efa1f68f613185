// A small aggregating fabric manager that speaks the OFA Sunfish contract
// (its event handlers, read for the facts; nothing of it is copied): on
// ResourceEvent AggregationSourceDiscovered it GETs the announced
// ConnectionMethod at `<agent URL>/<URI>` (so the path starts with `//`),
// with the Basic credentials carried in the agent URL, keeps the agent as an
// aggregation source and PATCHes the Context of the agent's subscription
// `SunfishServer`; on ResourceCreated carrying that Context it crawls the
// named tree, following every @odata.id. Beyond what Sunfish does, it
// follows ResourceChanged and ResourceRemoved too, and a ResourceCreated for
// a tree it already holds replaces that tree, so its mirror can be compared
// with a fresh crawl. Events are handled one at a time, each answered after
// it was handled (as Sunfish does).
import { randomUUID } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect } from 'vitest';

type Body = Record<string, unknown>;

export interface Source {
  id: string;
  hostName: string;
  connectionMethod: Body;
}

export interface TestAggregator {
  url: string;
  sources: Map<string, Source>;
  /** The mirrored resources by URI, and when each was last stored (performance.now()). */
  mirror: Map<string, Body>;
  storedAt: Map<string, number>;
  /** Event records handled, by MessageId. */
  handled: string[];
  /** Handler failures (the POST answered 500). */
  errors: string[];
  /** Everything this aggregator stores, as text (for looking for secrets in it). */
  storedText(): string;
  /** A fresh crawl of `roots` at the source, as the mirror would hold it. */
  crawl(source: Source, roots: string[]): Promise<Map<string, Body>>;
  close(): Promise<void>;
}

/** GET `<agent URL>/<uri>` with the credentials the agent URL carries; null on 404. */
export function agentGet(hostName: string, uri: string): Promise<Body | null> {
  return agentRequest('GET', hostName, uri).then((r) => (r.status === 404 ? null : (r.body as Body)));
}

function agentRequest(method: string, hostName: string, uri: string, body?: Body): Promise<{ status: number; body: unknown }> {
  const u = new URL(hostName);
  const auth = u.username
    ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
    : undefined;
  const text = body ? JSON.stringify(body) : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: `/${uri}`,
        headers: { ...(auth ? { authorization: auth } : {}), ...(text ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          data += d;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 400 && status !== 404) reject(new Error(`${method} ${uri}: ${status} ${data}`));
          else resolve({ status, body: data ? JSON.parse(data) : null });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

function links(v: unknown, out: Set<string>): void {
  if (Array.isArray(v)) for (const x of v) links(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === '@odata.id' && typeof x === 'string') out.add(x.replace(/\/$/, ''));
      else links(x, out);
    }
  }
}

/** Breadth first from `roots`, every resource under /redfish/v1 each resource links to. */
async function crawlInto(hostName: string, roots: string[], into: Map<string, Body>, at: Map<string, number>): Promise<Set<string>> {
  const seen = new Set<string>(roots);
  const queue = [...roots];
  while (queue.length > 0) {
    const uri = queue.shift() as string;
    const body = await agentGet(hostName, uri);
    if (!body) {
      into.delete(uri);
      continue;
    }
    into.set(uri, body);
    at.set(uri, performance.now());
    const next = new Set<string>();
    links(Object.fromEntries(Object.entries(body).filter(([k]) => k !== '@odata.id')), next);
    for (const l of next) {
      if (l.startsWith('/redfish/v1/') && !seen.has(l)) {
        seen.add(l);
        queue.push(l);
      }
    }
  }
  return seen;
}

const open: TestAggregator[] = [];
afterEach(async () => {
  for (const a of open.splice(0)) await a.close();
});

export async function testAggregator(): Promise<TestAggregator> {
  const sources = new Map<string, Source>();
  const mirror = new Map<string, Body>();
  const storedAt = new Map<string, number>();
  const handled: string[] = [];
  const errors: string[] = [];
  let chain: Promise<unknown> = Promise.resolve();

  const parentOf = (uri: string) => uri.slice(0, uri.lastIndexOf('/'));
  const refreshParent = async (src: Source, uri: string) => {
    const p = parentOf(uri);
    if (mirror.has(p)) await crawlInto(src.hostName, [p], mirror, storedAt).then(() => {});
  };

  async function handle(event: {
    Context?: string;
    Events: { MessageId: string; MessageArgs?: string[]; OriginOfCondition?: { '@odata.id': string } }[];
  }) {
    for (const r of event.Events) {
      const kind = r.MessageId.split('.').pop() as string;
      const origin = r.OriginOfCondition?.['@odata.id'] ?? '';
      handled.push(r.MessageId);
      if (kind === 'AggregationSourceDiscovered') {
        const hostName = (r.MessageArgs ?? [])[1] as string;
        const cm = await agentGet(hostName, origin);
        if (!cm) throw new Error(`no ConnectionMethod at ${origin}`);
        const src: Source = { id: randomUUID(), hostName, connectionMethod: cm };
        await agentRequest('PATCH', hostName, '/redfish/v1/EventService/Subscriptions/SunfishServer', { Context: src.id });
        sources.set(src.id, src);
        continue;
      }
      const src = sources.get(event.Context ?? '');
      if (!src) throw new Error(`${r.MessageId} with an unknown Context ${event.Context}`);
      if (kind === 'ResourceCreated') {
        const reached = await crawlInto(src.hostName, [origin], mirror, storedAt);
        // A tree pushed again (the agent restarted) replaces what it held.
        for (const k of [...mirror.keys()]) if (k.startsWith(`${origin}/`) && !reached.has(k)) mirror.delete(k);
        await refreshParent(src, origin);
      } else if (kind === 'ResourceChanged') {
        const body = await agentGet(src.hostName, origin);
        if (body) {
          mirror.set(origin, body);
          storedAt.set(origin, performance.now());
          // New links (a connection's chunk, an endpoint's LD) are crawled too.
          const next = new Set<string>();
          links(body, next);
          const unknown = [...next].filter((l) => l.startsWith('/redfish/v1/') && !mirror.has(l));
          if (unknown.length > 0) await crawlInto(src.hostName, unknown, mirror, storedAt);
        }
      } else if (kind === 'ResourceRemoved') {
        for (const k of [...mirror.keys()]) if (k === origin || k.startsWith(`${origin}/`)) mirror.delete(k);
        await refreshParent(src, origin);
      }
    }
  }

  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (d) => {
      text += d;
    });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/EventListener') {
        res.writeHead(404).end();
        return;
      }
      const run = chain.then(() => handle(JSON.parse(text)));
      chain = run.catch(() => {});
      run.then(
        () => res.writeHead(200, { 'content-type': 'application/json' }).end('[]'),
        (e: Error) => {
          errors.push(e.message);
          res.writeHead(500).end(e.message);
        },
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const agg: TestAggregator = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sources,
    mirror,
    storedAt,
    handled,
    errors,
    storedText: () => JSON.stringify({ sources: [...sources.values()], mirror: [...mirror.entries()] }),
    async crawl(source, roots) {
      const fresh = new Map<string, Body>();
      await crawlInto(source.hostName, roots, fresh, new Map());
      return fresh;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  open.push(agg);
  return agg;
}

/** Waits until the mirror of the (one) source equals a fresh crawl of `roots`; returns the source. */
export async function inSync(agg: TestAggregator, roots: string[], timeout = 10_000): Promise<Source> {
  await expect.poll(() => agg.sources.size, { timeout }).toBe(1);
  const src = [...agg.sources.values()][0] as Source;
  const differing = async () => {
    const fresh = await agg.crawl(src, roots);
    const keys = new Set([...fresh.keys(), ...agg.mirror.keys()]);
    return [...keys].filter((k) => JSON.stringify(fresh.get(k)) !== JSON.stringify(agg.mirror.get(k))).sort();
  };
  // On a timeout the message names the resources the mirror has wrong.
  await expect.poll(differing, { timeout, interval: 100 }).toEqual([]);
  return src;
}
