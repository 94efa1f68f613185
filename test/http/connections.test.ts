// Connections made from MemoryRegionInfo (issue 17): another head's tagged
// shareable allocation given to more heads by one 5604h Enable Shared Access
// each, with the allocation's tag and all its extents; and the refusals
// (a static window, an untagged grant, an exclusive region, a head that
// already holds it, both or neither of MemoryChunkInfo/MemoryRegionInfo).
import { describe, expect, it } from 'vitest';
import type { AddRequest } from '../../src/fmapi/commands.js';
import { FmError, SelectionPolicy } from '../../src/fmapi/index.js';
import { REGION_BASE } from '../helpers/fmapi-backend.js';
import { BASIC, connectChunk, fakeNorthbound } from '../helpers/northbound.js';
import { checkPayload } from '../helpers/redfish-props.js';

const auth = { authorization: BASIC };
const MiB = 2 ** 20;
const ZERO = '00000000-0000-0000-0000-000000000000';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';
const LDS = '/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices';
const endpoint = (h: number) => ({ '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/head${h}` });
const region = (h: number, id: string) => ({ MemoryRegion: { '@odata.id': `${LDS}/${h}/MemoryRegions/${id}` } });

describe('Connection from MemoryRegionInfo', () => {
  it('gives a tagged shared region of head 1 to head 0: one enable-shared 5604h with its tag and every extent', async () => {
    const { nb, fake } = await fakeNorthbound();
    // A two-extent tagged shared allocation made straight over the FM-API (as an fm.sock client would).
    const tag = '6b9a0c0e-4f1d-4c3b-9d8e-0a1b2c3d4e5f';
    const extents = [
      { startDpa: REGION_BASE + 512 * MiB, len: 64 * MiB, tag, sharedSeq: 0 },
      { startDpa: REGION_BASE + 1024 * MiB, len: 32 * MiB, tag, sharedSeq: 1 },
    ];
    await fake.initiateAdd({ hostId: 1, selectionPolicy: SelectionPolicy.EnableSharedAccess, region: 0, length: 96 * MiB, tag, extents });
    const before = fake.calls.filter((c) => c.method === 'initiateAdd').length;
    const r = await nb.app.inject({
      method: 'POST',
      url: CONNS,
      headers: auth,
      payload: { ConnectionType: 'Memory', MemoryRegionInfo: [region(1, `tag-${tag}`)], Links: { InitiatorEndpoints: [endpoint(0)] } },
    });
    expect(r.statusCode, r.body).toBe(201);
    const adds = fake.calls.filter((c) => c.method === 'initiateAdd').slice(before);
    expect(adds.length).toBe(1);
    const req = adds[0]?.req as AddRequest;
    expect(req).toMatchObject({ hostId: 0, selectionPolicy: SelectionPolicy.EnableSharedAccess, tag });
    expect(req.extents.map((e) => [e.startDpa - REGION_BASE, e.len])).toEqual([
      [512 * MiB, 64 * MiB],
      [1024 * MiB, 32 * MiB],
    ]);
    // Head 0 now has the same region, extents, tag and sequence numbers as head 1.
    const mine = (await nb.app.inject({ url: `${LDS}/0/MemoryRegions/tag-${tag}`, headers: auth })).json();
    const theirs = (await nb.app.inject({ url: `${LDS}/1/MemoryRegions/tag-${tag}`, headers: auth })).json();
    expect(mine.MemoryExtents).toEqual(theirs.MemoryExtents);
    expect(mine.MemoryExtents.map((e: { Tag: string; SequenceNumber: number }) => [e.Tag, e.SequenceNumber])).toEqual([
      [tag, 0],
      [tag, 1],
    ]);
    expect(mine.ShareableRegion).toBe(true);
    // The connection: its chunks are the region's extents, its region on head 0 is named, the 201 body equals a GET.
    const made = r.json();
    const got = await nb.app.inject({ url: r.headers.location as string, headers: auth });
    expect(got.json()).toEqual(made);
    expect(checkPayload(made)).toEqual([]);
    expect(made.MemoryChunkInfo.map((c: { MemoryChunk: { '@odata.id': string } }) => c.MemoryChunk['@odata.id'].split('/').pop())).toEqual([
      '512M-64M',
      '1024M-32M',
    ]);
    expect(made.MemoryRegionInfo).toEqual([{ ...region(0, `tag-${tag}`), AccessCapabilities: ['Read', 'Write'] }]);
    expect(made.Links.InitiatorEndpoints).toEqual([endpoint(0)]);
    // DELETE takes it from head 0 only (5605h per extent); head 1 keeps the allocation.
    const del = await nb.app.inject({ method: 'DELETE', url: r.headers.location as string, headers: auth });
    expect(del.statusCode).toBe(204);
    expect(fake.extents.get(0) ?? []).toEqual([]);
    expect((fake.extents.get(1) ?? []).map((e) => e.tag)).toEqual([tag, tag]);
  });

  it('a region made by a Redfish connection of a chunk to two heads is given to the third', async () => {
    const { nb, fake } = await fakeNorthbound();
    expect((await connectChunk(nb, 1024, [1, 2])).status).toBe(201);
    const tag = (fake.extents.get(1) ?? [])[0]?.tag as string;
    const r = await nb.app.inject({
      method: 'POST',
      url: CONNS,
      headers: auth,
      payload: { ConnectionType: 'Memory', MemoryRegionInfo: [region(2, `tag-${tag}`)], Links: { InitiatorEndpoints: [endpoint(0)] } },
    });
    expect(r.statusCode, r.body).toBe(201);
    expect((fake.extents.get(0) ?? []).map((e) => [e.startDpa - REGION_BASE, e.len, e.tag])).toEqual([[1024 * MiB, 256 * MiB, tag]]);
    // Both connections list the same chunk; the chunk now has three holders.
    const chunk = (
      await nb.app.inject({ url: '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks/1024M-256M', headers: auth })
    ).json();
    expect(chunk.Oem.CxlMhd.Holders).toEqual([0, 1, 2]);
  });

  it('refuses what cannot be shared, one clear error each, and adds nothing', async () => {
    const { nb, fake } = await fakeNorthbound();
    expect((await connectChunk(nb, 1024, [1])).status).toBe(201); // exclusive: one head, prescriptive
    expect((await connectChunk(nb, 2048, [1, 2])).status).toBe(201); // shared
    const exclusive = (fake.extents.get(1) ?? [])[0]?.tag as string;
    const shared = (fake.extents.get(2) ?? [])[0]?.tag as string;
    await fake.initiateAdd({
      hostId: 2,
      selectionPolicy: SelectionPolicy.Prescriptive,
      region: 0,
      length: 2 * MiB,
      tag: ZERO,
      extents: [{ startDpa: REGION_BASE + 3072 * MiB, len: 2 * MiB, tag: ZERO, sharedSeq: 0 }],
    });
    const before = fake.calls.filter((c) => c.method === 'initiateAdd').length;
    const post = (payload: Record<string, unknown>) =>
      nb.app.inject({ method: 'POST', url: CONNS, headers: auth, payload: { ConnectionType: 'Memory', ...payload } });
    const cases: [Record<string, unknown>, number, string, RegExp][] = [
      [
        { MemoryRegionInfo: [region(1, 'window-0M-256M')], Links: { InitiatorEndpoints: [endpoint(0)] } },
        400,
        'PropertyValueIncorrect',
        /not a tagged allocation/,
      ],
      [
        { MemoryRegionInfo: [region(2, 'grant-3072M-2M')], Links: { InitiatorEndpoints: [endpoint(0)] } },
        400,
        'PropertyValueIncorrect',
        /not a tagged allocation/,
      ],
      [
        { MemoryRegionInfo: [region(1, `tag-${exclusive}`)], Links: { InitiatorEndpoints: [endpoint(0)] } },
        409,
        'ResourceInUse',
        /held exclusively by head 1/,
      ],
      [
        { MemoryRegionInfo: [region(1, `tag-${shared}`)], Links: { InitiatorEndpoints: [endpoint(2)] } },
        400,
        'PropertyValueIncorrect',
        /Head 2 already holds/,
      ],
      [
        { MemoryRegionInfo: [region(1, `tag-${shared}`), region(2, `tag-${shared}`)], Links: { InitiatorEndpoints: [endpoint(0)] } },
        400,
        'PropertyValueIncorrect',
        /one allocation twice/,
      ],
      [
        { MemoryRegionInfo: [region(0, `tag-${shared}`)], Links: { InitiatorEndpoints: [endpoint(0)] } },
        400,
        'ResourceMissingAtURI',
        /does not exist/,
      ],
      [
        { MemoryRegionInfo: [{ MemoryRegion: { '@odata.id': '/redfish/v1/Fabrics/CXL' } }], Links: { InitiatorEndpoints: [endpoint(0)] } },
        400,
        'ResourceMissingAtURI',
        /does not exist/,
      ],
      [
        {
          MemoryRegionInfo: [region(1, `tag-${shared}`)],
          MemoryChunkInfo: [
            { MemoryChunk: { '@odata.id': '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks/2048M-256M' } },
          ],
          Links: { InitiatorEndpoints: [endpoint(0)] },
        },
        400,
        'PropertyValueIncorrect',
        /not both/,
      ],
      [{ Links: { InitiatorEndpoints: [endpoint(0)] } }, 400, 'PropertyMissing', /MemoryChunkInfo \(or MemoryRegionInfo\)/],
      [
        {
          MemoryRegionInfo: [{ MemoryRegion: { '@odata.id': `${LDS}/1/MemoryRegions/tag-${shared}` }, Bogus: 1 }],
          Links: { InitiatorEndpoints: [endpoint(0)] },
        },
        400,
        'PropertyUnknown',
        /Bogus/,
      ],
    ];
    for (const [payload, status, id, text] of cases) {
      const r = await post(payload);
      expect(r.statusCode, JSON.stringify(payload)).toBe(status);
      const info = r.json().error['@Message.ExtendedInfo'][0];
      expect(info.MessageId, JSON.stringify(payload)).toBe(`Base.1.22.${id}`);
      expect(info.Message, JSON.stringify(payload)).toMatch(text);
    }
    expect(fake.calls.filter((c) => c.method === 'initiateAdd').length).toBe(before);
    expect(fake.extents.get(0) ?? []).toEqual([]);
    // Nothing half made either: the connections are the two from before (and the untagged grant's).
    const list = (await nb.app.inject({ url: CONNS, headers: auth })).json();
    expect(list.Members.map((m: { '@odata.id': string }) => m['@odata.id'].split('/').pop()).sort()).toEqual(
      ['c1', 'c2', 'grant-3072M-2M', 'window-0M-256M'].sort(),
    );
  });

  it('all or nothing: a second head refused by the FM-API releases the first', async () => {
    const { nb, fake } = await fakeNorthbound({ heads: 4 });
    expect((await connectChunk(nb, 1024, [1, 2])).status).toBe(201);
    const tag = (fake.extents.get(1) ?? [])[0]?.tag as string;
    const add = fake.initiateAdd.bind(fake);
    let n = 0;
    fake.initiateAdd = async (req) => {
      if (++n === 2) throw new FmError(0x1d, 'no room');
      await add(req);
    };
    const r = await nb.app.inject({
      method: 'POST',
      url: CONNS,
      headers: auth,
      payload: {
        ConnectionType: 'Memory',
        MemoryRegionInfo: [region(1, `tag-${tag}`)],
        Links: { InitiatorEndpoints: [endpoint(0), endpoint(3)] },
      },
    });
    expect(r.statusCode).toBe(409);
    expect(fake.extents.get(0) ?? []).toEqual([]);
    expect(fake.extents.get(3) ?? []).toEqual([]);
  });
});
