// Several processes hammer one pool's shm with claims and releases; at the
// end the bitmap must satisfy every invariant, equal the journal's replay,
// and hold exactly what each process believes it holds.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fsck, Pool } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const PROCESSES = 4;
const OPS_PER_PROCESS = 30_000; // 120k operations in all

interface Summary {
  head: number;
  heldBlocks: number;
  claims: number;
  conflicts: number;
  releases: number;
  sharedClaims: number;
}

function runWorker(name: string, stateDir: string, head: number): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['test/workers/stress-worker.mjs', name, stateDir, String(head), String(OPS_PER_PROCESS), String(0x9e3779b9 + head * 7919)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as Summary);
      else reject(new Error(`worker ${head} exited ${code}: ${err}`));
    });
  });
}

describe('multi-process stress', () => {
  it(`${PROCESSES} processes × ${OPS_PER_PROCESS} random claims/releases end fsck-clean with matching totals`, async () => {
    // The journal is fsynced per operation; on tmpfs that costs nothing, so
    // the test measures contention on the bitmap, not the disk.
    const stateDir = tempDir('cxl-mhd-stress-', '/dev/shm');
    const name = uniquePoolName('stress');
    // 512 MiB in 2 MiB blocks = 256 blocks: small enough that processes collide constantly.
    const pool = Pool.create({ name, stateDir, capacityBytes: 512 * 2 ** 20, blockBytes: 2 * 2 ** 20, headCount: PROCESSES });
    try {
      for (let h = 0; h < PROCESSES; h++) pool.registerHead(h, process.pid);
      const results = await Promise.all(Array.from({ length: PROCESSES }, (_, h) => runWorker(name, stateDir, h)));
      const report = fsck(pool);
      expect(report.findings).toEqual([]);
      expect(report.journalEntries).toBe(1 + PROCESSES + PROCESSES * OPS_PER_PROCESS);
      for (const r of results) {
        expect(pool.state.blocksOf(r.head).length).toBe(r.heldBlocks);
        expect(r.claims + r.conflicts + r.releases).toBe(OPS_PER_PROCESS);
        // The run is only meaningful if processes actually fought over blocks.
        expect(r.conflicts).toBeGreaterThan(100);
        expect(r.sharedClaims).toBeGreaterThan(100);
      }
      const usage = pool.state.usage();
      expect(usage.perHead).toEqual(results.map((r) => r.heldBlocks));
    } finally {
      pool.close();
    }
  });
});
