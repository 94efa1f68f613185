// Aggregated by a fabric manager above, with a real `serve --http
// --http-aggregator` and real QEMU heads: the small aggregator of
// test/helpers/aggregator.ts (the OFA Sunfish contract) is announced to,
// crawls with the ReadOnly account, and its mirror equals a fresh crawl
// after a capacity move, after heads are killed (their grants and windows
// go) and after the backend restarts under the running heads; nothing it
// stores holds the operator's password.
import { describe, expect, it } from 'vitest';
import { inSync, testAggregator } from '../helpers/aggregator.js';
import { RF_PASS, startRig } from '../helpers/northbound-qemu.js';
import { eventually, startBackend, status } from '../helpers/qemu.js';

describe('aggregated by a fabric manager above (real heads)', () => {
  it('announce, crawl, a capacity move, head kills and a backend restart: the mirror equals a fresh crawl each time', async () => {
    const agg = await testAggregator();
    const rig = await startRig('agg', { serveArgs: () => ['--http-aggregator', agg.url], extraUsers: 'aggregator:agg pass\n' });
    const pool = rig.pool.name;
    const roots = [`/redfish/v1/Chassis/${pool}`, '/redfish/v1/Fabrics/CXL'];
    const src = await inSync(agg, roots);
    expect(decodeURIComponent(new URL(src.hostName).username)).toBe('aggregator');
    expect(agg.mirror.get('/redfish/v1/Fabrics/CXL/Endpoints/head2')).toMatchObject({ Status: { State: 'Enabled' } });

    const rf = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${rig.url}${path}`, {
        method,
        headers: { authorization: rig.basic, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, body: (await r.text()) || '{}' };
    };
    const chunks = `/redfish/v1/Chassis/${pool}/MemoryDomains/${pool}/MemoryChunks`;
    expect((await rf('POST', chunks, { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 1024 })).status).toBe(201);
    const made = await rf('POST', '/redfish/v1/Fabrics/CXL/Connections', {
      ConnectionType: 'Memory',
      MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': `${chunks}/1024M-256M` } }],
      Links: { InitiatorEndpoints: [{ '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head1' }] },
    });
    expect(made.status, made.body).toBe(201);
    const conn = JSON.parse(made.body)['@odata.id'] as string;
    await inSync(agg, roots);
    expect(agg.mirror.get(conn)).toMatchObject({ ConnectionType: 'Memory' });

    // Head 1 (holding the connection and a static window) and head 2 are killed.
    await rig.vms[1]?.kill();
    await rig.vms[2]?.kill();
    await eventually(() => status(rig.pool).heads.filter((h) => h.attached).length === 1, 'heads 1 and 2 detached');
    await inSync(agg, roots);
    expect(agg.mirror.has(conn)).toBe(false);
    expect(agg.mirror.get('/redfish/v1/Fabrics/CXL/Endpoints/head2')).toMatchObject({ Status: { State: 'Absent' } });

    // The backend restarts under head 0, on the same address: no second announcement, the mirror catches up.
    const port = new URL(rig.url).port;
    await rig.backend.stop();
    const again = await startBackend(rig.pool, ['--http', `127.0.0.1:${port}`, '--http-users', rig.users, '--http-aggregator', agg.url]);
    await eventually(() => status(rig.pool).heads[0]?.attached, 'head 0 re-adopted');
    await inSync(agg, roots);
    expect(agg.sources.size).toBe(1);
    expect(agg.handled.filter((m) => m.endsWith('AggregationSourceDiscovered'))).toHaveLength(1);
    expect(agg.storedText().includes(RF_PASS) || agg.storedText().includes(encodeURIComponent(RF_PASS))).toBe(false);
    await again.stop();
  });
});
