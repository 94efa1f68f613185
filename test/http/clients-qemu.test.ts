// The northbound against a real backend with three real paused QEMU heads,
// driven by clients this project did not write: python3-sushy walks the
// tree; redfishtool and curl run docs/redfish.md's flow verbatim (chunk,
// connection → a hot-added cxl-type3 in QEMU, status, SSE, DELETE); then
// bad input, slowloris, a 1 MiB body and 1000 idle SSE clients each get an
// error or are cut off, nothing is claimed, and the heads keep being served.
// A connection made from MemoryRegionInfo gives head 1's tagged shared region
// to the DCD head too (the same tag and extent on all three heads).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { docBlocks, ldDevices, type NorthboundRig, RF_PASS, RF_USER, sh, startRig } from '../helpers/northbound-qemu.js';
import { cli, eventually, status } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function http(rig: NorthboundRig, method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
    const req = request(
      `${rig.url}${path}`,
      { method, headers: { authorization: rig.basic, 'content-type': 'application/json', ...headers } },
      (res) => {
        let b = '';
        res.on('data', (d) => {
          b += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const SUSHY = `
import json, sys, sushy
s = sushy.Sushy(sys.argv[1], username=sys.argv[2], password=sys.argv[3])
out = {'root': s.json['Name'], 'chassis': [], 'endpoints': []}
for c in s.get_chassis_collection().get_members():
    out['chassis'].append({'id': c.identity, 'type': str(c.chassis_type), 'serial': c.serial_number})
fab = s.get_fabric_collection().get_members()
out['fabrics'] = [f.identity for f in fab]
for e in fab[0].endpoints.get_members():
    out['endpoints'].append({'id': e.identity, 'protocol': e.json['EndpointProtocol'], 'oem': e.json['Oem']['CxlMhd']})
print(json.dumps(out))
`;

describe('Redfish northbound on real QEMU heads', () => {
  it('sushy walks the tree; the docs flow runs verbatim with redfishtool and curl; bad clients change nothing', async () => {
    const rig = await startRig();
    const blocks = docBlocks();
    expect([...blocks.keys()]).toEqual(['endpoint', 'define-chunk', 'connect', 'status', 'sse', 'disconnect', 'curl-shared']);

    const walk = spawnSync('/usr/bin/python3', ['-c', SUSHY, rig.url, RF_USER, RF_PASS], { encoding: 'utf8' });
    expect(walk.stderr).not.toMatch(/Traceback/);
    const w = JSON.parse(walk.stdout);
    expect(w.chassis).toEqual([{ id: rig.pool.name, type: 'ChassisType.MODULE', serial: expect.stringMatching(/^0x[0-9a-f]+$/) }]);
    expect(w.fabrics).toEqual(['CXL']);
    expect(w.endpoints.map((e: { id: string }) => e.id)).toEqual(['head0', 'head1', 'head2']);
    for (const [i, e] of w.endpoints.entries()) {
      expect(e.protocol).toBe('CXL');
      expect(e.oem).toMatchObject({ Attached: true, QemuPid: rig.vms[i]?.pid, FmldOwner: i === 0, Delivery: i === 2 ? 'dcd' : 'hotplug' });
    }

    const run = (name: string, extra: NodeJS.ProcessEnv = {}) => {
      const r = sh(blocks.get(name) as string, { ...rig.env, ...extra });
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    expect(JSON.parse(run('endpoint'))).toMatchObject({ Id: 'head1', Oem: { CxlMhd: { Attached: true } } });
    expect(JSON.parse(run('define-chunk'))).toMatchObject({ Id: '1024M-256M', MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 1024 });
    const conn = run('connect').trim();
    expect(conn).toBe('/redfish/v1/Fabrics/CXL/Connections/c1');
    // The FM-API really delivered it: QEMU has a hot-added cxl-type3 over exactly that pool range.
    expect(await ldDevices(rig.vms[1]!)).toEqual([{ id: 'cxl-mhd-ld-cxl-mhd-rp1', offset: GiB, size: 256 * MiB }]);
    const st = run('status');
    expect(st).toMatch(/grant 256M at pool offset 1073741824/);
    expect(st).toContain(`http: ${rig.url} (Redfish ${rig.url}/redfish/v1`);
    // The northbound's FM-API channel is in the daemon's process: --http alone opens no fm.sock.
    expect(st).toMatch(/users \S+\/users; chunks and connections \S+\/northbound.json; FM-API via in process/);
    expect(existsSync(join(rig.pool.runDir, rig.pool.name, 'fm.sock'))).toBe(false);
    expect(status(rig.pool).heads[1]?.grantedBytes).toBe(512 * MiB);
    expect(run('sse').trim()).toBe('"MessageId":"CxlMhd.1.0.CapacityAdded"');
    // `cxl-mhd events` on the terminal, from the run dir record.
    const ev = spawn('cxl-mhd', ['events', '--pool', rig.pool.name, '--last-event-id', '0'], { env: rig.env });
    let evOut = '';
    ev.stdout.on('data', (d) => {
      evOut += d;
    });
    await eventually(
      () => /CapacityAdded: 268435456 bytes at pool offset 1073741824 were added to head 1/.test(evOut),
      'cxl-mhd events to print the add',
    );
    expect(evOut).toMatch(/HeadAttached: Head 0 attached/);
    ev.kill();
    // Each block runs in its own shell here; in one shell CONN carries over from the connect step.
    run('disconnect', { CONN: conn });
    await eventually(async () => (await ldDevices(rig.vms[1]!)).length === 0, 'the LD to leave QEMU');
    await eventually(() => status(rig.pool).heads[1]?.grantedBytes === 256 * MiB, 'the grant to be freed');
    await eventually(
      async () => JSON.parse((await http(rig, 'GET', '/redfish/v1/Fabrics/CXL/Connections')).body).Members.length === 1,
      'c1 to go',
    );

    const shared = run('curl-shared');
    expect(shared).toMatch(/"Id":"1536M-256M"/);
    expect(shared).toMatch(/"Shared":true/);
    expect((await ldDevices(rig.vms[0]!)).map((d) => [d.offset, d.size])).toEqual([[1536 * MiB, 256 * MiB]]);
    expect((await ldDevices(rig.vms[1]!)).map((d) => [d.offset, d.size])).toEqual([[1536 * MiB, 256 * MiB]]);
    expect(status(rig.pool).heads.map((h) => h.sharedBytes)).toEqual([512 * MiB, 512 * MiB, 0]);

    // A connection from MemoryRegionInfo: head 1's tagged shared region given to head 2 (DCD) as well, by one
    // enable-shared 5604h with its tag; the backend then has the same tag and extent on all three heads.
    const LDS = `/redfish/v1/Chassis/${rig.pool.name}/PCIeDevices/${rig.pool.name}/CXLLogicalDevices`;
    const regions1 = JSON.parse((await http(rig, 'GET', `${LDS}/1/MemoryRegions`)).body).Members.map(
      (m: { '@odata.id': string }) => m['@odata.id'],
    );
    const tagged = regions1.find((u: string) => u.includes('/tag-')) as string;
    const tag = tagged.split('/tag-')[1] as string;
    const byRegion = await http(
      rig,
      'POST',
      '/redfish/v1/Fabrics/CXL/Connections',
      JSON.stringify({
        ConnectionType: 'Memory',
        MemoryRegionInfo: [{ MemoryRegion: { '@odata.id': tagged } }],
        Links: { InitiatorEndpoints: [{ '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head2' }] },
      }),
    );
    expect(byRegion.status, byRegion.body).toBe(201);
    expect(JSON.parse(byRegion.body).MemoryRegionInfo).toEqual([
      { MemoryRegion: { '@odata.id': `${LDS}/2/MemoryRegions/tag-${tag}` }, AccessCapabilities: ['Read', 'Write'] },
    ]);
    const grantsOf = (h: number) =>
      (status(rig.pool).heads[h] as unknown as { grants: { offset: number; len: number; tag: string; shared: boolean }[] }).grants
        .filter((g) => g.tag === tag)
        .map((g) => [g.offset, g.len, g.shared]);
    for (const h of [0, 1, 2]) expect(grantsOf(h), `head ${h}`).toEqual([[1536 * MiB, 256 * MiB, true]]);
    const r2 = JSON.parse((await http(rig, 'GET', `${LDS}/2/MemoryRegions/tag-${tag}`)).body);
    const r1 = JSON.parse((await http(rig, 'GET', tagged)).body);
    expect(r2.MemoryExtents).toEqual(r1.MemoryExtents);
    expect(r2.MemoryExtents[0]).toMatchObject({ Tag: tag, ExtentSizeMiB: 256 });

    // ---- bad clients ----------------------------------------------------------------
    const CHUNKS = `/redfish/v1/Chassis/${rig.pool.name}/MemoryDomains/${rig.pool.name}/MemoryChunks`;
    const connBody = (chunk: string, head: string) =>
      JSON.stringify({
        ConnectionType: 'Memory',
        MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': `${CHUNKS}/${chunk}` } }],
        Links: { InitiatorEndpoints: [{ '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/${head}` }] },
      });
    const bad: [string, string, string, number][] = [
      ['POST', CHUNKS, '{"MemoryChunkSizeMiB":256,', 400],
      ['POST', CHUNKS, '{"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":0,"Evil":true}', 400],
      ['POST', CHUNKS, '{"MemoryChunkSizeMiB":3,"AddressRangeOffsetMiB":0}', 400],
      ['POST', CHUNKS, '{"MemoryChunkSizeMiB":512,"AddressRangeOffsetMiB":1792}', 400],
      ['POST', '/redfish/v1/Fabrics/CXL/Connections', connBody('1536M-256M', 'head9'), 400],
      ['POST', '/redfish/v1/Fabrics/CXL/Connections', connBody('9M-2M', 'head1'), 400],
    ];
    for (const [method, path, body, code] of bad) {
      const r = await http(rig, method, path, body);
      expect(r.status, body).toBe(code);
      expect(JSON.parse(r.body).error['@Message.ExtendedInfo'][0].Message).toBeTruthy();
    }
    // A chunk of 2 MiB is fine for the pool, not for a hot-plug head's 256 MiB unit: the FM-API says Invalid Input.
    expect((await http(rig, 'POST', CHUNKS, '{"MemoryChunkSizeMiB":2,"AddressRangeOffsetMiB":1280}')).status).toBe(201);
    const unaligned = await http(rig, 'POST', '/redfish/v1/Fabrics/CXL/Connections', connBody('1280M-2M', 'head1'));
    expect(unaligned.status).toBe(400);
    expect(JSON.parse(unaligned.body).error.message).toMatch(/Invalid Input \(0x02\)/);
    // Head 1 holds 768M-256M exclusively: connecting head 2 to it is refused with Resources Exhausted.
    expect((await http(rig, 'POST', CHUNKS, '{"MemoryChunkSizeMiB":256,"AddressRangeOffsetMiB":768}')).status).toBe(201);
    const mine = await http(rig, 'POST', '/redfish/v1/Fabrics/CXL/Connections', connBody('768M-256M', 'head1'));
    expect(mine.status).toBe(201);
    const before = status(rig.pool);
    const clash = await http(rig, 'POST', '/redfish/v1/Fabrics/CXL/Connections', connBody('768M-256M', 'head2'));
    expect(clash.status, clash.body).toBe(409);
    expect(JSON.parse(clash.body).error.message).toMatch(/Resources Exhausted \(0x1d\)/);

    // A 1 MiB body: 413 or cut off, never read into memory.
    const big = await http(rig, 'POST', CHUNKS, `{"Name":"${'x'.repeat(MiB)}"}`).catch((e: Error) => ({
      status: -1,
      body: e.message,
      headers: {},
    }));
    expect([413, -1]).toContain(big.status);

    // Slowloris: a request head that never finishes is cut off.
    const [host, port] = rig.rf.split(':') as [string, string];
    const slow = connect(Number(port), host);
    slow.on('error', () => undefined);
    slow.write('GET /redfish/v1/Chassis HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.write('X-Slow: 1\r\n'), 500);
    await new Promise<void>((r) => slow.once('close', () => r()));
    clearInterval(drip);

    // 1000 idle SSE clients: up to the cap get streams, the rest a Redfish 503 or a closed socket.
    const floods: Socket[] = [];
    const answers: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = connect(Number(port), host);
      s.on('error', () => answers.push('error'));
      s.once('data', (d) => answers.push(d.toString('utf8').split('\r\n')[0] as string));
      s.write(`GET /redfish/v1/EventService/SSE HTTP/1.1\r\nHost: x\r\nAuthorization: ${rig.basic}\r\n\r\n`);
      floods.push(s);
    }
    await eventually(
      () => answers.length + floods.filter((s) => s.destroyed).length >= 1000,
      'every flood client to get an answer or be cut off',
      600,
    );
    const streams = answers.filter((a) => a === 'HTTP/1.1 200 OK').length;
    expect(streams).toBeLessThanOrEqual(64);
    expect(answers.filter((a) => a.startsWith('HTTP/1.1 503')).length + floods.filter((s) => s.destroyed).length).toBeGreaterThan(900);
    // The service still answers while the streams are open, and the heads are still served.
    expect((await http(rig, 'GET', '/redfish/v1/Fabrics/CXL/Endpoints/head2')).status).toBe(200);
    for (const s of floods) s.destroy();

    const after = status(rig.pool);
    expect(after.heads.map((h) => [h.attached, h.grantedBytes])).toEqual(before.heads.map((h) => [h.attached, h.grantedBytes]));
    expect(after.freeBytes).toBe(before.freeBytes);
    for (const vm of rig.vms) expect((await vm.monitor.execute<{ running: boolean }>('query-status')).running).toBe(true);
    // And capacity still moves.
    expect((await http(rig, 'DELETE', mine.headers.location as string)).status).toBe(204);
    await eventually(() => status(rig.pool).heads[1]?.grantedBytes === 512 * MiB, 'the 768M grant to be freed');
    expect(cli(['fsck', '--pool', rig.pool.name, ...rig.pool.dirArgs]).code).toBe(0);

    // A QEMU exit is published too, with the capacity it took along.
    let streamed = '';
    const stream = request(`${rig.url}/redfish/v1/EventService/SSE`, { headers: { authorization: rig.basic } }, (res) => {
      res.on('data', (d) => {
        streamed += d;
      });
    });
    stream.end();
    await eventually(() => streamed.includes('retry:'), 'the event stream to open');
    await rig.vms[0]!.kill();
    await eventually(
      () => streamed.includes('"MessageId":"CxlMhd.1.0.HeadDetached","Message":"Head 0 detached'),
      'HeadDetached for head 0',
    );
    await eventually(
      () => /CapacityReleased","Message":"268435456 bytes at pool offset 1610612736 were released from head 0 via qemu-exit/.test(streamed),
      'its shared grant released',
    );
    stream.destroy();
    await rig.backend.stop();
  });
});
