// Whether a head's guest can still reach a range of the pool, from what
// QEMU itself shows: the memory backends over the pool file (QOM /objects)
// and where the memory tree (`info mtree`) still maps them. The rule and
// the facts behind it: docs/security.md §Released capacity, docs/qemu-facts.md §9.
// QEMU 10.0 reaches a hot-added LD only through its device (the backend is
// the root of the device's address space and leaves the tree with it);
// QEMU 11.x also maps it straight into the fixed memory window with an
// alias once the guest commits a decoder, and that alias outlives the
// device. Either shows up here as a mention of the backend in the tree.

/** The part of a QMP session this needs (QmpSession fits). */
export interface QmpLike {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
}

/** One line of `info mtree`: a region, or an alias onto part of another. */
export interface MtreeRegion {
  name: string;
  alias?: { target: string; start: bigint; end: bigint };
  /** Listed under an address space (mapped), not under a `memory-region:` heading (an alias target, shown for reference). */
  mapped: boolean;
}

// "  0000000120000000-000000012fffffff (prio 0, ram): alias cxl-direct-mapping-alias-0 @cxl-mhd-ldmem-1 0000000000000000-000000000fffffff"
const LINE = /^\s*[0-9a-f]+-[0-9a-f]+ \(prio -?\d+, [^)]*\): (alias )?(\S+)(?: @(\S+) ([0-9a-f]+)-([0-9a-f]+))?/;
// "address-space: memory" starts a tree the guest (or a device) addresses;
// "memory-region: cxl-mhd-ldmem-1" one that aliases point into, listed for reference.
const HEADER = /^(address-space|memory-region): /;

/** The regions `info mtree` lists (every address space, every alias target). */
export function parseMtree(text: string): MtreeRegion[] {
  const out: MtreeRegion[] = [];
  let mapped = true;
  for (const line of text.split('\n')) {
    const h = HEADER.exec(line);
    if (h) {
      mapped = h[1] === 'address-space';
      continue;
    }
    const m = LINE.exec(line);
    if (!m) continue;
    const [, alias, name, target, start, end] = m;
    out.push(
      alias && target
        ? { name: name as string, alias: { target, start: BigInt(`0x${start}`), end: BigInt(`0x${end}`) }, mapped }
        : { name: name as string, mapped },
    );
  }
  return out;
}

/** A memory backend over the pool file: its QOM id and the file range it covers. */
export interface PoolBackend {
  id: string;
  offset: number;
  size: number;
}

/** Every memory backend in this QEMU over `dataPath` (the pool's data object). */
export async function poolBackends(qmp: QmpLike, dataPath: string): Promise<PoolBackend[]> {
  const objs = await qmp.execute<{ name: string; type: string }[]>('qom-list', { path: '/objects' });
  const out: PoolBackend[] = [];
  for (const o of objs.filter((x) => /^child<memory-backend-/.test(x.type))) {
    const get = (property: string) => qmp.execute<unknown>('qom-get', { path: `/objects/${o.name}`, property });
    // A backend without a mem-path (RAM, memfd) is not over the pool file.
    const path = await get('mem-path').catch(() => null);
    if (path !== dataPath) continue;
    out.push({ id: o.name, offset: Number(await get('offset')), size: Number(await get('size')) });
  }
  return out;
}

export interface ReachOptions {
  /** Backends whose own mapping does not decide (a DCD device's DC region: its extents do). */
  exempt?: (id: string) => boolean;
}

/**
 * Why the guest can still reach [offset, offset+len) of the pool: one line
 * per way in; empty when the memory tree maps none of it. A backend over
 * those bytes counts when it is a region of the tree (its device is still
 * there) or an alias onto the overlapping part of it is.
 */
export async function reachability(
  qmp: QmpLike,
  dataPath: string,
  offset: number,
  len: number,
  opts: ReachOptions = {},
): Promise<string[]> {
  const over = (await poolBackends(qmp, dataPath)).filter((b) => b.offset < offset + len && offset < b.offset + b.size);
  if (over.length === 0) return [];
  const tree = parseMtree(await qmp.execute<string>('human-monitor-command', { 'command-line': 'info mtree' }));
  const why = new Set<string>();
  for (const b of over) {
    const lo = BigInt(Math.max(offset, b.offset) - b.offset);
    const hi = BigInt(Math.min(offset + len, b.offset + b.size) - b.offset) - 1n;
    for (const r of tree) {
      if (r.alias?.target === b.id && r.alias.start <= hi && lo <= r.alias.end) {
        why.add(`alias ${r.name} of ${b.id} in the guest's memory map`);
      } else if (!r.alias && r.mapped && r.name === b.id && !opts.exempt?.(b.id)) {
        why.add(`backend ${b.id} is still mapped (its device is still present)`);
      }
    }
  }
  return [...why];
}
