// A backend that runs for months, compressed: a long stream of FM-API adds
// and releases through fm.sock (fake QEMU heads, real shm, real journal on
// disk with fsync), with the backend restarted at checkpoints. The state
// dir must stay small (compaction), and journal size, RSS and recovery time
// are reported per checkpoint. CI runs 3,000 operations; `make soak` runs
// 100,000 (CXL_MHD_LONGRUN_OPS) and appends the figures to CXL_MHD_RESULTS.
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FmClient, openPort } from '../../src/fmapi/index.js';
import { Backend } from '../../src/heads/index.js';
import { fsck } from '../../src/pool/index.js';
import type { FakeQemu } from '../helpers/fake-qemu.js';
import { fakeVm } from '../helpers/fake-vm.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const KiB = 1024;
const POOL_BYTES = 1024 * MiB;
const OPS = Number(process.env.CXL_MHD_LONGRUN_OPS ?? 3000);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const fakes: FakeQemu[] = [];
async function vm(path: string, pool: string, dcd: boolean) {
  const fake = await fakeVm(path, pool, POOL_BYTES, dcd);
  cleanups.push(() => fake.close());
  fakes.push(fake);
  return fake;
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('long run (fake QEMU heads, real journal)', () => {
  it(
    `${OPS} FM operations: the state dir stays under 64 KiB; journal size, RSS and recovery time are flat`,
    async () => {
      const base = tempDir('cxl-mhd-longrun-', process.env.CXL_MHD_LONGRUN_DIR ?? undefined);
      const pool = uniquePoolName('lr');
      const runDir = join(base, 'run');
      const stateDir = join(base, 'state');
      const sock = (h: number) => join(runDir, pool, `head${h}.sock`);
      const opts = { pool, runDir, stateDir, logger: pino({ level: 'silent' }), fmSocket: true };

      let backend = await Backend.start({ ...opts, capacityBytes: POOL_BYTES, headCount: 2 });
      cleanups.push(() => backend.stop());
      const attachAll = async (b: Backend) => {
        await vm(sock(0), pool, false);
        await vm(sock(1), pool, true);
        await until(() => b.headRecord(0)?.phase === 'attached' && b.headRecord(1)?.phase === 'attached', 'heads attached');
      };
      await attachAll(backend);
      let client = new FmClient(await openPort(backend.fmSocketPath as string), { timeoutMs: 20_000 });

      const checkpoints = [0.1, 0.5, 1].map((f) => Math.round(OPS * f));
      const figures: {
        ops: number;
        stateDirBytes: number;
        maxStateDirBytes: number;
        rssMiB: number;
        heapMiB: number;
        recoveryMs: number;
        compactions: number;
      }[] = [];
      let maxBytes = 0;
      let compactions = 0;
      const dir = join(stateDir, pool);
      for (let i = 1; i <= OPS; i++) {
        // Head 1 takes and gives back one of 8 extents; both are FM-API operations.
        const slot = Math.floor((i - 1) / 2) % 8;
        const extent = { startDpa: slot * 2 * MiB, len: 2 * MiB };
        if (i % 2 === 1) await client.add({ host: 1, extents: [extent] });
        else await client.release({ host: 1, extents: [extent] });
        if (i % 200 === 0) maxBytes = Math.max(maxBytes, dirBytes(dir));
        // The fakes keep every command they received; that is the test's memory, not the backend's.
        if (i % 1000 === 0) for (const f of fakes) f.received.length = 0;
        if (checkpoints.includes(i)) {
          await until(() => backend.capacity.grantsOf(1).every((g) => g.state === 'active'), 'releases to finish');
          const stateDirBytes = dirBytes(dir);
          maxBytes = Math.max(maxBytes, stateDirBytes);
          compactions += backend.pool.compactions;
          const { rss, heapUsed } = process.memoryUsage();
          const rssMiB = rss / MiB;
          const heapMiB = Math.round((heapUsed / MiB) * 10) / 10;
          // Restart: what a backend starting after months must read and replay.
          client.close();
          await backend.stop();
          const t0 = performance.now();
          backend = await Backend.start(opts);
          const recoveryMs = performance.now() - t0;
          expect(fsck(backend.pool).findings).toEqual([]);
          await attachAll(backend);
          client = new FmClient(await openPort(backend.fmSocketPath as string), { timeoutMs: 20_000 });
          figures.push({
            ops: i,
            stateDirBytes,
            maxStateDirBytes: maxBytes,
            rssMiB: Math.round(rssMiB * 10) / 10,
            heapMiB,
            recoveryMs: Math.round(recoveryMs * 10) / 10,
            compactions,
          });
        }
      }
      client.close();
      await backend.stop();
      console.log(`long run: ${JSON.stringify(figures)}`);
      if (process.env.CXL_MHD_RESULTS)
        appendFileSync(process.env.CXL_MHD_RESULTS, `${JSON.stringify({ test: 'longrun', ops: OPS, figures })}\n`);
      // At most one 2 MiB extent is granted at a time: the state dir of such a pool stays under 64 KiB, whatever the count.
      expect(maxBytes).toBeLessThan(64 * KiB);
      expect(compactions).toBeGreaterThan(0);
      // A ceiling, not a measurement: each operation is an FM round trip and an fdatasync on a shared host.
    },
    Math.max(120_000, OPS * 20),
  );
});
