// What every benchmark shares: the report callback bench/run.ts passes in,
// percentiles, and a QMP monitor of a QEMU the benchmark started itself.
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { type HeadArgsOptions, headArgs, resolveQemu } from '../src/qemu/index.js';
import { QmpSession } from '../src/qmp/index.js';

/** One figure next to its baseline from the same run; run.ts prints the ratio. */
export type Report = (name: string, value: number, unit: string, baseName: string, base: number, higherIsBetter: boolean) => void;

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** The benchmark's own QMP monitor socket of a QEMU it spawned, once QEMU listens. */
export async function monitor(path: string): Promise<QmpSession> {
  for (let i = 0; i < 400; i++) {
    if (existsSync(path)) {
      const s = await new Promise<Socket | null>((resolve) => {
        const c = connect(path);
        c.once('connect', () => resolve(c));
        c.once('error', () => resolve(null));
      });
      if (s) return QmpSession.open(s);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`monitor ${path} never came up`);
}

/** A head's arguments for the QEMU the benches run (its monitor spelled for that version). */
export function benchHeadArgs(opts: Omit<HeadArgsOptions, 'qemuVersion'>): string[] {
  return headArgs({ ...opts, qemuVersion: resolveQemu().version });
}
