// Connecting chunks to heads and disconnecting them: one 5604h per chunk
// and head (enable-shared when a chunk ends up with more than one head),
// all or nothing; one 5605h per extent to disconnect. Answers only after
// the FM-API did.
import { randomUUID } from 'node:crypto';
import type { Context } from '../../../context.js';
import type { Piece } from '../../../fmlink.js';
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
  const ids = body.MemoryChunkInfo.map((c) => trim(c.MemoryChunk['@odata.id']));
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

/** Makes the connection; returns it and the tag each of its chunks was added under. */
export async function connect(ctx: Context, body: ConnectionBody): Promise<{ def: ConnectionDef; tags: string[] }> {
  const m = ctx.model();
  const chunks = resolveChunks(ctx, m, body);
  const heads = resolveHeads(m, body);
  const pid = (h: number) => m.snap.status.heads.find((x) => x.id === h)?.pid ?? null;
  // Enable-shared when the chunk ends up with more than one head: the ones asked for, and any already holding it.
  const plan = chunks.map((c) => {
    const others = m.holdings.filter((h) => h.offset === c.offset && h.len === c.size && !heads.includes(h.head));
    const tag = c.def?.tag ?? others.find((h) => h.tag)?.tag ?? randomUUID();
    return { c, tag, shared: heads.length + new Set(others.map((h) => h.head)).size > 1 };
  });
  const def = ctx.store.addConnection({ chunks: chunks.map((c) => c.id), heads, shared: plan.some((p) => p.shared) });
  ctx.pending.add(def.id);
  const done: Piece[] = [];
  try {
    for (const p of plan) {
      for (const head of heads) {
        const piece = { head, offset: p.c.offset, len: p.c.size };
        await ctx.fm.add(piece, pid(head), p.shared, p.tag);
        done.push(piece);
      }
    }
  } catch (e) {
    // All or nothing: what this request added goes again.
    for (const piece of done.reverse()) await ctx.fm.release(piece, pid(piece.head)).catch(() => undefined);
    ctx.store.removeConnection(def.id);
    throw e;
  } finally {
    ctx.pending.delete(def.id);
  }
  return { def, tags: plan.map((p) => p.tag) };
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
