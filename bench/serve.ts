// A `cxl-mhd serve` child with the host FM-API socket, for the benchmarks
// that drive real QEMU heads: resolves once it prints `ready`.
import { type ChildProcess, spawn } from 'node:child_process';

export async function startServe(o: {
  pool: string;
  capacity: string;
  heads: number;
  runDir: string;
  stateDir: string;
}): Promise<ChildProcess> {
  const serve = spawn(
    process.execPath,
    [
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
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
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
