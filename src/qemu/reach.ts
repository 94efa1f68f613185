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

/**
 * What each memory backend of a QEMU was created with (null: not over a
 * file), per QMP session. A backend's mem-path, offset and size are fixed
 * once it exists, and its id is never reused within a session (every
 * hot-add takes a fresh one, and neither QEMU 10.0 nor 11.1 can delete a
 * backend it mapped), so each is asked once. Without this a release asked
 * three qom-gets, one after another, of every backend the head ever had:
 * a cost that grew with the number of hot-adds (docs/performance.md).
 */
const backendFacts = new WeakMap<QmpLike, Map<string, (PoolBackend & { path: unknown }) | null>>();

function factsOf(qmp: QmpLike): Map<string, (PoolBackend & { path: unknown }) | null> {
  const known = backendFacts.get(qmp) ?? new Map<string, (PoolBackend & { path: unknown }) | null>();
  backendFacts.set(qmp, known);
  return known;
}

/**
 * What a backend was just created with (its object-add succeeded with these
 * arguments): the next reachability check need not ask QEMU for them.
 */
export function rememberBackend(qmp: QmpLike, b: { id: string; path: string; offset: number; size: number }): void {
  const known = factsOf(qmp);
  known.set(b.id, { id: b.id, path: b.path, offset: b.offset, size: b.size });
}

/** Every memory backend in this QEMU over `dataPath` (the pool's data object). */
export async function poolBackends(qmp: QmpLike, dataPath: string): Promise<PoolBackend[]> {
  const objs = await qmp.execute<{ name: string; type: string }[]>('qom-list', { path: '/objects' });
  const known = factsOf(qmp);
  const ids = objs.filter((x) => /^child<memory-backend-/.test(x.type)).map((o) => o.name);
  // Gone from QOM: forgotten, so the map holds no more than QEMU does.
  const present = new Set(ids);
  for (const id of known.keys()) if (!present.has(id)) known.delete(id);
  // The new ones' properties all at once: QEMU answers them back to back.
  await Promise.all(
    ids
      .filter((id) => !known.has(id))
      .map(async (id) => {
        const get = (property: string) =>
          qmp.execute<unknown>('qom-get', { path: `/objects/${id}`, property }).then(
            (value) => ({ value }),
            (error: Error) => ({ error }),
          );
        const [path, offset, size] = await Promise.all([get('mem-path'), get('offset'), get('size')]);
        // A backend without a mem-path (RAM, memfd) is not over a file.
        if ('error' in path) {
          known.set(id, null);
          return;
        }
        if ('error' in offset) throw offset.error;
        if ('error' in size) throw size.error;
        known.set(id, { id, path: path.value, offset: Number(offset.value), size: Number(size.value) });
      }),
  );
  const out: PoolBackend[] = [];
  for (const id of ids) {
    const b = known.get(id);
    if (b && b.path === dataPath) out.push({ id, offset: b.offset, size: b.size });
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
  // Asked beside the backends, not after them (one wait for QEMU, not two); read only if a backend overlaps.
  // Nothing can put a new backend over the range meanwhile: its blocks are still held by the head.
  const mtree = qmp.execute<string>('human-monitor-command', { 'command-line': 'info mtree' });
  mtree.catch(() => undefined);
  const over = (await poolBackends(qmp, dataPath)).filter((b) => b.offset < offset + len && offset < b.offset + b.size);
  if (over.length === 0) return [];
  const tree = parseMtree(await mtree);
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
