// A `cxl-mhd serve` child with the host FM-API socket, for the benchmarks
// that drive real QEMU heads: resolves once it prints `ready`; the child is
// the caller's leftovers (SIGTERM) from its spawn on, ready or not. With `eld`,
// the child carries bench/eld-probe.ts and eventLoopDelay() reads its
// backend's event-loop delay since the previous reading.
// CXL_MHD_BENCH_SERVE_NODE_ARGS adds node options to the child.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Leftovers } from './cleanup.js';

export interface EventLoopDelay {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

const eldFiles = new WeakMap<ChildProcess, { path: string; n: number }>();

export async function startServe(o: {
  pool: string;
  capacity: string;
  heads: number;
  runDir: string;
  stateDir: string;
  /** A file path prefix for the event-loop delay readings. */
  eld?: string;
  left: Leftovers;
}): Promise<ChildProcess> {
  const serve = o.left.child(
    spawn(
      process.execPath,
      [
        // e.g. "--cpu-prof --cpu-prof-dir=DIR" to profile the backend (NODE_OPTIONS refuses --cpu-prof).
        ...(process.env.CXL_MHD_BENCH_SERVE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        ...(o.eld ? ['--import', new URL('./eld-probe.js', import.meta.url).href] : []),
        'dist/src/cli/main.js',
        'serve',
        '--pool',
        o.pool,
        '--capacity',
        o.capacity,
        '--heads',
        String(o.heads),
        '--fm-socket',
        '--run-dir',
        o.runDir,
        '--state-dir',
        o.stateDir,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'], env: o.eld ? { ...process.env, CXL_MHD_BENCH_ELD: o.eld } : process.env },
    ),
    'SIGTERM',
  );
  if (o.eld) eldFiles.set(serve, { path: o.eld, n: 0 });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    serve.stdout?.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    serve.once('exit', (c) => reject(new Error(`cxl-mhd serve exited ${c} before ready`)));
  });
  return serve;
}

/** The serve child's event-loop delay (ms) since the previous call, or since it started. */
export async function eventLoopDelay(serve: ChildProcess): Promise<EventLoopDelay> {
  const f = eldFiles.get(serve);
  if (!f) throw new Error('this serve child was started without eld');
  f.n++;
  const file = `${f.path}.${f.n}`;
  serve.kill('SIGUSR2');
  for (let i = 0; i < 500 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 10));
  return JSON.parse(readFileSync(file, 'utf8')) as EventLoopDelay;
}
