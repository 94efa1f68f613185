// `make bench`: every figure is printed next to a baseline measured in the
// same run, with their ratio. Results also go to bench/out/results.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool, type PoolState, poolStatus } from '../src/pool/index.js';
import { benchAttach } from './attach.js';
import { benchCli } from './cli.js';
import { onEachQemu } from './common.js';
import { benchFmApi } from './fmapi.js';
import { benchGuessFlood } from './guessflood.js';
import { benchFmScenario, benchGuestFm } from './guestfm.js';
import { benchHotRemove } from './hotremove.js';
import { benchLdHotAdd } from './ldhotadd.js';
import { benchLoad } from './load.js';
import { benchNorthbound } from './northbound.js';
import { benchSanitize } from './sanitize.js';
import { benchScenario } from './scenario.js';

const MiB = 2 ** 20;
const results: Record<string, unknown>[] = [];

function report(name: string, value: number, unit: string, baselineName: string, baseline: number, higherIsBetter: boolean): void {
  const ratio = value / baseline;
  results.push({ name, value, unit, baselineName, baseline, ratio });
  const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(3));
  console.log(
    `${name.padEnd(44)} ${fmt(value).padStart(12)} ${unit.padEnd(6)} | ${baselineName.padEnd(36)} ${fmt(baseline).padStart(12)} ${unit.padEnd(6)} | ratio ${ratio.toFixed(3)}${higherIsBetter ? '' : ' (lower is better)'}`,
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function buildC(): string {
  const out = join('native', 'build', 'bench');
  mkdirSync(out, { recursive: true });
  const bin = join(out, 'claim_release');
  execFileSync('gcc', ['-O2', '-o', bin, 'bench/c/claim_release.c', '-lrt']);
  return bin;
}

function withPool<T>(name: string, capacityBytes: number, fn: (pool: Pool, stateDir: string) => T): T {
  const stateDir = mkdtempSync(join(tmpdir(), 'cxl-mhd-bench-'));
  let pool: Pool | null = null;
  try {
    pool = Pool.create({ name, stateDir, capacityBytes, blockBytes: 2 * MiB, headCount: 4, allowOvercommit: true });
    return fn(pool, stateDir);
  } finally {
    pool?.close();
    if (Pool.exists(name)) Pool.destroy({ name, stateDir, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function benchClaimRelease(cbin: string): void {
  const name = `bench-cas-${process.pid}`;
  withPool(name, 1024 * MiB, (pool) => {
    pool.registerHead(0, process.pid);
    const state: PoolState = pool.state;
    const blocks = state.blockCount;
    const iterations = 300_000;
    const jsRuns: number[] = [];
    const cRuns: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) {
        const r = { first: i % blocks, count: 1 };
        state.claim(0, r);
        state.release(0, r);
      }
      jsRuns.push(iterations / (Number(process.hrtime.bigint() - t0) / 1e9));
      const c = execFileSync(cbin, ['cas', `/cxl-mhd.${name}.state`, String(blocks), String(iterations * 10), '1'], { encoding: 'utf8' });
      cRuns.push(Number(c.trim()));
    }
    report('claim+release, JS API (shm, no journal)', median(jsRuns), 'ops/s', 'same CAS loop in C, same shm', median(cRuns), true);

    // The journaled path as `serve` runs it: fsync per operation to the state dir's disk.
    const jIters = 2_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < jIters; i++) {
      const r = { first: i % blocks, count: 1 };
      pool.claim(0, r);
      pool.release(0, r);
    }
    const journaled = jIters / (Number(process.hrtime.bigint() - t0) / 1e9);
    report('claim+release, journaled (fsync per op, /tmp)', journaled, 'ops/s', 'JS API without journal', median(jsRuns), true);
  });
}

function benchStatus(cbin: string): void {
  const name = `bench-status-${process.pid}`;
  const TiB = 2 ** 40;
  withPool(name, TiB, (pool, stateDir) => {
    const state = pool.state;
    // A realistic picture: every head attached, a quarter of the pool granted in varied ranges.
    for (let h = 0; h < 4; h++) state.registerHead(h, process.pid);
    state.acquireLease(0);
    for (let b = 0; b < state.blockCount / 4; b += 64) state.claim(b % 3, { first: b, count: 48 }, { shared: b % 5 === 0 });
    const inProcess: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t0 = process.hrtime.bigint();
      poolStatus(pool);
      inProcess.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const cScan = Number(
      execFileSync(cbin, ['scan', `/cxl-mhd.${name}.state`, String(state.blockCount), '50'], { encoding: 'utf8' }).trim(),
    );
    report(
      `status on 1 TiB / 2 MiB blocks (${state.blockCount} blocks), in process`,
      median(inProcess),
      'ms',
      'C scan of the same bitmap',
      1000 / cScan,
      false,
    );

    const wall = (args: string[]): number => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const cliRuns: number[] = [];
    const nodeRuns: number[] = [];
    for (let i = 0; i < 7; i++) {
      cliRuns.push(wall(['dist/src/cli/main.js', 'status', '--pool', name, '--state-dir', stateDir, '--json']));
      nodeRuns.push(wall(['-e', '0']));
    }
    report('`cxl-mhd status --json` on 1 TiB, wall', median(cliRuns), 'ms', 'bare `node -e 0` start', median(nodeRuns), false);
  });
}

// `node dist/bench/run.js [--only a,b] [--runs N] [names…]`: only the named
// benchmarks (no names: all of them), each run N times (default 1); with
// N > 1 every figure is also printed as its range over the runs, since one
// run on a shared machine is noise.
const BENCHES = [
  'claim',
  'status',
  'cli',
  'attach',
  'hotremove',
  'fmapi',
  'dcd',
  'northbound',
  'guessflood',
  'load',
  'scenario',
  'ldhotadd',
  'sanitize',
  'guestfm',
  'fmscenario',
];
const argv = process.argv.slice(2);
const only = new Set<string>();
let runs = 1;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i] as string;
  if (a === '--help' || a === '-h') {
    console.log(
      `usage: node dist/bench/run.js [--only NAME,…] [--runs N] [NAME…]\nbenchmarks: ${BENCHES.join(', ')} (dcd: the DCD half of fmapi)`,
    );
    process.exit(0);
  } else if (a === '--runs') runs = Number(argv[++i]);
  else if (a === '--only') for (const n of String(argv[++i] ?? '').split(',')) only.add(n);
  else only.add(a);
}
for (const n of only) if (!BENCHES.includes(n)) throw new Error(`unknown benchmark "${n}" (known: ${BENCHES.join(', ')})`);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive whole number');
const want = (name: string) => only.size === 0 || only.has(name);
console.log('cxl-mhd benchmarks (each figure | its baseline from this run | ratio)');
console.log(
  `host: ${cpus().length} CPUs, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} at the start`,
);
for (let run = 1; run <= runs; run++) {
  if (runs > 1) console.log(`--- run ${run} of ${runs} (load average ${loadavg()[0]?.toFixed(1)})`);
  if (want('claim') || want('status')) {
    const cbin = buildC();
    if (want('claim')) benchClaimRelease(cbin);
    if (want('status')) benchStatus(cbin);
  }
  if (want('cli')) await benchCli(report);
  if (want('attach')) {
    // Per head on every QEMU series set up, then the 32-head figures on the default one.
    await onEachQemu((qemu) => benchAttach(report, { qemu, perHeadOnly: true }));
    await benchAttach(report);
  }
  if (want('hotremove')) await benchHotRemove(report);
  if (want('fmapi') || want('dcd')) await benchFmApi(report, { hotplug: want('fmapi') });
  if (want('northbound')) await benchNorthbound(report);
  if (want('guessflood')) await benchGuessFlood(report);
  if (want('load')) await benchLoad(report);
  if (want('scenario')) await benchScenario(report);
  if (want('ldhotadd')) await benchLdHotAdd(report);
  if (want('sanitize')) await benchSanitize(report);
  if (want('guestfm')) await benchGuestFm(report);
  if (want('fmscenario')) await benchFmScenario(report);
}
if (runs > 1) {
  console.log(`--- ranges over ${runs} runs (min–max; load average now ${loadavg()[0]?.toFixed(1)})`);
  const byName = new Map<string, Record<string, unknown>[]>();
  for (const r of results) byName.set(r.name as string, [...(byName.get(r.name as string) ?? []), r]);
  const range = (xs: number[]) => {
    const f = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(3));
    return `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
  };
  for (const [name, rs] of byName) {
    const first = rs[0] as Record<string, unknown>;
    const unit = String(first.unit);
    const ratios = rs.map((r) => r.ratio as number);
    console.log(
      `${name.padEnd(44)} ${range(rs.map((r) => r.value as number)).padStart(17)} ${unit.padEnd(6)} | ${String(first.baselineName).padEnd(36)} ${range(
        rs.map((r) => r.baseline as number),
      ).padStart(17)} ${unit.padEnd(6)} | ratio ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)} (${rs.length} runs)`,
    );
  }
}
mkdirSync('bench/out', { recursive: true });
writeFileSync('bench/out/results.json', `${JSON.stringify({ date: new Date().toISOString(), results }, null, 2)}\n`);
