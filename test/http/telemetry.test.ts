// The TelemetryService on the in-process northbound: reports made from a
// known pool state (every value equal to the Redfish property its
// MetricProperty names), delivery to SSE streams (after
// SubmitTestMetricReport and on the schedule) and to push destinations of
// EventFormatType MetricReport only, the schedule's PATCH, and who may
// change anything.
import { describe, expect, it } from 'vitest';
import { PoolModel } from '../../src/http/model.js';
import { Store } from '../../src/http/store.js';
import { parseDuration } from '../../src/http/telemetry.js';
import type { SnapshotView } from '../../src/http/types.js';
import { destination } from '../helpers/destination.js';
import { BASIC, connectChunk, fakeNorthbound, sse } from '../helpers/northbound.js';

const T = '/redfish/v1/TelemetryService';
const DEF = `${T}/MetricReportDefinitions/PoolUsage`;
const TEST_REPORT = `${T}/Actions/TelemetryService.SubmitTestMetricReport`;
const TEST_EVENT = '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent';
const SUBS = '/redfish/v1/EventService/Subscriptions';
const admin = { authorization: BASIC };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
const MiB = 2 ** 20;

type Nb = Awaited<ReturnType<typeof fakeNorthbound>>['nb'];
type Value = { MetricId: string; MetricValue: string; MetricProperty: string };

const testReport = (nb: Nb, name: string, headers: Record<string, string> = admin) =>
  nb.app.inject({
    method: 'POST',
    url: TEST_REPORT,
    headers,
    payload: {
      MetricReportName: name,
      GeneratedMetricReportValues: [
        { MetricId: 'PoolFreeBytes', MetricValue: '42', MetricDefinition: { '@odata.id': `${T}/MetricDefinitions/PoolFreeBytes` } },
      ],
    },
  });

/** The value a MetricProperty (a URI with a JSON pointer) names, read over Redfish. */
async function readProperty(nb: Nb, property: string): Promise<unknown> {
  const [uri, pointer] = property.split('#') as [string, string];
  const r = await nb.app.inject({ url: uri, headers: admin });
  expect(r.statusCode, uri).toBe(200);
  return pointer
    .split('/')
    .slice(1)
    .reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], r.json());
}

describe('TelemetryService', () => {
  it('PoolUsage reports the pool as it is: every value equals the property its MetricProperty names, per head where per head', async () => {
    const { nb } = await fakeNorthbound();
    expect((await nb.app.inject({ url: `${T}/MetricReports/PoolUsage`, headers: admin })).statusCode).toBe(404);
    // Before its first report the definition links none (a link must resolve); after it, the report.
    expect((await nb.app.inject({ url: DEF, headers: admin })).json().MetricReport).toBeUndefined();
    expect((await connectChunk(nb, 1024, [1])).status).toBe(201);
    const made = nb.ctx.telemetry.generate();
    expect((await nb.app.inject({ url: DEF, headers: admin })).json().MetricReport).toEqual({
      '@odata.id': `${T}/MetricReports/PoolUsage`,
    });
    const got = (await nb.app.inject({ url: `${T}/MetricReports/PoolUsage`, headers: admin })).json();
    expect(got).toEqual(made);
    expect(got).toMatchObject({
      '@odata.type': '#MetricReport.v1_5_2.MetricReport',
      MetricReportDefinition: { '@odata.id': DEF },
    });
    const values = got.MetricValues as Value[];
    // Six metrics: four of the pool, two per head of three heads.
    expect(values).toHaveLength(4 + 2 * 3);
    for (const v of values) {
      expect(String(await readProperty(nb, v.MetricProperty)), `${v.MetricId} ${v.MetricProperty}`).toBe(v.MetricValue);
      expect((await nb.app.inject({ url: `${T}/MetricDefinitions/${v.MetricId}`, headers: admin })).statusCode).toBe(200);
    }
    // Head 1 holds its 256 MiB static window and the 256 MiB chunk just connected; head 2 holds nothing.
    const granted = (h: number) =>
      values.find((v) => v.MetricId === 'HeadGrantedBytes' && v.MetricProperty.includes(`/Endpoints/head${h}#`))?.MetricValue;
    expect([granted(0), granted(1), granted(2)]).toEqual([256 * MiB, 512 * MiB, 0].map(String));
    expect(values.find((v) => v.MetricId === 'PoolCapacityBytes')?.MetricValue).toBe(String(4 * 2 ** 30));
    // The next report overwrites this one (ReportUpdates Overwrite).
    await connectChunk(nb, 2048, [2]);
    const next = nb.ctx.telemetry.generate();
    expect((await nb.app.inject({ url: `${T}/MetricReports/PoolUsage`, headers: admin })).json()).toEqual(next);
    expect(
      (next.MetricValues as Value[]).find((v) => v.MetricId === 'HeadGrantedBytes' && v.MetricProperty.includes('head2#'))?.MetricValue,
    ).toBe(String(256 * MiB));
    const list = (await nb.app.inject({ url: `${T}/MetricReports`, headers: admin })).json();
    expect(list.Members).toEqual([{ '@odata.id': `${T}/MetricReports/PoolUsage` }]);
  });

  it('quarantined bytes count each byte of the pool a head still holds after release once', () => {
    const grant = (offset: number, len: number, state: 'active' | 'quarantined') => ({
      offset,
      len,
      tag: 'a'.repeat(32),
      shared: true,
      state,
      delivery: 'dcd',
      seq: 0,
    });
    const head = (h: number, grants: ReturnType<typeof grant>[]) => ({
      head: h,
      phase: 'attached' as const,
      pid: 1,
      reason: null,
      since: '',
      windows: [],
      fmld: false,
      delivery: 'dcd',
      grants,
    });
    const snap = {
      status: { capacityBytes: 1024 * MiB, heads: [] },
      heads: [
        head(0, [grant(0, 64 * MiB, 'quarantined'), grant(128 * MiB, 64 * MiB, 'active')]),
        // Overlaps head 0's quarantined range by 32 MiB, and adds 32 MiB of its own.
        head(1, [grant(32 * MiB, 64 * MiB, 'quarantined')]),
      ],
    } as unknown as SnapshotView;
    expect(new PoolModel(snap, new Store(null)).quarantinedBytes()).toBe(96 * MiB);
  });

  it('an SSE stream gets MetricReports beside Events, each with its own id: after SubmitTestMetricReport and on the schedule', async () => {
    const { nb } = await fakeNorthbound();
    const url = await nb.listen('127.0.0.1', 0);
    const stream = await sse(`${url}/redfish/v1/EventService/SSE`, admin);
    expect(stream.status).toBe(200);
    expect((await testReport(nb, 'Probe')).statusCode).toBe(204);
    const ev = await nb.app.inject({ method: 'POST', url: TEST_EVENT, headers: admin, payload: { MessageId: 'CxlMhd.1.0.HeadAttached' } });
    expect(ev.statusCode).toBe(204);
    const patched = await nb.app.inject({
      method: 'PATCH',
      url: DEF,
      headers: admin,
      payload: { Schedule: { RecurrenceInterval: 'PT1S' } },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().Schedule).toEqual({ RecurrenceInterval: 'PT1S' });
    const frames = await stream.next(3);
    const parsed = frames.map((f) => ({ id: /^id: (\d+)$/m.exec(f)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? 'null') }));
    expect(parsed.map((p) => p.data['@odata.type'])).toEqual([
      '#MetricReport.v1_5_2.MetricReport',
      '#Event.v1_13_0.Event',
      '#MetricReport.v1_5_2.MetricReport',
    ]);
    // As given, less the link MetricReport 1.5 deprecates.
    expect(parsed[0]?.data).toMatchObject({ Id: 'Probe' });
    expect(parsed[0]?.data.MetricValues).toEqual([{ MetricId: 'PoolFreeBytes', MetricValue: '42', Timestamp: parsed[0]?.data.Timestamp }]);
    // The third came from the schedule: the PoolUsage report, now kept in MetricReports too.
    expect(parsed[2]?.data).toMatchObject({ Id: 'PoolUsage', MetricReportDefinition: { '@odata.id': DEF } });
    const ids = parsed.map((p) => Number(p.id));
    expect(new Set(ids).size).toBe(3);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const kept = (await nb.app.inject({ url: `${T}/MetricReports`, headers: admin })).json().Members;
    expect(kept.map((m: { '@odata.id': string }) => m['@odata.id'].split('/').pop()).sort()).toEqual(['PoolUsage', 'Probe']);
    stream.close();
  });

  it('push destinations: EventFormatType MetricReport gets reports (with its Context) and no Events; an Event one the reverse; a stuck one delays neither', async () => {
    const first = await fakeNorthbound();
    const reports = await destination();
    const events = await destination();
    const stuck = await destination();
    stuck.mode = 'hold';
    const sub = async (d: typeof reports, extra: Record<string, unknown>) => {
      const r = await first.nb.app.inject({
        method: 'POST',
        url: SUBS,
        headers: admin,
        payload: { Destination: d.url, Protocol: 'Redfish', ...extra },
      });
      expect(r.statusCode, r.body).toBe(201);
      return r;
    };
    const made = await sub(reports, { EventFormatType: 'MetricReport', Context: 'telemetry-above' });
    expect(made.json().EventFormatType).toBe('MetricReport');
    await sub(events, { Context: 'events-above' });
    await sub(stuck, { EventFormatType: 'MetricReport' });
    // MetricReportDefinitions: only the reports of PoolUsage, not test reports; a definition the service lacks is refused.
    const onlyPool = await destination();
    const filtered = await sub(onlyPool, { EventFormatType: 'MetricReport', MetricReportDefinitions: [{ '@odata.id': DEF }] });
    expect(filtered.json().MetricReportDefinitions).toEqual([{ '@odata.id': DEF }]);
    const unknown = await first.nb.app.inject({
      method: 'POST',
      url: SUBS,
      headers: admin,
      payload: {
        Destination: onlyPool.url,
        Protocol: 'Redfish',
        EventFormatType: 'MetricReport',
        MetricReportDefinitions: [{ '@odata.id': `${DEF}x` }],
      },
    });
    expect(unknown.statusCode).toBe(400);
    expect((await testReport(first.nb, 'One')).statusCode).toBe(204);
    await first.nb.app.inject({ method: 'POST', url: TEST_EVENT, headers: admin, payload: { MessageId: 'CxlMhd.1.0.HeadAttached' } });
    first.nb.ctx.telemetry.generate();
    const got = await reports.waitFor(2);
    const gotEvents = await events.waitFor(1);
    await stuck.waitFor(1);
    expect(stuck.held()).toBe(1);
    const bodies = got.map((r) => r.body as unknown as Record<string, unknown>);
    expect(bodies.map((b) => b.Id)).toEqual(['One', 'PoolUsage']);
    expect(bodies.every((b) => b.Context === 'telemetry-above' && String(b['@odata.type']).startsWith('#MetricReport.'))).toBe(true);
    expect(gotEvents[0]?.body).toMatchObject({ Context: 'events-above', Events: [{ MessageId: 'CxlMhd.1.0.HeadAttached' }] });
    expect((await onlyPool.waitFor(1)).map((r) => (r.body as unknown as Record<string, unknown>).Id)).toEqual(['PoolUsage']);
    // Nothing else is on its way to either.
    await new Promise((r) => setTimeout(r, 200));
    expect(reports.received).toHaveLength(2);
    expect(events.received).toHaveLength(1);
    expect(onlyPool.received).toHaveLength(1);
    stuck.release();
    // The format survives a restart with the subscription.
    const loc = made.headers.location as string;
    await first.nb.close();
    const second = await fakeNorthbound({ dir: first.dir });
    expect((await second.nb.app.inject({ url: loc, headers: admin })).json()).toMatchObject({ EventFormatType: 'MetricReport' });
    const es = (await second.nb.app.inject({ url: '/redfish/v1/EventService', headers: admin })).json();
    expect(es.EventFormatTypes).toEqual(['Event', 'MetricReport']);
  });

  it('PATCH of the definition: Administrator only (ReadOnly and Operator get 403), a bad interval is 400, disabled stops the schedule, kept across a restart', async () => {
    const { nb, dir } = await fakeNorthbound({
      users: { admin: 'secret', reader: { password: 'reader-pw', role: 'ReadOnly' }, op: { password: 'op-pw', role: 'Operator' } },
    });
    for (const who of [basic('reader', 'reader-pw'), basic('op', 'op-pw')]) {
      const r = await nb.app.inject({ method: 'PATCH', url: DEF, headers: who, payload: { MetricReportDefinitionEnabled: false } });
      expect(r.statusCode).toBe(403);
      expect(r.json().error.code).toBe('Base.1.22.InsufficientPrivilege');
      expect((await testReport(nb, 'Nope', who)).statusCode).toBe(403);
    }
    const def = (await nb.app.inject({ url: DEF, headers: basic('reader', 'reader-pw') })).json();
    expect(def).toMatchObject({
      MetricReportDefinitionType: 'Periodic',
      MetricReportDefinitionEnabled: true,
      Schedule: { RecurrenceInterval: 'PT60S' },
      ReportActions: ['RedfishEvent', 'LogToMetricReportsCollection'],
      Status: { State: 'Enabled' },
    });
    expect((await nb.app.inject({ url: `${T}/MetricReports`, headers: admin })).json().Members).toEqual([]);
    for (const bad of ['PT0S', '60', 'P2D', 'PT', 'PT1.5S']) {
      const r = await nb.app.inject({ method: 'PATCH', url: DEF, headers: admin, payload: { Schedule: { RecurrenceInterval: bad } } });
      expect(r.statusCode, bad).toBe(400);
    }
    expect((await testReport(nb, 'PoolUsage')).statusCode).toBe(400);
    const off = await nb.app.inject({
      method: 'PATCH',
      url: DEF,
      headers: admin,
      payload: { MetricReportDefinitionEnabled: false, Schedule: { RecurrenceInterval: 'PT1S' } },
    });
    expect(off.json()).toMatchObject({ MetricReportDefinitionEnabled: false, Status: { State: 'Disabled' } });
    // Three intervals pass without a report.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await nb.app.inject({ url: `${T}/MetricReports`, headers: admin })).json().Members).toEqual([]);
    await nb.close();
    const again = await fakeNorthbound({ dir });
    expect((await again.nb.app.inject({ url: DEF, headers: admin })).json()).toMatchObject({
      MetricReportDefinitionEnabled: false,
      Schedule: { RecurrenceInterval: 'PT1S' },
    });
  });

  it('RecurrenceInterval is read as an ISO 8601 duration', () => {
    expect(parseDuration('PT60S')).toBe(60);
    expect(parseDuration('PT1M30S')).toBe(90);
    expect(parseDuration('P1DT1H')).toBe(90_000);
    for (const bad of ['P', 'PT', '60', 'PT-1S', 'pt5s']) expect(parseDuration(bad), bad).toBeNull();
  });
});
