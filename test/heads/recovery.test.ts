// Recovery's release paths free blocks the way the manager does: a stale
// head (its QEMU gone while the backend was down) has its grants zeroed
// before they are freed when the region sanitizes on release.
import { describe, expect, it } from 'vitest';
import { recoverStaleHeads } from '../../src/heads/recovery.js';
import { add, MiB, manager, peek, poke, pool, StubDelivery } from '../helpers/capacity.js';

class Fine extends StubDelivery {
  override readonly unit = 2 * MiB;
}

/** Above Linux's pid_max (2^22): no process has it. */
const DEAD_PID = 2 ** 22 + 17;
const PATTERN = Buffer.from('stale head pattern '.repeat(20));

describe('recovery', () => {
  for (const sanitize of [true, false]) {
    it(`a stale head's grants are freed ${sanitize ? 'zeroed' : 'as they were'} (sanitize on release ${sanitize ? 'on' : 'off'})`, async () => {
      const p = pool(2);
      p.lockWriter();
      p.unregisterHead(1);
      p.registerHead(1, DEAD_PID);
      const m = manager(p, { 1: new Fine() });
      await m.setRegionConfig({ region: 0, blockSize: 2 * MiB, sanitizeOnRelease: sanitize });
      await m.initiateAdd(add(1, [[8 * MiB, 2 * MiB]]));
      poke(p, 8 * MiB, PATTERN);
      const detached: number[] = [];
      const quiet = () => undefined;
      recoverStaleHeads({
        pool: p,
        capacity: m,
        log: { info: quiet, warn: quiet, error: quiet } as never,
        emit: quiet,
        setRecord: quiet,
        detachInShm: (h) => {
          detached.push(h);
          p.releaseAll(h);
          p.unregisterHead(h);
        },
        freeLeaseIfNoHeads: quiet,
      });
      expect(detached).toContain(1); // head 0 too, unless a process happens to have its made-up pid
      expect(p.state.block(4).holders).toEqual([]);
      expect(peek(p, 8 * MiB, PATTERN.length)).toEqual(sanitize ? Buffer.alloc(PATTERN.length) : PATTERN);
    });
  }
});
