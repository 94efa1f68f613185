// The northbound's costs, as `serve --http` runs it (backend and Redfish in
// one process, real QEMU heads): Redfish connection create → 201 next to the
// same 5604h sent straight over fm.sock (goal ≤ 1.3×), and event latency
// from the FM client seeing Success to an SSE client receiving the event
// (goal p99 ≤ 50 ms), next to a bare Redfish GET round trip.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, get, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { Northbound } from '../src/http/index.js';
import { Pool } from '../src/pool/index.js';
import { qemuArgv, resolveQemu } from '../src/qemu/index.js';
import type { QmpSession } from '../src/qmp/index.js';
import { benchHeadArgs, monitor, pct, type Report } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export async function benchNorthbound(report: Report): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-rf-'));
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  const pool = `bench-rf-${process.pid}`;
  const capacityBytes = 4 * GiB;
  const backend = await Backend.start({
    pool,
    runDir,
    stateDir,
    capacityBytes,
    headCount: 2,
    logger: pino({ level: 'silent' }),
    fmSocket: true,
  });
  const nb = new Northbound({ deps: { ...backendView(backend) }, users: { bench: 'bench' }, stateFile: null });
  const children: ChildProcess[] = [];
  const sessions: QmpSession[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
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
      const argv = qemuArgv(resolveQemu(), [...args, '-display', 'none', '-nodefaults', '-qmp', `unix:${mon},server=on,wait=off`]);
      children.push(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
      const s = await monitor(mon);
      sessions.push(s);
      for (let i = 0; i < 400 && !(await s.execute<{ running: boolean }>('query-status')).running; i++)
        await new Promise((r) => setTimeout(r, 25));
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

    const client = new FmClient(await openPort(join(runDir, pool, 'fm.sock')), { timeoutMs: 30_000 });
    const CHUNKS = `/redfish/v1/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks`;
    const direct: number[] = [];
    const redfish: number[] = [];
    const eventLag: number[] = [];
    let early = 0;
    const N = 150;
    // DCD head, a fresh 2 MiB extent each time (QEMU 10.0 keeps DCD extents pending without a guest); the two paths alternate.
    for (let i = 0; i < N; i++) {
      const a = GiB + i * 4 * MiB;
      let t0 = performance.now();
      await client.add({ host: 1, extents: [{ startDpa: a, len: 2 * MiB }] });
      const ok = performance.now();
      direct.push(ok - t0);
      for (let j = 0; j < 200 && !seen.has(a); j++) await new Promise((r) => setTimeout(r, 1));
      const at = seen.get(a);
      if (at !== undefined) {
        if (at < ok) early++;
        eventLag.push(Math.max(0, at - ok));
      }

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
    }
    const rtt: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await call('GET', '/redfish/v1');
      rtt.push(performance.now() - t0);
    }
    client.close();
    sse.destroy();
    if (eventLag.length < N) throw new Error(`only ${eventLag.length} of ${N} CapacityAdded events reached the SSE client`);
    report('Redfish connection create → 201, dcd head, p50', pct(redfish, 50), 'ms', 'same 5604h over fm.sock p50', pct(direct, 50), false);
    report('Redfish connection create → 201, dcd head, p99', pct(redfish, 99), 'ms', 'same 5604h over fm.sock p99', pct(direct, 99), false);
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
  } finally {
    agent.destroy();
    for (const s of sessions) s.close();
    await Promise.all(
      children.map((c) => {
        const done = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return done;
      }),
    );
    await nb.close();
    await backend.stop();
    Pool.destroy({ name: pool, stateDir, force: true });
    rmSync(base, { recursive: true, force: true });
  }
}

function backendView(b: Backend) {
  return {
    pool: b.opts.pool,
    fmSocketPath: b.fmSocketPath as string,
    snapshot: () => b.snapshot(),
    subscribe: (fn: Parameters<Backend['subscribe']>[0]) => b.subscribe(fn),
  };
}
