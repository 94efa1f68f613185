// The northbound's costs, as `serve --http` runs it (backend and Redfish in
// one process, real QEMU heads): Redfish connection create → 201 next to the
// same 5604h given straight to the daemon's FmApiServer in the same process
// (goal ≤ 1.1×), event latency from the FM client seeing Success to an SSE
// client receiving the event (goal p99 ≤ 50 ms), push-event latency from FM
// Success to a subscribed destination's receipt (goal p99 ≤ 50 ms, a dead
// subscriber beside it) next to the SSE delivery of the same events, how soon
// an aggregator that fetches each created connection has it (goal ≤ 2 s),
// and GET throughput and p99 at 100 concurrent keep-alive clients
// (autocannon) next to a fastify route that returns a constant (goal ≥ 0.5×
// its throughput).
import { randomUUID } from 'node:crypto';
import { Agent, createServer, get, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { pino } from 'pino';
import { FmClient } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { Northbound } from '../src/http/index.js';
import { Leftovers } from './cleanup.js';
import { benchHeadArgs, pct, type Report, startHeadQemu } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export async function benchNorthbound(report: Report): Promise<void> {
  const left = new Leftovers();
  const { base, runDir, stateDir, pool } = left.workspace('rf');
  const capacityBytes = 4 * GiB;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const backend = await Backend.start({
      pool,
      runDir,
      stateDir,
      capacityBytes,
      headCount: 2,
      logger: pino({ level: 'silent' }),
    });
    left.stop(() => backend.stop());
    const nb = new Northbound({ deps: { ...backendView(backend) }, users: { bench: 'bench' }, stateFile: null });
    left.stop(() => nb.close());
    for (const [head, delivery] of [
      [0, 'hotplug'],
      [1, 'dcd'],
    ] as const) {
      const mon = join(base, `mon${head}.sock`);
      const args = benchHeadArgs({
        pool,
        head,
        runDir,
        capacityBytes,
        delivery,
        sparePorts: delivery === 'hotplug' ? 1 : 0,
        memory: '128M',
      });
      await startHeadQemu(mon, args, left);
    }
    const url = await nb.listen('127.0.0.1', 0);
    const auth = `Basic ${Buffer.from('bench:bench').toString('base64')}`;
    const call = (method: string, path: string, body?: unknown) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          `${url}${path}`,
          { method, agent, headers: { authorization: auth, 'content-type': 'application/json' } },
          (res) => {
            let b = '';
            res.on('data', (d) => {
              b += d;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
          },
        );
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });

    // A push destination that timestamps every CapacityAdded it receives, by pool offset, and fetches
    // every connection a ResourceCreated names, as an aggregator's mirror does; a dead one beside it.
    const pushed = new Map<number, number>();
    const mirrored = new Map<string, number>();
    const dest = createServer((req, res) => {
      let text = '';
      req.on('data', (d) => {
        text += d;
      });
      req.on('end', () => {
        const now = performance.now();
        res.writeHead(200).end();
        const m = /"MessageId":"CxlMhd\.1\.0\.CapacityAdded","Message":"\d+ bytes at pool offset (\d+)/.exec(text);
        if (m) pushed.set(Number(m[1]), now);
        for (const c of text.matchAll(
          /"MessageId":"ResourceEvent\.1\.4\.ResourceCreated"[^}]*"OriginOfCondition":\{"@odata.id":"([^"]*\/Connections\/c\d+)"/g,
        )) {
          const uri = c[1] as string;
          void call('GET', uri).then((r) => {
            if (r.status === 200) mirrored.set(uri, performance.now());
          });
        }
      });
    });
    await new Promise<void>((r) => dest.listen(0, '127.0.0.1', r));
    const destUrl = `http://127.0.0.1:${(dest.address() as AddressInfo).port}/events`;
    for (const Destination of [destUrl, 'http://127.0.0.1:9/dead']) {
      const sub = await call('POST', '/redfish/v1/EventService/Subscriptions', { Destination, Protocol: 'Redfish' });
      if (sub.status !== 201) throw new Error(`subscription: ${sub.status} ${sub.body}`);
    }
    // An SSE client that timestamps every CapacityAdded it receives, by pool offset.
    const seen = new Map<number, number>();
    const sse = get(`${url}/redfish/v1/EventService/SSE`, { headers: { authorization: auth } });
    await new Promise<void>((resolve) => {
      sse.on('response', (res) => {
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (d: string) => {
          const now = performance.now();
          buf += d;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const m = /"MessageId":"CxlMhd\.1\.0\.CapacityAdded","Message":"\d+ bytes at pool offset (\d+)/.exec(frame);
            if (m) seen.set(Number(m[1]), now);
          }
        });
        resolve();
      });
    });

    // The same FmApiServer, codecs and lease rule the northbound's link uses, with no HTTP in between.
    const client = new FmClient(backend.fmChannel('bench'), { timeoutMs: 30_000 });
    const CHUNKS = `/redfish/v1/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks`;
    const direct: number[] = [];
    const redfish: number[] = [];
    const eventLag: number[] = [];
    const pushLag: number[] = [];
    const created = new Map<string, number>();
    let early = 0;
    const N = 150;
    // DCD head, a fresh 2 MiB extent each time (QEMU 10.0 keeps DCD extents pending without a guest); the two paths alternate.
    for (let i = 0; i < N; i++) {
      const a = GiB + i * 4 * MiB;
      let t0 = performance.now();
      // The same 5604h the Redfish path sends: prescriptive, one extent, under a fresh tag.
      const tag = randomUUID();
      await client.add({ host: 1, extents: [{ startDpa: a, len: 2 * MiB, tag }], tag });
      const ok = performance.now();
      direct.push(ok - t0);
      for (let j = 0; j < 200 && !(seen.has(a) && pushed.has(a)); j++) await new Promise((r) => setTimeout(r, 1));
      const at = seen.get(a);
      if (at !== undefined) {
        if (at < ok) early++;
        eventLag.push(Math.max(0, at - ok));
      }
      const pushedAt = pushed.get(a);
      if (pushedAt !== undefined) pushLag.push(Math.max(0, pushedAt - ok));

      const b = a + 2 * MiB;
      const chunk = await call('POST', CHUNKS, { MemoryChunkSizeMiB: 2, AddressRangeOffsetMiB: b / MiB });
      if (chunk.status !== 201) throw new Error(`chunk: ${chunk.status} ${chunk.body}`);
      const body = {
        ConnectionType: 'Memory',
        MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': `${CHUNKS}/${b / MiB}M-2M` } }],
        Links: { InitiatorEndpoints: [{ '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head1' }] },
      };
      t0 = performance.now();
      const r = await call('POST', '/redfish/v1/Fabrics/CXL/Connections', body);
      redfish.push(performance.now() - t0);
      if (r.status !== 201) throw new Error(`connection: ${r.status} ${r.body}`);
      created.set(JSON.parse(r.body)['@odata.id'], performance.now());
    }
    for (let j = 0; j < 2000 && mirrored.size < created.size; j++) await new Promise((r) => setTimeout(r, 1));
    const mirrorLag = [...created].flatMap(([uri, at]) => (mirrored.has(uri) ? [Math.max(0, (mirrored.get(uri) as number) - at)] : []));
    const rtt: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await call('GET', '/redfish/v1');
      rtt.push(performance.now() - t0);
    }
    client.close();
    sse.destroy();
    dest.close();
    if (eventLag.length < N) throw new Error(`only ${eventLag.length} of ${N} CapacityAdded events reached the SSE client`);
    if (pushLag.length < N) throw new Error(`only ${pushLag.length} of ${N} CapacityAdded events reached the push destination`);
    if (mirrorLag.length < N) throw new Error(`only ${mirrorLag.length} of ${N} connections were fetched on their ResourceCreated`);
    report(
      'Redfish connection create → 201, dcd head, p50 (goal ≤ 1.1×)',
      pct(redfish, 50),
      'ms',
      'same 5604h to FmApiServer in process p50',
      pct(direct, 50),
      false,
    );
    report(
      'Redfish connection create → 201, dcd head, p99',
      pct(redfish, 99),
      'ms',
      'same 5604h to FmApiServer in process p99',
      pct(direct, 99),
      false,
    );
    report(
      `FM Success → SSE delivery p50 (${early}/${N} before Success)`,
      pct(eventLag, 50),
      'ms',
      'Redfish GET /redfish/v1 round trip p50',
      pct(rtt, 50),
      false,
    );
    report(
      'FM Success → SSE delivery p99 (goal ≤ 50 ms)',
      pct(eventLag, 99),
      'ms',
      'Redfish GET /redfish/v1 round trip p99',
      pct(rtt, 99),
      false,
    );
    report('FM Success → push destination p50', pct(pushLag, 50), 'ms', 'FM Success → SSE delivery p50', pct(eventLag, 50), false);
    report(
      'FM Success → push destination p99 (goal ≤ 50 ms; a dead subscriber beside it)',
      pct(pushLag, 99),
      'ms',
      'FM Success → SSE delivery p99',
      pct(eventLag, 99),
      false,
    );
    report(
      'connection 201 → fetched by a subscribed mirror, max (goal ≤ 2 s)',
      Math.max(...mirrorLag),
      'ms',
      'Redfish GET /redfish/v1 round trip p99',
      pct(rtt, 99),
      false,
    );
    await benchGetThroughput(report, url, auth);
  } finally {
    agent.destroy();
    await left.clean();
  }
}

/** autocannon, 100 keep-alive connections: a Redfish GET (auth, model, ETag) next to a fastify route returning a constant. */
async function benchGetThroughput(report: Report, url: string, auth: string): Promise<void> {
  const bare = Fastify({ logger: false });
  bare.get('/const', async () => ({ ok: true }));
  const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });
  const run = (target: string, headers: Record<string, string>) => autocannon({ url: target, connections: 100, duration: 2.5, headers });
  try {
    // ABBA (constant, Redfish, Redfish, constant; 2.5 s each): a load that drifts during the 10 s weighs on both alike.
    const b1 = await run(`${bareUrl}/const`, {});
    const r1 = await run(`${url}/redfish/v1/Chassis`, { authorization: auth });
    const r2 = await run(`${url}/redfish/v1/Chassis`, { authorization: auth });
    const b2 = await run(`${bareUrl}/const`, {});
    for (const rf of [r1, r2]) {
      if (rf.non2xx > 0 || rf.errors > 0) throw new Error(`Redfish GET under load: ${rf.non2xx} non-2xx, ${rf.errors} errors`);
    }
    const rate = (a: autocannon.Result, b: autocannon.Result) => (a.requests.total + b.requests.total) / (a.duration + b.duration);
    report(
      'Redfish GET /redfish/v1/Chassis req/s, 100 keep-alive clients (goal ≥ 0.5×)',
      rate(r1, r2),
      'req/s',
      'fastify route returning a constant',
      rate(b1, b2),
      true,
    );
    const base = { latency: { p99: Math.max(b1.latency.p99, b2.latency.p99) } };
    const rf = { latency: { p99: Math.max(r1.latency.p99, r2.latency.p99) } };
    report('Redfish GET p99 latency, 100 clients', rf.latency.p99, 'ms', 'fastify constant route p99', base.latency.p99, false);
  } finally {
    await bare.close();
  }
}

export function backendView(b: Backend) {
  return {
    pool: b.opts.pool,
    fmChannel: () => b.fmChannel('redfish'),
    snapshot: () => b.snapshot(),
    subscribe: (fn: Parameters<Backend['subscribe']>[0]) => b.subscribe(fn),
  };
}
