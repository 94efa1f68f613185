// The Redfish resource bodies of one pool: ServiceRoot, Chassis with its
// MemoryDomain, MemoryChunks, PCIeDevice and CXL logical devices, and the
// CXL fabric with its endpoints and connections. Pure functions of the
// PoolModel; routes.ts serves them.
import type { ChunkView, ConnectionView, PoolModel } from './model.js';
import { collection, link, notFound, odata, ROOT } from './redfish.js';

const MiB = 2 ** 20;
export const FABRIC = `${ROOT}/Fabrics/CXL`;

export const paths = {
  chassis: (pool: string) => `${ROOT}/Chassis/${pool}`,
  domain: (pool: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}`,
  chunks: (pool: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks`,
  chunk: (pool: string, id: string) => `${ROOT}/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks/${id}`,
  pcie: (pool: string) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}`,
  ld: (pool: string, head: number) => `${ROOT}/Chassis/${pool}/PCIeDevices/${pool}/CXLLogicalDevices/${head}`,
  endpoint: (head: number) => `${FABRIC}/Endpoints/head${head}`,
  connection: (id: string) => `${FABRIC}/Connections/${id}`,
};

export function serviceRoot(uuid: string): Record<string, unknown> {
  return {
    '@odata.id': `${ROOT}/`,
    '@odata.type': '#ServiceRoot.v1_17_0.ServiceRoot',
    Id: 'RootService',
    Name: 'cxl-mhd fabric manager',
    RedfishVersion: '1.20.0',
    UUID: uuid,
    Chassis: link(`${ROOT}/Chassis`),
    Fabrics: link(`${ROOT}/Fabrics`),
    EventService: link(`${ROOT}/EventService`),
    SessionService: link(`${ROOT}/SessionService`),
    Registries: link(`${ROOT}/Registries`),
    Links: { Sessions: link(`${ROOT}/SessionService/Sessions`) },
  };
}

export function chassis(m: PoolModel, pool: string, serial: string): Record<string, unknown> {
  const s = m.snap.status;
  return {
    ...odata(paths.chassis(pool), '#Chassis.v1_25_0.Chassis'),
    Name: `CXL multi-headed memory device ${pool}`,
    ChassisType: 'Module',
    Manufacturer: 'cxl-mhd',
    Model: 'emulated CXL MH-SLD',
    SerialNumber: serial,
    Status: { State: 'Enabled', Health: 'OK' },
    MemoryDomains: link(`${paths.chassis(pool)}/MemoryDomains`),
    PCIeDevices: link(`${paths.chassis(pool)}/PCIeDevices`),
    Oem: {
      CxlMhd: {
        CapacityBytes: s.capacityBytes,
        FreeBytes: s.freeBytes,
        BlockBytes: s.blockBytes,
        HeadCount: s.headCount,
        AttachedHeads: s.heads.filter((h) => h.attached).map((h) => h.id),
        FmldOwner: s.fmldOwner,
        LeaseEpoch: s.leaseEpoch,
      },
    },
  };
}

export function memoryDomain(m: PoolModel, pool: string): Record<string, unknown> {
  return {
    ...odata(paths.domain(pool), '#MemoryDomain.v1_5_0.MemoryDomain'),
    Name: `Pool ${pool}`,
    AllowsMemoryChunkCreation: true,
    AllowsBlockProvisioning: false,
    MemoryChunks: link(paths.chunks(pool)),
    Oem: { CxlMhd: { CapacityMiB: m.snap.status.capacityBytes / MiB, BlockMiB: m.snap.status.blockBytes / MiB } },
  };
}

export function chunkBody(m: PoolModel, pool: string, c: ChunkView): Record<string, unknown> {
  const holders = m.holdersOf(c.offset, c.size);
  return {
    ...odata(paths.chunk(pool, c.id), '#MemoryChunks.v1_6_0.MemoryChunks'),
    Name: `Pool range ${c.id}`,
    MemoryChunkSizeMiB: c.size / MiB,
    AddressRangeOffsetMiB: c.offset / MiB,
    AddressRangeType: 'Volatile',
    Status: { State: 'Enabled', Health: 'OK' },
    Oem: { CxlMhd: { Origin: c.origin, Tag: c.def?.tag ?? null, OffsetBytes: c.offset, SizeBytes: c.size, Holders: holders } },
  };
}

export function connectionBody(pool: string, c: ConnectionView): Record<string, unknown> {
  return {
    ...odata(paths.connection(c.id), '#Connection.v1_3_0.Connection'),
    Name: `Memory connection ${c.id}`,
    ConnectionType: 'Memory',
    // Quarantined: released, yet the head's guest may still reach it (docs/security.md).
    Status: { State: c.state === 'active' ? 'Enabled' : 'Disabled', Health: c.state === 'quarantined' ? 'Warning' : 'OK' },
    MemoryChunkInfo: c.chunks.map((id) => ({ MemoryChunk: link(paths.chunk(pool, id)), AccessCapabilities: ['Read', 'Write'] })),
    Links: { InitiatorEndpoints: c.heads.map((h) => link(paths.endpoint(h))), 'InitiatorEndpoints@odata.count': c.heads.length },
    Oem: { CxlMhd: { Origin: c.origin, Shared: c.shared, State: c.state } },
  };
}

export function endpointBody(m: PoolModel, pool: string, head: number): Record<string, unknown> {
  const r = m.snap.heads.find((x) => x.head === head);
  const st = m.snap.status.heads.find((x) => x.id === head);
  const attached = st?.attached === true;
  return {
    ...odata(paths.endpoint(head), '#Endpoint.v1_8_0.Endpoint'),
    Name: `Head ${head}`,
    EndpointProtocol: 'CXL',
    ConnectedEntities: [{ EntityRole: 'Initiator', EntityType: 'RootComplex' }],
    Status: { State: attached ? 'Enabled' : 'Absent', Health: r?.phase === 'refused' ? 'Warning' : 'OK' },
    Links: { ConnectedEntities: [link(paths.ld(pool, head))] },
    Oem: {
      CxlMhd: {
        Head: head,
        Attached: attached,
        Phase: r?.phase ?? 'detached',
        Reason: r?.reason ?? null,
        QemuPid: st?.pid ?? r?.pid ?? null,
        Delivery: r?.delivery ?? null,
        FmldOwner: m.snap.status.fmldOwner === head,
        GrantedBytes: st?.grantedBytes ?? 0,
        SharedBytes: st?.sharedBytes ?? 0,
      },
    },
  };
}

export function logicalDevice(m: PoolModel, pool: string, head: number): Record<string, unknown> {
  const st = m.snap.status.heads.find((x) => x.id === head);
  return {
    ...odata(paths.ld(pool, head), '#CXLLogicalDevice.v1_2_0.CXLLogicalDevice'),
    Name: `LD ${head} (behind head ${head})`,
    SemanticsSupported: ['CXLio', 'CXLmem'],
    MemorySizeMiB: (st?.grantedBytes ?? 0) / MiB,
    Status: { State: st?.attached ? 'Enabled' : 'StandbyOffline', Health: 'OK' },
    Links: { Endpoints: [link(paths.endpoint(head))] },
  };
}

/** GET bodies by URL for everything that is a pure function of the model. */
export function treeGet(url: string, m: PoolModel, pool: string, serial: string): Record<string, unknown> {
  const heads = Array.from({ length: m.snap.status.headCount }, (_, i) => i);
  const chassisPath = paths.chassis(pool);
  const fixed: Record<string, () => Record<string, unknown>> = {
    [`${ROOT}/Chassis`]: () => collection(`${ROOT}/Chassis`, '#ChassisCollection.ChassisCollection', 'Chassis', [chassisPath]),
    [chassisPath]: () => chassis(m, pool, serial),
    [`${chassisPath}/MemoryDomains`]: () =>
      collection(`${chassisPath}/MemoryDomains`, '#MemoryDomainCollection.MemoryDomainCollection', 'Memory domains', [paths.domain(pool)]),
    [paths.domain(pool)]: () => memoryDomain(m, pool),
    [paths.chunks(pool)]: () =>
      collection(
        paths.chunks(pool),
        '#MemoryChunksCollection.MemoryChunksCollection',
        'Memory chunks',
        [...m.chunks.values()].sort((a, b) => a.offset - b.offset || a.size - b.size).map((c) => paths.chunk(pool, c.id)),
      ),
    [`${chassisPath}/PCIeDevices`]: () =>
      collection(`${chassisPath}/PCIeDevices`, '#PCIeDeviceCollection.PCIeDeviceCollection', 'PCIe devices', [paths.pcie(pool)]),
    [paths.pcie(pool)]: () => ({
      ...odata(paths.pcie(pool), '#PCIeDevice.v1_14_0.PCIeDevice'),
      Name: `CXL MH-SLD ${pool}`,
      DeviceType: 'MultiFunction',
      SerialNumber: serial,
      CXLDevice: { DeviceType: 'Type3' },
      CXLLogicalDevices: link(`${paths.pcie(pool)}/CXLLogicalDevices`),
      Status: { State: 'Enabled', Health: 'OK' },
    }),
    [`${paths.pcie(pool)}/CXLLogicalDevices`]: () =>
      collection(
        `${paths.pcie(pool)}/CXLLogicalDevices`,
        '#CXLLogicalDeviceCollection.CXLLogicalDeviceCollection',
        'CXL logical devices',
        heads.map((h) => paths.ld(pool, h)),
      ),
    [`${ROOT}/Fabrics`]: () => collection(`${ROOT}/Fabrics`, '#FabricCollection.FabricCollection', 'Fabrics', [FABRIC]),
    [FABRIC]: () => ({
      ...odata(FABRIC, '#Fabric.v1_3_0.Fabric'),
      Name: `CXL fabric of pool ${pool}`,
      FabricType: 'CXL',
      Status: { State: 'Enabled', Health: 'OK' },
      Endpoints: link(`${FABRIC}/Endpoints`),
      Connections: link(`${FABRIC}/Connections`),
    }),
    [`${FABRIC}/Endpoints`]: () =>
      collection(`${FABRIC}/Endpoints`, '#EndpointCollection.EndpointCollection', 'Endpoints', heads.map(paths.endpoint)),
    [`${FABRIC}/Connections`]: () =>
      collection(
        `${FABRIC}/Connections`,
        '#ConnectionCollection.ConnectionCollection',
        'Connections',
        [...m.connections.keys()].map(paths.connection),
      ),
  };
  const f = fixed[url];
  if (f) return f();
  const chunkMatch = url.startsWith(`${paths.chunks(pool)}/`) ? m.chunks.get(url.slice(paths.chunks(pool).length + 1)) : undefined;
  if (chunkMatch) return chunkBody(m, pool, chunkMatch);
  const ld = new RegExp(`^${escapeRe(paths.pcie(pool))}/CXLLogicalDevices/(\\d+)$`).exec(url);
  if (ld && Number(ld[1]) < heads.length) return logicalDevice(m, pool, Number(ld[1]));
  const ep = new RegExp(`^${escapeRe(FABRIC)}/Endpoints/head(\\d+)$`).exec(url);
  if (ep && Number(ep[1]) < heads.length) return endpointBody(m, pool, Number(ep[1]));
  const conn = url.startsWith(`${FABRIC}/Connections/`) ? m.connections.get(url.slice(FABRIC.length + 13)) : undefined;
  if (conn) return connectionBody(pool, conn);
  throw notFound(url);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
