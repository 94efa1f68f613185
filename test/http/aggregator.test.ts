// Aggregated by a fabric manager above (the OFA Sunfish contract), on the
// in-process northbound against the small aggregator of
// test/helpers/aggregator.ts: announce, ConnectionMethod served at `//…`,
// Context PATCHed by the aggregator's ReadOnly account, trees crawled on
// ResourceCreated; then capacity moves, a head leaving and a restart of the
// service, after each of which the mirror equals a fresh crawl; and no
// password but the ReadOnly account's in what the aggregator stores. Real
// QEMU heads (head kills, a backend restart under running guests) are in
// aggregator-qemu.test.ts.
import { describe, expect, it } from 'vitest';
import { inSync as inSyncWith, type Source, type TestAggregator, testAggregator } from '../helpers/aggregator.js';
import { BASIC, connectChunk, fakeNorthbound, USERS } from '../helpers/northbound.js';

const ROOTS = ['/redfish/v1/Chassis/fakepool', '/redfish/v1/Fabrics/CXL'];
const CHUNKS = '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';
const admin = { authorization: BASIC };

const inSync = (agg: TestAggregator) => inSyncWith(agg, ROOTS);

describe('aggregated by a fabric manager above', () => {
  it('announces, is crawled with a ReadOnly account, and the mirror follows capacity moves, a head leaving and a restart', async () => {
    const agg = await testAggregator();
    const first = await fakeNorthbound();
    const { nb } = first;
    const url = await nb.listen('127.0.0.1', 0);
    nb.aggregateInto(agg.url, 'aggregator');
    await expect.poll(() => agg.sources.size, { timeout: 10_000 }).toBe(1);
    const src = [...agg.sources.values()][0] as Source;
    // The announcement named this service, the ReadOnly account in it, and the ConnectionMethod it serves.
    expect(new URL(src.hostName).origin).toBe(url);
    expect(decodeURIComponent(new URL(src.hostName).username)).toBe('aggregator');
    expect(src.connectionMethod).toMatchObject({
      ConnectionMethodType: 'Redfish',
      '@odata.id': '/redfish/v1/AggregationService/ConnectionMethods/CxlMhd',
    });
    const sub = (await nb.app.inject({ url: '/redfish/v1/EventService/Subscriptions/SunfishServer', headers: admin })).json();
    expect(sub).toMatchObject({ Context: src.id, Destination: `${agg.url}/EventListener`, Status: { State: 'Enabled' } });
    await inSync(agg);
    expect(agg.mirror.has('/redfish/v1/Fabrics/CXL/Endpoints/head2')).toBe(true);
    expect(agg.mirror.has('/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/2')).toBe(true);
    // The aggregator's account reads, but changes nothing else.
    const ro = { authorization: `Basic ${Buffer.from(`aggregator:${USERS.aggregator}`).toString('base64')}` };
    const denied = await nb.app.inject({
      method: 'POST',
      url: CHUNKS,
      headers: ro,
      payload: { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 512 },
    });
    expect(denied.statusCode).toBe(403);

    // Capacity moves: a chunk, a connection to head 2, a shared connection, then one released.
    expect((await connectChunk(nb, 512, [2])).status).toBe(201);
    await inSync(agg);
    expect(agg.mirror.get(`${CONNS}/c1`)).toMatchObject({ ConnectionType: 'Memory' });
    expect((await connectChunk(nb, 1024, [1, 2])).status).toBe(201);
    expect((await nb.app.inject({ method: 'DELETE', url: `${CONNS}/c1`, headers: admin })).statusCode).toBe(204);
    await inSync(agg);
    expect(agg.mirror.has(`${CONNS}/c1`)).toBe(false);
    expect(agg.mirror.has(`${CONNS}/c2`)).toBe(true);

    // A head leaves (its QEMU went away).
    first.attached.delete(0);
    first.emit({ kind: 'head-detached', head: 0, pid: 1000, reason: 'QEMU exited' });
    await inSync(agg);
    expect(agg.mirror.get('/redfish/v1/Fabrics/CXL/Endpoints/head0')).toMatchObject({ Status: { State: 'Absent' } });

    // The service restarts: no new announcement, the trees are pushed again, the mirror catches up.
    await nb.close();
    const second = await fakeNorthbound({ dir: first.dir });
    await second.nb.listen('127.0.0.1', Number(new URL(url).port));
    second.nb.aggregateInto(agg.url, 'aggregator');
    await inSync(agg);
    expect(agg.sources.size).toBe(1);
    expect(agg.handled.filter((m) => m.endsWith('AggregationSourceDiscovered'))).toHaveLength(1);
    // The restarted fake backend holds no grants: connection c2 is gone from the mirror too.
    expect(agg.mirror.has(`${CONNS}/c2`)).toBe(false);
    // The only failures the aggregator saw: reads cut off by the restart itself.
    expect(agg.errors.filter((e) => !/ECONNRESET|ECONNREFUSED|socket hang up/.test(e))).toEqual([]);

    // Nothing the aggregator stores holds a password but its own account's.
    const stored = agg.storedText();
    for (const [user, pass] of Object.entries(USERS)) {
      if (user !== 'aggregator') expect(stored.includes(pass) || stored.includes(encodeURIComponent(pass))).toBe(false);
    }
  });

  it('refuses to hand the aggregator an account that is not ReadOnly', async () => {
    const { nb } = await fakeNorthbound();
    await nb.listen('127.0.0.1', 0);
    expect(() => nb.aggregateInto('http://127.0.0.1:9', 'admin')).toThrow(/must have the ReadOnly role/);
  });
});
