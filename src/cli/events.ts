// `cxl-mhd events` (the northbound's event stream on a terminal: Events
// and the TelemetryService's metric reports) and
// `cxl-mhd http-passwd` (a scrypt line for the users file). The stream's
// client is http/sse-client.ts; http/ is loaded only when these run.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../errors/index.js';
import { readHttpRecord } from '../heads/lite.js';
import { poolRunDir, resolveDirs } from '../pool/index.js';
import { type DirOpts, withDirs } from './options.js';

/** The lines `cxl-mhd events` prints for one stream payload: one per main record of an Event, one per MetricReport. */
export function describeEvent(e: Record<string, unknown>): string[] {
  if (String(e['@odata.type']).startsWith('#MetricReport.')) {
    const values = (e.MetricValues as { MetricId: string; MetricValue: string; MetricProperty?: string }[] | undefined) ?? [];
    // Per-head metrics name their head in MetricProperty (…/Endpoints/head1#/…).
    const head = (v: { MetricProperty?: string }) => /\/Endpoints\/(head\d+)#/.exec(v.MetricProperty ?? '')?.[1];
    const shown = values.map((v) => `${v.MetricId}${head(v) ? `[${head(v)}]` : ''}=${v.MetricValue}`);
    return [`${String(e.Timestamp)} MetricReport ${String(e.Id)}: ${shown.join(' ')}`];
  }
  const events =
    (e.Events as { MessageId: string; Message: string; EventTimestamp: string; OriginOfCondition?: { '@odata.id': string } }[]) ?? [];
  const main = events.filter((r) => !r.MessageId.startsWith('ResourceEvent.'));
  const shown = main.length > 0 ? main : events;
  return shown.map(
    (r) =>
      `${r.EventTimestamp} #${String(e.Id)} ${r.MessageId.split('.').pop()}: ${r.Message} [${r.OriginOfCondition?.['@odata.id'] ?? ''}]`,
  );
}

interface EventsOpts extends DirOpts {
  pool: string;
  json?: boolean;
  url?: string;
  user?: string;
  lastEventId?: string;
  count?: string;
}

/** Where the stream is and how to authenticate: the run dir's record (local token) or --url with --user. */
async function target(o: EventsOpts): Promise<{ base: string; auth: Record<string, string>; ca?: Buffer }> {
  const dirs = resolveDirs(o);
  const rec = readHttpRecord(dirs.runDir, o.pool);
  const base = o.url ?? rec?.url;
  if (!base) {
    throw new UsageError(
      `pool ${o.pool} has no northbound record in ${poolRunDir(dirs.runDir, o.pool)} (is \`serve --http\` running?); pass --url`,
    );
  }
  // An https northbound of this pool presents the certificate its record names: trust that one.
  const ca = rec?.tlsCert ? { ca: readFileSync(rec.tlsCert) } : {};
  if (o.user) {
    const pw = process.env.CXL_MHD_PASSWORD;
    if (pw === undefined) throw new UsageError('--user needs the password in the environment variable CXL_MHD_PASSWORD');
    return { base, auth: { Authorization: `Basic ${Buffer.from(`${o.user}:${pw}`).toString('base64')}` }, ...ca };
  }
  if (rec) return { base, auth: { 'X-Auth-Token': rec.localToken }, ...ca };
  throw new UsageError('--url without the run dir record needs --user (password in CXL_MHD_PASSWORD)');
}

export function addEventsCommands(program: Command): void {
  withDirs(
    program
      .command('events')
      .description("follow a pool's Redfish event stream (SSE), one line per event or metric report; reconnects with Last-Event-ID")
      .requiredOption('--pool <name>', 'pool name')
      .option('--json', 'print each Redfish Event or MetricReport as one JSON line')
      .option('--url <url>', 'the northbound, e.g. http://127.0.0.1:8080 (default: from the run dir)')
      .option('--user <name>', 'HTTP Basic user (password from CXL_MHD_PASSWORD) instead of the local token')
      .option('--last-event-id <n>', 'resume after this event id')
      .option('--count <n>', 'exit after this many events (metric reports count too)'),
  ).action(async (o: EventsOpts) => {
    if (o.count !== undefined && !/^\d+$/.test(o.count)) throw new UsageError(`--count ${o.count} is not a whole number`);
    if (o.lastEventId !== undefined && !/^\d+$/.test(o.lastEventId))
      throw new UsageError(`--last-event-id ${o.lastEventId} is not a whole number`);
    const { base, auth, ca } = await target(o);
    const { followEvents } = await import('../http/index.js');
    await followEvents({
      base,
      auth,
      ...(ca ? { ca } : {}),
      lastEventId: o.lastEventId,
      limit: o.count === undefined ? undefined : Number(o.count),
      onEvent: (e) => {
        for (const line of o.json ? [JSON.stringify(e)] : describeEvent(e)) console.log(line);
      },
    });
  });

  program
    .command('http-passwd')
    .description('read a password on stdin and print USER:scrypt$... for the --http-users file')
    .argument('<user>', 'user name')
    .action(async (user: string) => {
      if (!/^[A-Za-z0-9._@-]{1,64}$/.test(user)) throw new UsageError(`user "${user}" must be 1-64 of [A-Za-z0-9._@-]`);
      let input = '';
      for await (const chunk of process.stdin) input += chunk;
      const password = input.split('\n')[0] ?? '';
      if (password === '') throw new UsageError('no password on stdin');
      const { hashPassword } = await import('../http/index.js');
      console.log(`${user}:${hashPassword(password)}`);
    });
}
