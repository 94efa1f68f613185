// Hostile QEMU command lines against a real backend (real QEMU, paused, no
// guest): a head that maps the pool through a device named like a hot-added
// LD, or through another spelling of the pool's path, over another head's
// exclusive window. Every device whose backend maps the pool file (compared
// by identity, not by spelling) must be claimed or refused on a fresh
// attach, whatever its id; here each is refused and fsck stays clean.
import { describe, expect, it } from 'vitest';
import { cli, eventually, journal, makeTestPool, startBackend, startHead, status } from '../helpers/qemu.js';

const MiB = 2 ** 20;

describe('a head that hides a window over the pool', () => {
  for (const [what, mutate] of [
    ['behind an LD-style device id', (w: string) => w.replace('id=cxl-mhd-mem0', 'id=cxl-mhd-ld-rp9')],
    ['behind another spelling of the pool path', (w: string) => w.replace(/mem-path=\/dev\/shm\/cxl-mhd\./, 'mem-path=/dev/shm//cxl-mhd.')],
  ] as const) {
    it(`is refused over another head's exclusive window ${what}`, async () => {
      const pool = makeTestPool('hq');
      const backend = await startBackend(pool, ['--capacity', '1G', '--heads', '2']);
      const owner = await startHead(pool, 0, { static: '256M@0,exclusive' });
      await eventually(() => status(pool).heads[0]?.attached, 'head 0 attached');
      // Head 1 asks for 256M@256M, then its command line is rewritten to map offset 0 instead.
      const vm = await startHead(pool, 1, {
        static: '256M@256M',
        noMonitor: true,
        mutate: (a) =>
          a.map((w) => (w.includes('cxl-mhd-mem0') || w.includes('mem-path=') ? mutate(w) : w).replace('offset=268435456', 'offset=0')),
      });
      const s = await eventually(() => {
        const st = status(pool);
        return st.heads[1]?.phase === 'refused' || st.heads[1]?.attached ? st : null;
      }, 'head 1 judged');
      expect(s.heads[1]?.attached).toBe(false);
      expect(s.heads[1]?.reason).toMatch(/window at pool offset 0 \(size 268435456\) conflicts with an exclusive grant of head 0/);
      expect(await vm.exited).not.toBeNull();
      expect(journal(pool).some((e) => e.op === 'note' && e.args.event === 'attach-refused' && e.args.head === 1)).toBe(true);
      expect(status(pool).heads[0]?.grantedBytes).toBe(256 * MiB);
      expect(cli(['fsck', '--pool', pool.name, ...pool.dirArgs]).code).toBe(0);
      await owner.kill();
      await backend.stop();
    });
  }
});
