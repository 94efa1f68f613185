// The device as a Chassis: the chassis itself, its MemoryDomain (the pool),
// its PCIeDevice and one CXL logical device per head. The memory chunks
// live in ./memory-chunks.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import type { PoolModel } from '../../model.js';
import { oem } from '../../oem.js';
import { cleanPath, paths, ROOT } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, notFound, odata } from '../../redfish.js';
import { chunkId } from '../../store.js';
import { headParam } from './head.js';
import { memoryChunkRoutes } from './memory-chunks/index.js';
import { memoryRegionRoutes } from './memory-regions/index.js';

const MiB = 2 ** 20;

export function chassis(m: PoolModel, pool: string, serial: string, uuid: string): Record<string, unknown> {
  const s = m.snap.status;
  return {
    ...odata(paths.chassis(pool), 'Chassis'),
    Name: `CXL multi-headed memory device ${pool}`,
    ChassisType: 'Module',
    Manufacturer: 'cxl-mhd',
    Model: 'emulated CXL MH-SLD',
    SerialNumber: serial,
    UUID: uuid,
    Status: { State: 'Enabled', Health: 'OK' },
    MemoryDomains: link(`${paths.chassis(pool)}/MemoryDomains`),
    PCIeDevices: link(`${paths.chassis(pool)}/PCIeDevices`),
    Oem: oem('Chassis', {
      CapacityBytes: s.capacityBytes,
      FreeBytes: s.freeBytes,
      QuarantinedBytes: m.quarantinedBytes(),
      BlockBytes: s.blockBytes,
      HeadCount: s.headCount,
      AttachedHeads: s.heads.filter((h) => h.attached).map((h) => h.id),
      FmldOwner: s.fmldOwner,
      LeaseEpoch: s.leaseEpoch,
    }),
  };
}

export function memoryDomain(m: PoolModel, pool: string): Record<string, unknown> {
  return {
    ...odata(paths.domain(pool), 'MemoryDomain'),
    Name: `Pool ${pool}`,
    AllowsMemoryChunkCreation: true,
    AllowsBlockProvisioning: false,
    MemoryChunks: link(paths.chunks(pool)),
    Oem: oem('MemoryDomain', {
      CapacityMiB: m.snap.status.capacityBytes / MiB,
      BlockMiB: m.snap.status.blockBytes / MiB,
      // FM tag references (5606h): allocations kept while no head may hold them.
      ReferencedBytes: m.snap.status.referencedBytes ?? 0,
      ReferencedTags: (m.snap.status.references ?? []).map((r) => r.tag),
    }),
  };
}

function pcieDevice(pool: string, serial: string): Record<string, unknown> {
  return {
    ...odata(paths.pcie(pool), 'PCIeDevice'),
    Name: `CXL MH-SLD ${pool}`,
    DeviceType: 'MultiFunction',
    SerialNumber: serial,
    CXLDevice: { DeviceType: 'Type3' },
    CXLLogicalDevices: link(paths.lds(pool)),
    Status: { State: 'Enabled', Health: 'OK' },
  };
}

export function logicalDevice(m: PoolModel, pool: string, head: number): Record<string, unknown> {
  const st = m.snap.status.heads.find((x) => x.id === head);
  const chunks = [...new Set(m.holdings.filter((h) => h.head === head).map((h) => chunkId(h.offset, h.len)))];
  return {
    ...odata(paths.ld(pool, head), 'CXLLogicalDevice'),
    Name: `LD ${head} (behind head ${head})`,
    SemanticsSupported: ['CXLio', 'CXLmem'],
    MemorySizeMiB: (st?.grantedBytes ?? 0) / MiB,
    Status: { State: st?.attached ? 'Enabled' : 'StandbyOffline', Health: 'OK' },
    MemoryRegions: link(paths.regions(pool, head)),
    Links: {
      Endpoints: [link(paths.endpoint(head))],
      'Endpoints@odata.count': 1,
      MemoryChunks: chunks.map((c) => link(paths.chunk(pool, c))),
      'MemoryChunks@odata.count': chunks.length,
    },
  };
}

export const chassisRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const { pool } = ctx;
  const here = paths.chassis(pool);
  resource(app, `${ROOT}/Chassis`, {
    GET: { handler: async () => collection(`${ROOT}/Chassis`, 'ChassisCollection', 'Chassis', [here]) },
  });
  resource(app, here, { GET: { handler: async () => chassis(ctx.model(), pool, ctx.serial, ctx.events.subs.identity.chassis) } });
  resource(app, `${here}/MemoryDomains`, {
    GET: {
      handler: async () => collection(`${here}/MemoryDomains`, 'MemoryDomainCollection', 'Memory domains', [paths.domain(pool)]),
    },
  });
  resource(app, paths.domain(pool), { GET: { handler: async () => memoryDomain(ctx.model(), pool) } });
  resource(app, `${here}/PCIeDevices`, {
    GET: {
      handler: async () => collection(`${here}/PCIeDevices`, 'PCIeDeviceCollection', 'PCIe devices', [paths.pcie(pool)]),
    },
  });
  resource(app, paths.pcie(pool), { GET: { handler: async () => pcieDevice(pool, ctx.serial) } });
  resource(app, paths.lds(pool), {
    GET: {
      handler: async () => {
        const heads = Array.from({ length: ctx.model().snap.status.headCount }, (_, h) => paths.ld(pool, h));
        return collection(paths.lds(pool), 'CXLLogicalDeviceCollection', 'CXL logical devices', heads);
      },
    },
  });
  resource(app, `${paths.lds(pool)}/:head`, {
    GET: {
      handler: async (req) => {
        const m = ctx.model();
        const head = headParam(m, (req.params as { head: string }).head);
        if (head === null) throw notFound(cleanPath(req.url));
        return logicalDevice(m, pool, head);
      },
    },
  });
  await app.register(memoryChunkRoutes, { ctx });
  await app.register(memoryRegionRoutes, { ctx });
};
