// Two rules the Protocol Validator judges only when a failure happens during
// its run, which against this service none does (docs/redfish.md,
// "Conformance"): a POST the service refuses creates nothing and names no
// resource in `Location` (REQ_DATA_MOD_ERRORS), and a 500 is a Redfish
// extended error (RESP_STATUS_INTERNAL_SERVER_ERROR). Here the failures are
// made on purpose: bad requests on every POST route, and an FM backend that
// fails the way an unexpected internal error does.
import { describe, expect, it } from 'vitest';
import { BASIC, connect, fakeNorthbound, makeChunk } from '../helpers/northbound.js';

const auth = { authorization: BASIC };
const CHUNKS = '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';
const ep = (h: number) => ({ '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/head${h}` });

type Nb = Awaited<ReturnType<typeof fakeNorthbound>>['nb'];
const members = async (nb: Nb, url: string) => (await nb.app.inject({ url, headers: auth })).json()['Members@odata.count'] as number;

/** An extended error as DSP0266 §Error responses has it: JSON, `error.code`, `error.message`, messages with MessageSeverity. */
function expectExtendedError(r: { statusCode: number; headers: Record<string, unknown>; json: () => unknown }, what: string): void {
  expect(String(r.headers['content-type']), what).toMatch(/^application\/json/);
  const body = r.json() as {
    error?: { code?: string; message?: string; '@Message.ExtendedInfo'?: { MessageId: string; MessageSeverity?: string }[] };
  };
  expect(typeof body.error?.code, what).toBe('string');
  expect(typeof body.error?.message, what).toBe('string');
  const info = body.error?.['@Message.ExtendedInfo'] ?? [];
  expect(info.length, what).toBeGreaterThan(0);
  for (const m of info) expect(m.MessageSeverity, what).toMatch(/^(OK|Warning|Critical)$/);
}

describe('error rules', () => {
  it('a refused POST creates nothing and names no Location, on every POST route', async () => {
    const { nb } = await fakeNorthbound();
    const chunk = await makeChunk(nb, 1024);
    expect(chunk.statusCode).toBe(201);
    const collections = [
      '/redfish/v1/SessionService/Sessions',
      '/redfish/v1/AccountService/Accounts',
      '/redfish/v1/EventService/Subscriptions',
      CHUNKS,
      CONNS,
    ];
    const before = await Promise.all(collections.map((c) => members(nb, c)));
    const refused: [string, unknown, Record<string, string>][] = [
      ['/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: 'wrong' }, {}],
      ['/redfish/v1/SessionService/Sessions', { UserName: 'admin' }, {}],
      ['/redfish/v1/AccountService/Accounts', { UserName: 'nopass' }, auth],
      ['/redfish/v1/AccountService/Accounts', { UserName: 'admin', Password: 'a long enough one', RoleId: 'Operator' }, auth],
      ['/redfish/v1/AccountService/Accounts', { UserName: 'x y', Password: 'a long enough one', RoleId: 'NoSuchRole' }, auth],
      ['/redfish/v1/EventService/Subscriptions', { Destination: 'ftp://127.0.0.1/', Protocol: 'Redfish' }, auth],
      ['/redfish/v1/EventService/Subscriptions', { Destination: 'http://127.0.0.1:1/', Protocol: 'SNMPv2c' }, auth],
      [CHUNKS, { MemoryChunkSizeMiB: 3, AddressRangeOffsetMiB: 1024 }, auth],
      [CHUNKS, { MemoryChunkSizeMiB: 256, AddressRangeOffsetMiB: 1024 * 1024 }, auth],
      [
        CONNS,
        { ConnectionType: 'Memory', MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': '/nope' } }], Links: { InitiatorEndpoints: [ep(1)] } },
        auth,
      ],
      [
        CONNS,
        {
          ConnectionType: 'Memory',
          MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': chunk.headers.location } }],
          Links: { InitiatorEndpoints: [ep(7)] },
        },
        auth,
      ],
      [CONNS, { ConnectionType: 'Storage' }, auth],
      ['/redfish/v1/EventService/Actions/EventService.SubmitTestEvent', { EventType: 'NoSuchType', MessageId: 42 }, auth],
    ];
    for (const [url, payload, headers] of refused) {
      const r = await nb.app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
      const what = `POST ${url} ${JSON.stringify(payload)} → ${r.statusCode} ${r.body}`;
      expect(r.statusCode, what).toBeGreaterThanOrEqual(400);
      expect(r.statusCode, what).not.toBe(405);
      expect(r.headers.location, what).toBeUndefined();
      expectExtendedError(r, what);
    }
    expect(await Promise.all(collections.map((c) => members(nb, c)))).toEqual(before);
  });

  it('an internal failure answers 500 as an extended error, creates nothing, and the service goes on', async () => {
    const { nb, fake } = await fakeNorthbound();
    const chunk = await makeChunk(nb, 1024);
    const connectIt = () => connect(nb, chunk.headers.location as string, [1]);
    const before = await members(nb, CONNS); // the static windows' connections
    // Not an FM-API refusal: an exception the backend did not expect (the FM-API answers Internal Error).
    fake.failNext.set('initiateAdd', new TypeError('unexpected state'));
    const r = await connectIt();
    expect(r.statusCode, r.body).toBe(500);
    expect(r.headers.location).toBeUndefined();
    expectExtendedError(r, r.body);
    // The client learns nothing of the internals beyond that it was internal.
    expect(r.body).not.toMatch(/unexpected state|TypeError/);
    expect(await members(nb, CONNS)).toBe(before);
    // The same request once the backend is well again: created.
    const again = await connectIt();
    expect(again.statusCode, again.body).toBe(201);
    expect(await members(nb, CONNS)).toBe(before + 1);
  });
});
