// Connecting chunks to heads and disconnecting them: one 5604h per chunk
// and head (enable-shared when a chunk ends up with more than one head),
// all or nothing; one 5605h per extent to disconnect. Answers only after
// the FM-API did.
import { randomUUID } from 'node:crypto';
import type { Context } from '../../../context.js';
import type { PoolModel } from '../../../model.js';
import { FABRIC, paths } from '../../../paths.js';
import { notFound, RedfishError } from '../../../redfish.js';
import { type ConnectionDef, chunkId } from '../../../store.js';
import type { ConnectionBody } from './schema.js';

const bad = (message: string, args: string[] = []) =>
  new RedfishError(400, 'PropertyValueIncorrect', message, args, 'Correct the request body and resubmit.');
const trim = (u: string) => (u.length > 1 && u.endsWith('/') ? u.slice(0, -1) : u);

function resolveChunks(ctx: Context, m: PoolModel, body: ConnectionBody) {
  const prefix = `${paths.chunks(ctx.pool)}/`;
  const ids = (body.MemoryChunkInfo ?? []).map((c) => trim(c.MemoryChunk['@odata.id']));
  if (new Set(ids).size !== ids.length) throw bad('MemoryChunkInfo names a chunk twice.');
  return ids.map((uri) => {
    const c = uri.startsWith(prefix) ? m.chunks.get(uri.slice(prefix.length)) : undefined;
    if (!c)
      throw new RedfishError(
        400,
        'ResourceMissingAtURI',
        `The memory chunk ${uri} does not exist.`,
        [uri],
        'POST the chunk to MemoryChunks first.',
      );
    return c;
  });
}

function resolveHeads(m: PoolModel, body: ConnectionBody): number[] {
  const heads = body.Links.InitiatorEndpoints.map((e) => {
    const uri = trim(e['@odata.id']);
    const r = /^\/redfish\/v1\/Fabrics\/CXL\/Endpoints\/head(\d{1,3})$/.exec(uri);
    const head = r ? Number(r[1]) : -1;
    if (head < 0 || head >= m.snap.status.headCount) {
      throw new RedfishError(400, 'ResourceMissingAtURI', `The endpoint ${uri} does not exist.`, [uri], `Use one of ${FABRIC}/Endpoints.`);
    }
    return head;
  });
  if (new Set(heads).size !== heads.length) throw bad('Links.InitiatorEndpoints names an endpoint twice.');
  return heads;
}

/** One 5604h: pieces of the pool to one head, under one tag. */
interface Add {
  head: number;
  pieces: { offset: number; len: number }[];
  shared: boolean;
  tag: string;
}

/** Chunks: one 5604h per chunk and head, each chunk under its own tag; enable-shared when it ends up with more than one head. */
function chunkPlan(ctx: Context, m: PoolModel, body: ConnectionBody, heads: number[]) {
  const chunks = resolveChunks(ctx, m, body);
  const plan = chunks.map((c) => {
    const others = m.holdings.filter((h) => h.offset === c.offset && h.len === c.size && !heads.includes(h.head));
    const tag = c.def?.tag ?? others.find((h) => h.tag)?.tag ?? randomUUID();
    return { c, tag, shared: heads.length + new Set(others.map((h) => h.head)).size > 1 };
  });
  const adds = plan.flatMap((p) =>
    heads.map((head) => ({ head, pieces: [{ offset: p.c.offset, len: p.c.size }], shared: p.shared, tag: p.tag })),
  );
  return { chunks: chunks.map((c) => c.id), adds, tags: plan.map((p) => p.tag), shared: plan.some((p) => p.shared) };
}

/**
 * Regions (issue 17, beyond the CSDL; docs/redfish.md): another head's
 * tagged shareable allocation given to each initiator as CXL shares one,
 * one 5604h Enable Shared Access per head with the allocation's tag and
 * every extent it has, so each head gets the same bytes under the same tag.
 */
function regionPlan(ctx: Context, m: PoolModel, body: ConnectionBody, heads: number[]) {
  const prefix = `${paths.lds(ctx.pool)}/`;
  const regions = (body.MemoryRegionInfo ?? []).map((info) => {
    const uri = trim(info.MemoryRegion['@odata.id']);
    const r = uri.startsWith(prefix) ? /^(\d{1,3})\/MemoryRegions\/([^/]+)$/.exec(uri.slice(prefix.length)) : null;
    const region = r ? m.regions(Number(r[1])).find((x) => x.id === r[2]) : undefined;
    if (!region)
      throw new RedfishError(
        400,
        'ResourceMissingAtURI',
        `The memory region ${uri} does not exist.`,
        [uri],
        'Use a region of a CXLLogicalDevice.',
      );
    const tag = region.extents[0]?.tag;
    if (region.kind !== 'grant' || !tag) {
      throw bad(`The memory region ${uri} is not a tagged allocation; only a tagged region can be shared with other heads.`, [uri]);
    }
    if (!region.extents.every((e) => e.shared)) {
      throw new RedfishError(
        409,
        'ResourceInUse',
        `The memory region ${uri} is held exclusively by head ${region.head}; only a shareable region can be given to another head.`,
        [uri],
        'Connect a chunk with several initiators at once to make a shareable region.',
      );
    }
    const holders = new Set(m.holdings.filter((h) => h.tag === tag).map((h) => h.head));
    const again = heads.find((h) => holders.has(h));
    if (again !== undefined) throw bad(`Head ${again} already holds the allocation of ${uri} (tag ${tag}).`, [uri]);
    return { tag, pieces: region.extents.map((e) => ({ offset: e.offset, len: e.len })) };
  });
  if (new Set(regions.map((r) => r.tag)).size !== regions.length) throw bad('MemoryRegionInfo names one allocation twice.');
  const adds = regions.flatMap((r) => heads.map((head) => ({ head, pieces: r.pieces, shared: true, tag: r.tag })));
  const chunks = [...new Set(regions.flatMap((r) => r.pieces.map((p) => chunkId(p.offset, p.len))))];
  return { chunks, adds, tags: regions.map((r) => r.tag), shared: true };
}

/** Makes the connection; returns it and the tag each of its chunks (or regions) was added under. */
export async function connect(ctx: Context, body: ConnectionBody): Promise<{ def: ConnectionDef; tags: string[] }> {
  const m = ctx.model();
  if (!body.MemoryChunkInfo === !body.MemoryRegionInfo) {
    if (body.MemoryChunkInfo) throw bad('Give MemoryChunkInfo or MemoryRegionInfo, not both.');
    throw new RedfishError(
      400,
      'PropertyMissing',
      'The property MemoryChunkInfo (or MemoryRegionInfo) is a required property and must be included in the request.',
      ['MemoryChunkInfo'],
    );
  }
  const heads = resolveHeads(m, body);
  const pid = (h: number) => m.snap.status.heads.find((x) => x.id === h)?.pid ?? null;
  const plan = body.MemoryChunkInfo ? chunkPlan(ctx, m, body, heads) : regionPlan(ctx, m, body, heads);
  const def = ctx.store.addConnection({ chunks: plan.chunks, heads, shared: plan.shared });
  ctx.pending.add(def.id);
  const done: Add[] = [];
  try {
    for (const a of plan.adds) {
      await ctx.fm.add(a.head, a.pieces, pid(a.head), a.shared, a.tag);
      done.push(a);
    }
  } catch (e) {
    // All or nothing: what this request added goes again.
    for (const a of done.reverse()) {
      for (const p of a.pieces) await ctx.fm.release({ head: a.head, ...p }, pid(a.head)).catch(() => undefined);
    }
    ctx.store.removeConnection(def.id);
    throw e;
  } finally {
    ctx.pending.delete(def.id);
  }
  return { def, tags: plan.tags };
}

export async function disconnect(ctx: Context, id: string): Promise<void> {
  const m = ctx.model();
  const c = m.connections.get(id);
  if (!c) throw notFound(paths.connection(id));
  if (c.origin === 'static-window') {
    throw new RedfishError(
      409,
      'ResourceCannotBeDeleted',
      `Connection ${id} is a static window of the VM's configuration; it goes when the VM detaches.`,
      [id],
      'Stop the VM or change its static window.',
    );
  }
  if (c.state === 'releasing') return;
  const pieces = m.holdings.filter((h) => h.kind === 'grant' && c.heads.includes(h.head) && c.chunks.includes(chunkId(h.offset, h.len)));
  for (const h of pieces) {
    const pid = m.snap.status.heads.find((x) => x.id === h.head)?.pid ?? null;
    await ctx.fm.release({ head: h.head, offset: h.offset, len: h.len }, pid);
  }
}
