// Push events (EventService subscriptions) on the in-process northbound,
// delivered over real loopback HTTP to destinations of test/helpers/
// destination.ts: create/read/change/delete, persistence across a restart,
// filters, order, retries and suspension, destinations that are down, slow
// or answer 500, SSE streams as EventDestinations, SubmitTestEvent, and who
// may do what.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NO_FILTERS } from '../../src/http/subscriptions.js';
import { type Destination, destination } from '../helpers/destination.js';
import { BASIC, connectChunk, fakeNorthbound, sse } from '../helpers/northbound.js';

const SUBS = '/redfish/v1/EventService/Subscriptions';
const CONNS = '/redfish/v1/Fabrics/CXL/Connections';
const admin = { authorization: BASIC };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const reader = basic('reader', 'read only');
const ep = (h: number) => ({ '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/head${h}` });

type Nb = Awaited<ReturnType<typeof fakeNorthbound>>['nb'];

async function subscribe(nb: Nb, d: Destination, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await nb.app.inject({
    method: 'POST',
    url: SUBS,
    headers: admin,
    payload: { Destination: d.url, Protocol: 'Redfish', ...extra },
  });
  expect(r.statusCode, r.body).toBe(201);
  return r.headers.location as string;
}

/** A chunk connected to a head over Redfish: one 5604h, answered Success. */
const connect = async (nb: Nb, offsetMiB: number, head: number) => (await connectChunk(nb, offsetMiB, [head])).status;

const ids = (d: Destination) => d.received.flatMap((r) => r.body.Events.map((e) => e.MessageId));

describe('push subscriptions', () => {
  it('POST creates an EventDestination that gets every event in order with its Context, and survives a restart', async () => {
    const first = await fakeNorthbound();
    const d = await destination();
    const loc = await subscribe(first.nb, d, { Context: 'fm-above', HttpHeaders: [{ 'X-Token': 'secret-header' }] });
    const got = (await first.nb.app.inject({ url: loc, headers: admin })).json();
    expect(got).toMatchObject({
      '@odata.type': '#EventDestination.v1_16_0.EventDestination',
      Destination: d.url,
      Context: 'fm-above',
      Protocol: 'Redfish',
      SubscriptionType: 'RedfishEvent',
      DeliveryRetryPolicy: 'SuspendRetries',
      HttpHeaders: [],
      Status: { State: 'Enabled' },
    });
    const list = (await first.nb.app.inject({ url: SUBS, headers: admin })).json();
    expect(list.Members).toEqual([{ '@odata.id': loc }]);
    for (let h = 0; h < 3; h++) first.emit({ kind: 'head-detached', head: h, pid: 1000 + h, reason: `r${h}` });
    const three = await d.waitFor(3);
    expect(three.map((r) => r.body.Events[0]?.MessageArgs)).toEqual([
      ['0', 'r0'],
      ['1', 'r1'],
      ['2', 'r2'],
    ]);
    expect(three.every((r) => r.body.Context === 'fm-above' && r.headers['x-token'] === 'secret-header')).toBe(true);
    const uuid = (await first.nb.app.inject({ url: '/redfish/v1/' })).json().UUID;
    const fabricUuid = (await first.nb.app.inject({ url: '/redfish/v1/Fabrics/CXL', headers: admin })).json().UUID;
    await first.nb.close();
    const file = join(first.dir, 'subscriptions.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The header's value is kept to send, never shown.
    expect(readFileSync(file, 'utf8')).toContain('secret-header');
    const second = await fakeNorthbound({ dir: first.dir });
    expect((await second.nb.app.inject({ url: loc, headers: admin })).json()).toMatchObject({ Destination: d.url, Context: 'fm-above' });
    expect((await second.nb.app.inject({ url: '/redfish/v1/' })).json().UUID).toBe(uuid);
    expect((await second.nb.app.inject({ url: '/redfish/v1/Fabrics/CXL', headers: admin })).json().UUID).toBe(fabricUuid);
    second.emit({ kind: 'lease-acquired', head: 1, epoch: 2 });
    const after = await d.waitFor(4);
    expect(after[3]?.body.Events[0]?.MessageId).toBe('CxlMhd.1.0.LeaseAcquired');
    expect((await second.nb.app.inject({ method: 'DELETE', url: loc, headers: admin })).statusCode).toBe(204);
    expect((await second.nb.app.inject({ url: loc, headers: admin })).statusCode).toBe(404);
  });

  it('filters by RegistryPrefixes, ResourceTypes and OriginResources (with SubordinateResources)', async () => {
    const { nb } = await fakeNorthbound();
    const [fabric, conns, head2, chassisTree] = [await destination(), await destination(), await destination(), await destination()];
    await subscribe(nb, fabric, { RegistryPrefixes: ['Fabric'] });
    await subscribe(nb, conns, { ResourceTypes: ['Connection'] });
    await subscribe(nb, head2, { OriginResources: [ep(2)] });
    await subscribe(nb, chassisTree, {
      OriginResources: [{ '@odata.id': '/redfish/v1/Chassis/fakepool' }],
      SubordinateResources: true,
      RegistryPrefixes: ['ResourceEvent'],
    });
    expect(await connect(nb, 512, 2)).toBe(201);
    await Promise.all([fabric.waitFor(1), conns.waitFor(1), head2.waitFor(1), chassisTree.waitFor(2)]);
    await nb.ctx.events.delivery.idle();
    expect(ids(fabric)).toEqual(['Fabric.1.0.ConnectionCreated']);
    expect(fabric.received[0]?.body.Events[0]?.OriginOfCondition['@odata.id']).toBe(`${CONNS}/c1`);
    expect(ids(conns)).toEqual(['CxlMhd.1.0.CapacityAdded', 'ResourceEvent.1.4.ResourceCreated', 'Fabric.1.0.ConnectionCreated']);
    expect(ids(head2)).toEqual(['ResourceEvent.1.4.ResourceChanged']);
    // The chunk (created, then changed) and the LD under the Chassis, and the Chassis itself; nothing of the fabric.
    const origins = chassisTree.received.flatMap((r) => r.body.Events.map((e) => e.OriginOfCondition['@odata.id']));
    expect(origins.every((o) => o.startsWith('/redfish/v1/Chassis/fakepool'))).toBe(true);
    expect(origins).toContain('/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/2');
  });

  it('a destination that is down, slow or answers 500 delays neither FM operations nor other subscribers; retries run out into Disabled, PATCH re-enables', async () => {
    const { nb, fake } = await fakeNorthbound();
    await nb.app.inject({
      method: 'PATCH',
      url: '/redfish/v1/EventService',
      headers: admin,
      payload: { DeliveryRetryAttempts: 2, DeliveryRetryIntervalSeconds: 0 },
    });
    const [good, slow, failing, dead] = [await destination(), await destination(), await destination(), await destination()];
    slow.mode = 'hold';
    failing.mode = 'fail';
    const failingLoc = await subscribe(nb, failing);
    const deadLoc = await subscribe(nb, dead);
    await dead.down();
    await subscribe(nb, slow);
    await subscribe(nb, good);
    // The FM operation completes and the good subscriber has its event while the slow one still holds the first POST.
    expect(await connect(nb, 512, 1)).toBe(201);
    expect(fake.extents.get(1)?.length).toBe(1);
    await good.waitFor(2);
    expect(slow.held()).toBe(1);
    expect(await connect(nb, 1024, 2)).toBe(201);
    await good.waitFor(4);
    expect(slow.received.length).toBe(1);
    // Retries ran out: one try and two retries for the first event, then suspended.
    await expect.poll(async () => (await nb.app.inject({ url: failingLoc, headers: admin })).json().Status.State).toBe('Disabled');
    expect(failing.attempts).toBe(3);
    expect((await nb.app.inject({ url: deadLoc, headers: admin })).json().Status).toEqual({ State: 'Disabled', Health: 'Warning' });
    // The slow one gets everything, in order, once it answers.
    slow.mode = 'ok';
    slow.release();
    await slow.waitFor(4);
    expect(slow.received.map((r) => Number(r.body.Id))).toEqual(good.received.map((r) => Number(r.body.Id)));
    // Re-enabled by PATCH, the failing one gets the next event, not the ones it missed.
    failing.mode = 'ok';
    const re = await nb.app.inject({ method: 'PATCH', url: failingLoc, headers: admin, payload: { Status: { State: 'Enabled' } } });
    expect(re.json().Status.State).toBe('Enabled');
    const missed = failing.attempts;
    nb.ctx.hub.publish([
      {
        EventType: 'Other',
        MessageId: 'CxlMhd.1.0.LeaseAcquired',
        Message: 'x',
        MessageArgs: [],
        MessageSeverity: 'OK',
        OriginOfCondition: { '@odata.id': '/redfish/v1/Chassis/fakepool' },
      },
    ]);
    await failing.waitFor(1);
    expect(failing.attempts).toBe(missed + 1);
    expect(failing.received[0]?.body.Events[0]?.MessageId).toBe('CxlMhd.1.0.LeaseAcquired');
  });

  it('keeps order through a failed attempt; TerminateAfterRetries deletes; Suspend/Resume actions', async () => {
    const { nb, emit } = await fakeNorthbound();
    await nb.app.inject({
      method: 'PATCH',
      url: '/redfish/v1/EventService',
      headers: admin,
      payload: { DeliveryRetryAttempts: 2, DeliveryRetryIntervalSeconds: 0 },
    });
    const d = await destination();
    await subscribe(nb, d, { RegistryPrefixes: ['CxlMhd'] });
    // The first event fails twice, then goes through on its last retry; the two behind it wait.
    d.failNext = 2;
    for (let h = 0; h < 3; h++) emit({ kind: 'head-refused', head: h, pid: 1, reason: `n${h}` });
    const got = await d.waitFor(3);
    expect(d.attempts).toBe(5);
    expect(got.map((r) => r.body.Events[0]?.MessageArgs[1])).toEqual(['n0', 'n1', 'n2']);
    const gone = await destination();
    gone.mode = 'fail';
    const loc = await subscribe(nb, gone, { DeliveryRetryPolicy: 'TerminateAfterRetries' });
    emit({ kind: 'head-refused', head: 0, pid: 1, reason: 'x' });
    await expect.poll(async () => (await nb.app.inject({ url: loc, headers: admin })).statusCode).toBe(404);
    const s = await subscribe(nb, await destination());
    expect(
      (await nb.app.inject({ method: 'POST', url: `${s}/Actions/EventDestination.SuspendSubscription`, headers: admin, payload: {} }))
        .statusCode,
    ).toBe(204);
    expect((await nb.app.inject({ url: s, headers: admin })).json().Status.State).toBe('Disabled');
    expect(
      (await nb.app.inject({ method: 'POST', url: `${s}/Actions/EventDestination.ResumeSubscription`, headers: admin, payload: {} }))
        .statusCode,
    ).toBe(204);
    expect((await nb.app.inject({ url: s, headers: admin })).json().Status.State).toBe('Enabled');
  });

  it('SubmitTestEvent reaches push destinations and SSE streams', async () => {
    const { nb } = await fakeNorthbound();
    const url = await nb.listen('127.0.0.1', 0);
    const d = await destination();
    await subscribe(nb, d, { Context: 'ctx-1' });
    const stream = await sse(`${url}/redfish/v1/EventService/SSE`, admin);
    const r = await nb.app.inject({
      method: 'POST',
      url: '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent',
      headers: admin,
      payload: { MessageId: 'ResourceEvent.1.4.ResourceChanged', OriginOfCondition: '/redfish/v1/Fabrics/CXL', MessageArgs: [] },
    });
    expect(r.statusCode).toBe(204);
    const [got] = await d.waitFor(1);
    expect(got?.body).toMatchObject({
      Context: 'ctx-1',
      Events: [{ MessageId: 'ResourceEvent.1.4.ResourceChanged', OriginOfCondition: { '@odata.id': '/redfish/v1/Fabrics/CXL' } }],
    });
    const [frame] = await stream.next(1);
    expect(frame).toContain('ResourceEvent.1.4.ResourceChanged');
    stream.close();
  });

  it('an SSE stream is an EventDestination while open; deleting it ends the stream', async () => {
    const { nb } = await fakeNorthbound();
    const url = await nb.listen('127.0.0.1', 0);
    const a = await sse(`${url}/redfish/v1/EventService/SSE`, admin);
    const b = await sse(`${url}/redfish/v1/EventService/SSE`, admin);
    const members = async () =>
      (await nb.app.inject({ url: SUBS, headers: admin })).json().Members.map((m: { '@odata.id': string }) => m['@odata.id']);
    const two = await members();
    expect(two).toHaveLength(2);
    const first = (await nb.app.inject({ url: two[0], headers: admin })).json();
    expect(first).toMatchObject({ SubscriptionType: 'SSE', Protocol: 'Redfish', Status: { State: 'Enabled' } });
    expect((await nb.app.inject({ method: 'DELETE', url: two[0], headers: admin })).statusCode).toBe(204);
    await a.ended;
    b.close();
    await b.ended;
    await expect.poll(members).toEqual([]);
  });

  it('refuses bad subscriptions with one Redfish error each, and ReadOnly users may change only what they own', async () => {
    const { nb } = await fakeNorthbound();
    const bad = async (payload: Record<string, unknown>) => {
      const r = await nb.app.inject({ method: 'POST', url: SUBS, headers: admin, payload });
      return [r.statusCode, r.json().error['@Message.ExtendedInfo'][0].MessageId];
    };
    expect(await bad({ Destination: 'ftp://x/y', Protocol: 'Redfish' })).toEqual([400, 'Base.1.22.PropertyValueFormatError']);
    expect(await bad({ Destination: 'http://u:p@127.0.0.1:1/', Protocol: 'Redfish' })).toEqual([400, 'Base.1.22.PropertyValueFormatError']);
    expect(await bad({ Destination: 'not a url', Protocol: 'Redfish' })).toEqual([400, 'Base.1.22.PropertyValueFormatError']);
    expect(await bad({ Destination: 'http://127.0.0.1:1/', Protocol: 'Redfish', RegistryPrefixes: ['Nope'] })).toEqual([
      400,
      'Base.1.22.PropertyValueNotInList',
    ]);
    expect(await bad({ Destination: 'http://127.0.0.1:1/' })).toEqual([400, 'Base.1.22.PropertyMissing']);
    expect(await bad({ Destination: 'http://127.0.0.1:1/', Protocol: 'SNMPv2c' })).toEqual([400, 'Base.1.22.PropertyValueIncorrect']);
    const d = await destination();
    const denied = await nb.app.inject({
      method: 'POST',
      url: SUBS,
      headers: reader,
      payload: { Destination: d.url, Protocol: 'Redfish' },
    });
    expect(denied.statusCode).toBe(403);
    const adminSub = await subscribe(nb, d);
    for (const [method, url, payload] of [
      ['PATCH', adminSub, { Context: 'mine now' }],
      ['DELETE', adminSub, undefined],
      ['PATCH', '/redfish/v1/EventService', { DeliveryRetryAttempts: 0 }],
      ['POST', '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent', { MessageId: 'ResourceEvent.1.4.ResourceChanged' }],
    ] as const) {
      const r = await nb.app.inject({ method, url, headers: reader, ...(payload ? { payload } : {}) });
      expect([method, url, r.statusCode]).toEqual([method, url, 403]);
    }
    // The aggregator's own subscription: its owner (ReadOnly) may set the Context.
    nb.ctx.events.subs.add({
      id: 'SunfishServer',
      destination: d.url,
      context: '',
      ...NO_FILTERS,
      retryPolicy: 'SuspendRetries',
      owner: 'reader',
    });
    const own = await nb.app.inject({ method: 'PATCH', url: `${SUBS}/SunfishServer`, headers: reader, payload: { Context: 'agg-id' } });
    expect(own.statusCode).toBe(200);
    expect(own.json().Context).toBe('agg-id');
    expect((await nb.app.inject({ url: `${SUBS}/SunfishServer`, headers: reader })).json().Context).toBe('agg-id');
  });
});
