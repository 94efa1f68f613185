// MemoryRegions of each head's LD (CXLLogicalDevice.v1_1+): one per grant,
// a static window (Static) or FM-API capacity (Dynamic: a hot-added LD or
// DCD extents, a tagged allocation being one region whatever its extents),
// whose MemoryExtents carry Tag and SequenceNumber as 5603h reports them.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../../context.js';
import type { PoolModel, RegionView } from '../../../model.js';
import { oem } from '../../../oem.js';
import { cleanPath, paths } from '../../../paths.js';
import { resource } from '../../../plugins/protocol.js';
import { collection, link, notFound, odata } from '../../../redfish.js';
import { chunkId } from '../../../store.js';
import { headParam } from '../head.js';

const MiB = 2 ** 20;
const ZERO_TAG = '00000000-0000-0000-0000-000000000000';

export function regionBody(m: PoolModel, pool: string, r: RegionView): Record<string, unknown> {
  const base = Math.min(...r.extents.map((e) => e.offset));
  const end = Math.max(...r.extents.map((e) => e.offset + e.len));
  const chunks = [...new Map(r.extents.map((e) => [chunkId(e.offset, e.len), e])).entries()];
  const releasing = r.extents.some((e) => e.state !== 'active');
  return {
    ...odata(paths.region(pool, r.head, r.id), 'MemoryRegion'),
    Name: r.kind === 'window' ? `Static window ${r.id.slice('window-'.length)}` : `Grant ${r.id}`,
    RegionType: r.kind === 'window' ? 'Static' : 'Dynamic',
    // Stable while the region exists (a head's regions never share a first block), so a mirror needs no event when others come and go.
    RegionNumber: base / m.snap.status.blockBytes,
    BlockSizeMiB: m.snap.status.blockBytes / MiB,
    RegionSizeMiB: (end - base) / MiB,
    RegionBaseOffsetMiB: base / MiB,
    ShareableRegion: r.extents.some((e) => e.shared),
    NonVolatileRegion: false,
    SanitizeOnRelease: false,
    ExtentsCount: r.kind === 'window' ? 0 : r.extents.length,
    MemoryExtents:
      r.kind === 'window'
        ? []
        : r.extents.map((e) => ({
            ExtentOffsetMiB: (e.offset - base) / MiB,
            ExtentSizeMiB: e.len / MiB,
            Tag: e.tag ?? ZERO_TAG,
            SequenceNumber: e.seq,
          })),
    MemoryChunks: chunks.map(([id, e]) => ({ ChunkOffsetMiB: (e.offset - base) / MiB, ChunkLink: link(paths.chunk(pool, id)) })),
    Status: { State: releasing ? 'Disabled' : 'Enabled', Health: 'OK' },
    Oem: oem('MemoryRegion', {
      Origin: r.kind === 'window' ? 'static-window' : 'grant',
      Delivery: r.kind === 'window' ? null : (r.extents[0]?.delivery ?? null),
      State: releasing ? 'releasing' : 'active',
    }),
  };
}

export const memoryRegionRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  resource(app, `${paths.lds(pool)}/:head/MemoryRegions`, {
    GET: {
      handler: async (req) => {
        const m = ctx.model();
        const head = headParam(m, (req.params as { head: string }).head);
        if (head === null) throw notFound(cleanPath(req.url));
        const members = m.regions(head).map((r) => paths.region(pool, head, r.id));
        return collection(paths.regions(pool, head), 'MemoryRegionCollection', `Memory regions of LD ${head}`, members);
      },
    },
  });
  resource(app, `${paths.lds(pool)}/:head/MemoryRegions/:id`, {
    GET: {
      handler: async (req) => {
        const m = ctx.model();
        const { head: text, id } = req.params as { head: string; id: string };
        const head = headParam(m, text);
        const regions = head === null ? [] : m.regions(head);
        const i = regions.findIndex((r) => r.id === id);
        if (head === null || i < 0) throw notFound(cleanPath(req.url));
        return regionBody(m, pool, regions[i] as RegionView);
      },
    },
  });
};
