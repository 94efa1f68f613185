// The three-guest boot scenario's clock: time to the first shared read, and
// the backend's share of the whole (attach + FM work), from the same run.
import { runThreeHeadScenario } from '../src/demo/scenario.js';

type Report = (name: string, value: number, unit: string, baseName: string, base: number, higherIsBetter: boolean) => void;

export async function benchScenario(report: Report): Promise<void> {
  const r = await runThreeHeadScenario({ pool: `bench-boot-${process.pid}` });
  if (r.failures.length > 0 || r.timings.toFirstSharedReadMs === null) throw new Error(`scenario failed: ${r.failures.join('; ')}`);
  report(
    '3-head boot: QEMU start → first shared read',
    r.timings.toFirstSharedReadMs,
    'ms',
    'whole scenario (boot, add, release)',
    r.timings.totalMs,
    false,
  );
  report('3-head boot: backend time (attach + FM work)', r.timings.backendMs, 'ms', 'whole scenario', r.timings.totalMs, false);
}
