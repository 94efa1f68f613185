// Whether a VM can still reach a range of the pool, read from QEMU's QOM
// backends and memory tree (src/qemu/reach.ts), on trees captured with
// `info mtree` from QEMU 10.0.13 and 11.1.3 (docs/qemu-facts.md §9).
import { describe, expect, it } from 'vitest';
import { parseMtree, poolBackends, reachability } from '../../src/qemu/index.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const LD = 256 * MiB;

// Trees captured with `info mtree` after the release of a hot-added LD whose region the guest had committed.
const MTREE_10_PRESENT = `address-space: cxl-type3
  0000000000000000-000000000fffffff (prio 0, ram): cxl-mhd-ldmem-7
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000120000000-000000019fffffff (prio 0, i/o): cxl-fixed-memory-region
`;
const MTREE_10_GONE = `address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000120000000-000000019fffffff (prio 0, i/o): cxl-fixed-memory-region
`;
const MTREE_11_GONE = `address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    0000000120000000-000000019fffffff (prio 0, i/o): cxl-fixed-memory-region
      0000000120000000-000000012fffffff (prio 0, ram): alias cxl-direct-mapping-alias-0 @cxl-mhd-ldmem-7 0000000000000000-000000000fffffff

memory-region: cxl-mhd-ldmem-7
  0000000000000000-000000000fffffff (prio 0, ram): cxl-mhd-ldmem-7
`;

function fakeQmp(tree: string, backends: Record<string, { path: string; offset: number; size: number }>) {
  return {
    async execute<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
      if (cmd === 'qom-list') return Object.keys(backends).map((name) => ({ name, type: 'child<memory-backend-file>' })) as T;
      if (cmd === 'qom-get') {
        const b = backends[String(args.path).split('/').pop() as string];
        const v = { 'mem-path': b?.path, offset: b?.offset, size: b?.size }[String(args.property)];
        return v as T;
      }
      if (cmd === 'human-monitor-command') return tree as T;
      throw new Error(`unexpected ${cmd}`);
    },
  };
}

describe('reachability from the memory tree (qemu/reach.ts)', () => {
  const pool = '/dev/shm/cxl-mhd.p.mem';
  const backends = { 'cxl-mhd-ldmem-7': { path: pool, offset: GiB, size: LD }, 'cxl-mhd-static': { path: pool, offset: 0, size: LD } };

  it('parses regions and aliases', () => {
    expect(parseMtree(MTREE_11_GONE).filter((r) => r.name.startsWith('cxl-'))).toEqual([
      { name: 'cxl-fixed-memory-region', mapped: true },
      { name: 'cxl-direct-mapping-alias-0', alias: { target: 'cxl-mhd-ldmem-7', start: 0n, end: 0xfffffffn }, mapped: true },
      { name: 'cxl-mhd-ldmem-7', mapped: false },
    ]);
  });

  it('10.0: reachable while the device maps its backend, unreachable once it is gone', async () => {
    expect(await reachability(fakeQmp(MTREE_10_PRESENT, backends), pool, GiB, LD)).toEqual([
      'backend cxl-mhd-ldmem-7 is still mapped (its device is still present)',
    ]);
    expect(await reachability(fakeQmp(MTREE_10_GONE, backends), pool, GiB, LD)).toEqual([]);
  });

  it('11: the alias keeps the range reachable after the device left; other ranges and files are not affected', async () => {
    expect(await reachability(fakeQmp(MTREE_11_GONE, backends), pool, GiB, LD)).toEqual([
      "alias cxl-direct-mapping-alias-0 of cxl-mhd-ldmem-7 in the guest's memory map",
    ]);
    expect(await reachability(fakeQmp(MTREE_11_GONE, backends), pool, GiB + LD, LD)).toEqual([]);
    expect(await reachability(fakeQmp(MTREE_11_GONE, backends), '/dev/shm/other.mem', GiB, LD)).toEqual([]);
    // An alias onto another part of a backend does not reach this range.
    const part = { 'cxl-mhd-ldmem-7': { path: pool, offset: GiB, size: 2 * LD } };
    expect(await reachability(fakeQmp(MTREE_11_GONE.replace(/\nmemory-region[\s\S]*/, ''), part), pool, GiB + LD, LD)).toEqual([]);
    expect(
      await reachability(fakeQmp(MTREE_11_GONE.replace(/\nmemory-region[\s\S]*/, ''), part), pool, GiB, LD, { exempt: () => true }),
    ).toHaveLength(1);
  });

  it("asks each backend's properties once per session, all at once; a new one is asked, a vanished one forgotten", async () => {
    const live: Record<string, { path: string; offset: number; size: number } | { ram: true }> = {
      'cxl-mhd-ldmem-1': { path: pool, offset: 0, size: LD },
      ram0: { ram: true },
    };
    const asked: string[] = [];
    let inFlight = 0;
    let most = 0;
    const qmp = {
      async execute<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
        if (cmd === 'qom-list') return Object.keys(live).map((name) => ({ name, type: 'child<memory-backend-file>' })) as T;
        const id = String(args.path).split('/').pop() as string;
        asked.push(`${id}.${String(args.property)}`);
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        const b = live[id];
        if (!b) throw new Error(`no object ${id}`);
        if ('ram' in b) {
          if (args.property === 'size') return LD as T;
          throw new Error(`Property '${String(args.property)}' not found`);
        }
        return { 'mem-path': b.path, offset: b.offset, size: b.size }[String(args.property)] as T;
      },
    };
    expect(await poolBackends(qmp, pool)).toEqual([{ id: 'cxl-mhd-ldmem-1', offset: 0, size: LD }]);
    expect(asked).toHaveLength(6);
    expect(most).toBe(6);
    live['cxl-mhd-ldmem-2'] = { path: pool, offset: GiB, size: LD };
    asked.length = 0;
    expect(await poolBackends(qmp, pool)).toEqual([
      { id: 'cxl-mhd-ldmem-1', offset: 0, size: LD },
      { id: 'cxl-mhd-ldmem-2', offset: GiB, size: LD },
    ]);
    expect(asked.sort()).toEqual(['cxl-mhd-ldmem-2.mem-path', 'cxl-mhd-ldmem-2.offset', 'cxl-mhd-ldmem-2.size']);
    // Gone and back under the same id (never done by the backend, which takes fresh ids): asked again, not remembered.
    delete live['cxl-mhd-ldmem-1'];
    expect(await poolBackends(qmp, pool)).toEqual([{ id: 'cxl-mhd-ldmem-2', offset: GiB, size: LD }]);
    live['cxl-mhd-ldmem-1'] = { path: pool, offset: 2 * GiB, size: LD };
    asked.length = 0;
    expect((await poolBackends(qmp, pool)).find((b) => b.id === 'cxl-mhd-ldmem-1')).toEqual({
      id: 'cxl-mhd-ldmem-1',
      offset: 2 * GiB,
      size: LD,
    });
    expect(asked).toHaveLength(3);
    // Another session (another QEMU) knows nothing of these.
    const other = { execute: qmp.execute };
    asked.length = 0;
    await poolBackends(other, pool);
    expect(asked).toHaveLength(9);
  });
});
