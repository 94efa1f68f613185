// Load: 32 paused heads attached, 10k mixed FM operations through the
// FM-API (adds, releases, extent lists, region configs); throughput, p99
// latency and the backend's RSS over the run (it must stay bounded).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { Pool } from '../src/pool/index.js';
import { qemuArgv, resolveQemu } from '../src/qemu/binary.js';
import { benchHeadArgs, pct, type Report } from './common.js';
import { type LoadKind, loadFloor } from './load-floor.js';
import { eventLoopDelay, startServe } from './serve.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export async function benchLoad(report: Report, ops = Number(process.env.CXL_MHD_LOAD_OPS ?? 10_000)): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-load-'));
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  const pool = `bench-load-${process.pid}`;
  const heads = 32;
  const capacityBytes = 16 * GiB;
  const serve = await startServe({ pool, capacity: '16G', heads, runDir, stateDir, eld: join(base, 'eld') });
  const children: ChildProcess[] = [];
  try {
    for (let h = 0; h < heads; h++) {
      const args = benchHeadArgs({
        pool,
        head: h,
        runDir,
        capacityBytes,
        sparePorts: h === 0 ? 0 : 2,
        delivery: h % 2 === 0 && h > 0 ? 'dcd' : 'hotplug',
        memory: '64M',
      });
      const argv = qemuArgv(resolveQemu(), [...args, '-display', 'none', '-nodefaults']);
      children.push(spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
      if (h === 0) await new Promise((r) => setTimeout(r, 500)); // head 0 first: the FM-LD owner
    }
    const probe = Pool.open({ name: pool, stateDir, readOnly: true });
    for (let i = 0; i < 3000 && probe.state.heads().filter((x) => x.attached).length < heads; i++)
      await new Promise((r) => setTimeout(r, 20));
    probe.close();
    const rssStart = rssMiB(serve.pid ?? 0);
    const stream = await openPort(join(runDir, pool, 'fm.sock'));
    const client = new FmClient(stream, { timeoutMs: 30_000 });
    // Each hotplug head (odd ids) cycles through its own two 256 MiB slots; dcd heads get 2 MiB extents at fresh offsets.
    const held = new Map<number, number[]>();
    let dcdNext = 0;
    let refused = 0;
    const note = () => {
      refused++;
    };
    const lat: number[] = [];
    // Per kind, to say which operations make the tail.
    const byKind = new Map<string, number[]>();
    // Each op's kind, in order: the floor replays the same mix.
    const kinds: LoadKind[] = [];
    let rssMax = rssStart;
    let rssHalf = rssStart;
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    await eventLoopDelay(serve); // from here on: the run's own
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) {
      const kind = rand(10);
      const head = 1 + rand(heads - 1);
      const s = performance.now();
      let k: LoadKind = kind < 4 ? 'extent list' : kind < 5 ? 'region config' : head % 2 === 1 ? 'hotplug add' : 'dcd add';
      if (kind < 4) await client.allExtents(head);
      else if (kind < 5) await client.regionConfig(head);
      else if (head % 2 === 1) {
        const slots = [0, 1].map((k) => (GiB * ((head - 1) / 2)) / 2 + k * 256 * MiB).filter((o) => o + 256 * MiB <= 8 * GiB);
        const mine = held.get(head) ?? [];
        if (mine.length > 0 && (kind < 8 || mine.length === slots.length)) {
          const off = mine.shift() as number;
          k = 'hotplug release';
          await client.release({ host: head, extents: [{ startDpa: off, len: 256 * MiB }] }).catch(note);
        } else {
          const off = slots.find((o) => !mine.includes(o));
          if (off !== undefined) {
            // A slot just released may still be leaving QEMU: then the add is refused and the slot stays free.
            const ok = await client.add({ host: head, extents: [{ startDpa: off, len: 256 * MiB }] }).then(
              () => true,
              () => {
                note();
                return false;
              },
            );
            if (ok) mine.push(off);
          }
        }
        held.set(head, mine);
      } else {
        // DCD extents stay pending in QEMU without a DCD guest; add at fresh offsets in the upper half.
        // 256 distinct offsets: once taken they are refused, so the pool's state stays bounded as ops go on.
        const off = 8 * GiB + (dcdNext++ % 256) * 2 * MiB;
        await client.add({ host: head, extents: [{ startDpa: off, len: 2 * MiB }] }).catch(note);
      }
      lat.push(performance.now() - s);
      kinds.push(k);
      const mine = byKind.get(k) ?? [];
      mine.push(lat.at(-1) as number);
      byKind.set(k, mine);
      if (i % 500 === 0) rssMax = Math.max(rssMax, rssMiB(serve.pid ?? 0));
      if (i === Math.floor(ops / 2)) rssHalf = rssMiB(serve.pid ?? 0);
    }
    const secs = (performance.now() - t0) / 1000;
    const eld = await eventLoopDelay(serve);
    process.stdout.write('  load: measuring the floor (the same mix, each op only its bare QEMU commands + one fdatasync)…\n');
    const floor = await loadFloor({ base, client }, kinds);
    client.close();
    stream.destroy();
    rssMax = Math.max(rssMax, rssMiB(serve.pid ?? 0));
    const sorted = [...lat].sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)] as number;
    const p99 = sorted[Math.floor(sorted.length * 0.99)] as number;
    report(
      `load: ${ops} mixed FM ops on 32 heads (${refused} refused), throughput`,
      ops / secs,
      'ops/s',
      'its p50 latency as ops/s (1 client)',
      1000 / p50,
      true,
    );
    report('load: FM op latency p99', p99, 'ms', 'p50', p50, false);
    report('load: FM op latency p99 (vs its floor)', p99, 'ms', 'the same mix as bare QEMU commands + fdatasync, p99', floor.p99, false);
    report('load: FM op latency p50 (vs its floor)', p50, 'ms', 'the same mix as bare QEMU commands + fdatasync, p50', floor.p50, false);
    report('load: backend event-loop delay p99 (same run)', eld.p99, 'ms', 'FM op latency p99', p99, false);
    process.stdout.write(
      `  load: backend event-loop delay p50 ${eld.p50.toFixed(2)} ms, p99 ${eld.p99.toFixed(2)} ms, max ${eld.max.toFixed(1)} ms; by kind (p50/p99/max ms): ${[
        ...byKind,
      ]
        .map(([k, xs]) => `${k} ${pct(xs, 50).toFixed(2)}/${pct(xs, 99).toFixed(2)}/${Math.max(...xs).toFixed(1)} (${xs.length})`)
        .join(', ')}\n`,
    );
    process.stdout.write(
      `  load: floor by kind (p50/p99 ms): ${[...floor.byKind].map(([k, xs]) => `${k} ${pct(xs, 50).toFixed(2)}/${pct(xs, 99).toFixed(2)} (${xs.length})`).join(', ')}\n`,
    );
    const rssEnd = rssMiB(serve.pid ?? 0);
    report('load: backend RSS peak during the run', rssMax, 'MiB', 'backend RSS with 32 heads, before the run', rssStart, false);
    // Bounded means the second half of the run does not keep growing it.
    report('load: backend RSS after all ops', rssEnd, 'MiB', 'backend RSS after half the ops', rssHalf, false);
  } finally {
    await Promise.all(
      children.map((c) => {
        const done = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return done;
      }),
    );
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
    Pool.destroy({ name: pool, stateDir, force: true });
    rmSync(base, { recursive: true, force: true });
  }
}
