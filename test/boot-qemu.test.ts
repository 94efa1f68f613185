// Linux guests end to end: three heads boot the project's guest under TCG
// against the real backend; they share a window, the owner guest moves
// 256 MiB to head 1 with `cxl-mhd fm` and takes it back. Consoles and logs
// are kept under test-artifacts/ when this fails.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keepArtifacts, runThreeHeadScenario, type ScenarioResult } from '../src/demo/scenario.js';
import { tempDir } from './helpers/pool.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('Linux guests on three heads', () => {
  it('share a window, see their serials, and move capacity with the FM-API from inside the owner guest', async () => {
    const work = tempDir('cxl-mhd-boot-');
    let r: ScenarioResult | undefined;
    try {
      r = await runThreeHeadScenario({ workDir: work, pool: `boot-${process.pid}` });
      expect(r.failures).toEqual([]);
      // Every guest shows /dev/cxl/mem0 with its head's serial and the window's size.
      for (const h of r.heads) {
        expect(h.serial).toBe(h.expectedSerial);
        expect(h.sizeBytes).toBe(256 * MiB);
        expect(h.exitCode).toBe(0);
      }
      // Only the owner guest has the FM-LD port.
      expect(r.owner).toBe(0);
      expect(r.heads[0]?.fmld).toMatch(/^\/dev\/vport\d+p\d+$/);
      expect(r.heads[1]?.fmld).toBe('none');
      expect(r.heads[2]?.fmld).toBe('none');
      // Heads 1 and 2 read the pattern head 0 wrote into the shared window.
      expect(r.heads[1]?.p1).toBe('ok');
      expect(r.heads[2]?.p1).toBe('ok');
      // The owner's add gave head 1 a new memdev over pool offset 1 GiB, holding the host's pattern.
      expect(r.add).toEqual({ rc: 0, output: expect.stringMatching(/added 256M at pool offset 1073741824/) });
      expect(r.mem1).toBe('appeared');
      expect(r.mem1Bytes).toBe(256 * MiB);
      expect(r.p2).toBe('ok');
      // The release took it away, and the blocks were free again.
      expect(r.release.rc).toBe(0);
      expect(r.mem1After).toBe('gone');
      expect(r.afterRelease).toEqual({ head1GrantedBytes: 256 * MiB, freeBytes: 2 * GiB - 256 * MiB });
      // Non-owners have no way in, and are told so.
      for (const h of [1, 2]) {
        expect(r.heads[h]?.fmRc).toBe(1);
        expect(r.heads[h]?.fmOutput).toMatch(/this head does not own the FM-LD/);
      }
    } catch (e) {
      keepArtifacts(work, join('test-artifacts', `boot-${Date.now()}`));
      throw e;
    }
    // Nothing left behind: no shm objects of this pool, no sockets.
    expect(readdirSync('/dev/shm').filter((f) => f.includes(`boot-${process.pid}`))).toEqual([]);
    expect(existsSync(join(work, 'run'))).toBe(false);
  }, 600_000);
});
