// Moving capacity over Redfish: defining memory chunks (the northbound's
// own state, no FM operation) and making or ending connections, which issue
// 5604h/5605h through the FM-API link and answer only after it did.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Context } from './context.js';
import type { Piece } from './fmlink.js';
import type { PoolModel } from './model.js';
import { notFound, RedfishError } from './redfish.js';
import { type ConnectionDef, chunkId } from './store.js';
import { resourceRecord } from './translate.js';
import { chunkBody, connectionBody, FABRIC, paths } from './tree.js';

const MiB = 2 ** 20;
const link = {
  type: 'object',
  additionalProperties: false,
  required: ['@odata.id'],
  properties: { '@odata.id': { type: 'string', maxLength: 512 } },
};
const odataType = { type: 'string', maxLength: 128 };

const chunkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['MemoryChunkSizeMiB', 'AddressRangeOffsetMiB'],
  properties: {
    MemoryChunkSizeMiB: { type: 'integer', minimum: 1, maximum: 2 ** 33 },
    AddressRangeOffsetMiB: { type: 'integer', minimum: 0, maximum: 2 ** 33 },
    AddressRangeType: { enum: ['Volatile'] },
    Name: { type: 'string', maxLength: 64 },
    '@odata.type': odataType,
  },
} as const;

const connectionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ConnectionType', 'MemoryChunkInfo', 'Links'],
  properties: {
    ConnectionType: { enum: ['Memory'] },
    Name: { type: 'string', maxLength: 64 },
    '@odata.type': odataType,
    MemoryChunkInfo: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['MemoryChunk'],
        properties: {
          MemoryChunk: link,
          AccessCapabilities: { type: 'array', maxItems: 2, items: { enum: ['Read', 'Write'] } },
          AccessState: { type: 'string', maxLength: 32 },
        },
      },
    },
    Links: {
      type: 'object',
      additionalProperties: false,
      required: ['InitiatorEndpoints'],
      properties: {
        InitiatorEndpoints: { type: 'array', minItems: 1, maxItems: 64, items: link },
        'InitiatorEndpoints@odata.count': { type: 'integer' },
      },
    },
  },
} as const;

interface ChunkBody {
  MemoryChunkSizeMiB: number;
  AddressRangeOffsetMiB: number;
}

interface ConnectionBody {
  MemoryChunkInfo: { MemoryChunk: { '@odata.id': string } }[];
  Links: { InitiatorEndpoints: { '@odata.id': string }[] };
}

const bad = (message: string, args: string[] = []) =>
  new RedfishError(400, 'PropertyValueIncorrect', message, args, 'Correct the request body and resubmit.');
const trim = (u: string) => (u.length > 1 && u.endsWith('/') ? u.slice(0, -1) : u);

function defineChunk(ctx: Context, body: ChunkBody): { id: string; status: number } {
  const m = ctx.model();
  const { capacityBytes, blockBytes } = m.snap.status;
  const offset = body.AddressRangeOffsetMiB * MiB;
  const size = body.MemoryChunkSizeMiB * MiB;
  if (size % blockBytes !== 0 || offset % blockBytes !== 0) {
    throw bad(`MemoryChunkSizeMiB and AddressRangeOffsetMiB must be multiples of the pool's ${blockBytes / MiB} MiB block.`, [
      String(body.MemoryChunkSizeMiB),
      String(body.AddressRangeOffsetMiB),
    ]);
  }
  if (offset + size > capacityBytes) {
    throw new RedfishError(
      400,
      'PropertyValueOutOfRange',
      `The chunk ${offset / MiB}..${(offset + size) / MiB} MiB lies outside the ${capacityBytes / MiB} MiB pool.`,
      [String(body.AddressRangeOffsetMiB)],
      'Choose a range inside the pool.',
    );
  }
  for (const [id, c] of ctx.store.chunks) {
    if (c.offset < offset + size && offset < c.offset + c.size && !(c.offset === offset && c.size === size)) {
      throw new RedfishError(
        409,
        'ResourceInUse',
        `The chunk overlaps memory chunk ${id}; chunks do not overlap.`,
        [id],
        'Choose a free range.',
      );
    }
  }
  const id = chunkId(offset, size);
  if (ctx.store.chunk(id)) return { id, status: 200 };
  // A range some head already holds keeps its tag, so a shared add to another head joins it.
  const held = m.holdings.find((h) => h.offset === offset && h.len === size && h.tag);
  ctx.store.addChunk(offset, size, held?.tag ?? randomUUID());
  if (!m.chunks.has(id)) ctx.hub.publish([resourceRecord('ResourceCreated', paths.chunk(ctx.pool, id))]);
  return { id, status: 201 };
}

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

async function connect(ctx: Context, body: ConnectionBody): Promise<ConnectionDef> {
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
  return def;
}

async function disconnect(ctx: Context, id: string): Promise<void> {
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

export function registerCapacity(app: FastifyInstance, ctx: Context): void {
  const chunks = paths.chunks(ctx.pool);
  app.post(chunks, { schema: { body: chunkSchema } }, async (req, reply) => {
    const { id, status } = defineChunk(ctx, req.body as ChunkBody);
    const m = ctx.model();
    const c = m.chunks.get(id);
    if (!c) throw notFound(paths.chunk(ctx.pool, id));
    reply.code(status).header('Location', paths.chunk(ctx.pool, id));
    return chunkBody(m, ctx.pool, c);
  });

  app.delete(`${chunks}/:id`, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const m = ctx.model();
    const c = m.chunks.get(id);
    if (!c) throw notFound(paths.chunk(ctx.pool, id));
    if (c.origin !== 'defined' || m.holdersOf(c.offset, c.size).length > 0) {
      throw new RedfishError(
        409,
        'ResourceInUse',
        `Memory chunk ${id} is held by a head${c.origin === 'defined' ? '' : ' (it exists because of that holding)'}; delete its connections first.`,
        [id],
        'DELETE the connections that use it.',
      );
    }
    ctx.store.removeChunk(id);
    ctx.hub.publish([resourceRecord('ResourceRemoved', paths.chunk(ctx.pool, id))]);
    reply.code(204);
  });

  app.post(`${FABRIC}/Connections`, { schema: { body: connectionSchema } }, async (req, reply) => {
    const def = await connect(ctx, req.body as ConnectionBody);
    reply.code(201).header('Location', paths.connection(def.id));
    // From what was just made: every add answered Success, so it is active on all its heads.
    return connectionBody(ctx.pool, {
      id: def.id,
      origin: 'redfish',
      chunks: def.chunks,
      heads: def.heads,
      shared: def.shared,
      state: 'active',
      def,
    });
  });

  app.delete(`${FABRIC}/Connections/:id`, async (req, reply) => {
    await disconnect(ctx, (req.params as { id: string }).id);
    reply.code(204);
  });
}
