// Loaded into a benchmark's `cxl-mhd serve` child with `node --import`: the
// backend's event-loop delay histogram (perf_hooks), so a latency figure can
// be printed beside how long the backend's own loop was blocked. Each
// SIGUSR2 writes the histogram since the previous one to
// $CXL_MHD_BENCH_ELD.<n> (n = 1, 2, …) and starts a new one. Nothing in src/
// knows about it.
import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const out = process.env.CXL_MHD_BENCH_ELD;
if (out) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let n = 0;
  process.on('SIGUSR2', () => {
    n++;
    const ms = (ns: number) => ns / 1e6;
    const body = {
      count: h.count,
      p50: ms(h.percentile(50)),
      p99: ms(h.percentile(99)),
      max: ms(h.max),
      mean: ms(h.mean),
    };
    writeFileSync(`${out}.tmp`, JSON.stringify(body));
    renameSync(`${out}.tmp`, `${out}.${n}`);
    h.reset();
  });
}
