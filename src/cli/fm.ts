// `cxl-mhd fm`: the FM-API client command line. Finds the FM-LD port (in a
// guest: the virtio port named cxl-mhd.fmld), speaks FmClient over it, and
// prints results for people or as JSON. Extents are given as pool offsets;
// the client reads the head's region base (5601h) and adds it, which is
// correct for every delivery kind (docs/capacity.md, docs/design.md §3).
// Nothing here touches Node's own modules: the port is reached through an
// FmIo, Node's (fm-node.ts) or QuickJS's in the guest client (fm-guest.ts),
// which runs these same commands.
import { type Command, Option } from 'commander';
import { UsageError } from '../errors/index.js';
import { type FmChannel, FmClient, FmError, PayloadError, parseUuid, RemovalPolicy, SelectionPolicy, ZERO_TAG } from '../fmapi/index.js';
import { formatSize, parseSize } from '../pool/lite.js';
import { FMLD_PORT_NAME } from '../qemu/lite.js';

/** How the fm commands reach the FM-LD channel. */
export interface FmIo {
  /** This guest's FM-LD port (the virtio port named cxl-mhd.fmld), or null. */
  findPort(): string | null;
  exists(path: string): boolean;
  /** A Unix socket, character device or FIFO as one channel; rejects with the system's reason. */
  open(path: string): Promise<FmChannel>;
}

function resolvePort(io: FmIo, port: string | undefined): string {
  if (port) {
    if (!io.exists(port)) throw new UsageError(`FM-LD port ${port} does not exist`);
    return port;
  }
  const found = io.findPort();
  if (!found) {
    throw new UsageError(
      `this head does not own the FM-LD: there is no virtio port named ${FMLD_PORT_NAME} (only the first-started head of the pool has one); pass --port PATH to use another channel`,
    );
  }
  return found;
}

export function parseUint(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text) || Number(text) > max) throw new UsageError(`${what} "${text}" is not a whole number from 0 to ${max}`);
  return Number(text);
}

/** OFFSET:LEN with sizes like 256M or plain bytes; OFFSET may be 0. */
function parseExtent(text: string): { offset: number; len: number } {
  const m = /^([^:]+):([^:]+)$/.exec(text);
  if (!m) throw new UsageError(`extent "${text}" must be OFFSET:LEN, e.g. 1G:256M`);
  const offset = /^0+[KMGTP]?$/i.test(m[1] as string) ? 0 : parseSize(m[1] as string, 'extent offset');
  // parseSize refuses 0: an extent has a length.
  return { offset, len: parseSize(m[2] as string, 'extent length') };
}

export function parseTag(text: string | undefined): string {
  if (text === undefined) return ZERO_TAG;
  try {
    parseUuid(text);
  } catch {
    throw new UsageError(`tag "${text}" is not a UUID (e.g. 6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b)`);
  }
  return text.toLowerCase();
}

const jsonify = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x));

export interface FmOpts {
  io: FmIo;
  port?: string;
  json?: boolean;
  timeout: string;
}

export async function withClient<T>(o: FmOpts, fn: (c: FmClient) => Promise<T>): Promise<T> {
  const timeoutMs = parseUint(o.timeout, '--timeout');
  if (timeoutMs < 1 || timeoutMs > 2 ** 31 - 1) throw new UsageError(`--timeout ${o.timeout} must be from 1 to ${2 ** 31 - 1} ms`);
  const path = resolvePort(o.io, o.port);
  // One descriptor for the whole request/response: bytes sent while the port is closed can be lost.
  let stream: FmChannel;
  try {
    stream = await o.io.open(path);
  } catch (e) {
    throw new UsageError(`cannot open FM-LD port ${path}: ${(e as Error).message}`);
  }
  try {
    const client = new FmClient(stream, { timeoutMs });
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  } finally {
    stream.destroy();
  }
}

export function out(o: FmOpts, value: unknown, human: () => string): void {
  console.log(o.json ? jsonify(value) : human());
}

/** `cxl-mhd fm` and its commands; `more` adds further ones (fm-tags.ts) before the extent commands. */
export function addFmCommands(
  program: Command,
  io: FmIo,
  more: (fm: Command, opts: (cmd: Command) => FmOpts) => void = () => undefined,
): void {
  const fm = program
    .command('fm')
    .description('FM-API client: talk to the pool over the FM-LD port (in the owner guest: the cxl-mhd.fmld virtio port)')
    .option('--port <path>', 'FM-LD channel: a char device or Unix socket (default: the virtio port named cxl-mhd.fmld)')
    .option('--json', 'print JSON')
    .option('--timeout <ms>', 'per-request timeout', '30000');
  const opts = (cmd: Command): FmOpts => ({ ...(cmd.optsWithGlobals() as Omit<FmOpts, 'io'>), io });

  fm.command('identify')
    .description('0001h Identify')
    .action(async (_o, cmd: Command) => {
      const o = opts(cmd);
      const r = await withClient(o, (c) => c.identify());
      out(o, r, () =>
        [
          `vendor 0x${r.vendorId.toString(16).padStart(4, '0')} device 0x${r.deviceId.toString(16).padStart(4, '0')}`,
          `serial 0x${r.serialNumber.toString(16)}`,
          `component type ${r.componentType}${r.componentType === 3 ? ' (type 3 memory device)' : ''}`,
          `max message ${2 ** r.maxMessageSizeLog2} bytes`,
        ].join('\n'),
      );
    });

  fm.command('mhd-info')
    .description('5500h Get Multi-Headed Info')
    .action(async (_o, cmd: Command) => {
      const o = opts(cmd);
      const r = await withClient(o, (c) => c.mhdInfo());
      out(o, r, () => `${r.numHeads} heads, ${r.numLds} LDs; LD→head: ${r.ldMap.map((h, i) => `${r.startLd + i}→${h}`).join(' ')}`);
    });

  fm.command('head-info')
    .description('5501h Get Head Info')
    .action(async (_o, cmd: Command) => {
      const o = opts(cmd);
      const r = await withClient(o, (c) => c.headInfo());
      out(o, r, () =>
        r.heads.map((h) => `head ${h.port}: link ${h.negotiatedLinkWidth ? `up x${h.negotiatedLinkWidth}` : 'down'}`).join('\n'),
      );
    });

  fm.command('dcd-info')
    .description('5600h Get DCD Info')
    .action(async (_o, cmd: Command) => {
      const o = opts(cmd);
      const r = await withClient(o, (c) => c.dcdInfo());
      out(
        o,
        r,
        () => `${r.numHosts} hosts, ${r.regionBlockSizeMasks.length} region(s), ${formatSize(r.totalCapacityBytes)} dynamic capacity`,
      );
    });

  fm.command('region-config')
    .description('5601h Get Host DC Region Configuration')
    .requiredOption('--host <h>', 'head id')
    .action(async (a: { host: string }, cmd: Command) => {
      const o = opts(cmd);
      const r = await withClient(o, (c) => c.regionConfig(parseUint(a.host, '--host', 0xffff)));
      out(o, r, () =>
        [
          ...r.regions.map(
            (g, i) =>
              `region ${i}: base ${g.base} length ${formatSize(g.length)} block ${formatSize(g.blockSize)}${g.sanitizeOnRelease & 1 ? ', sanitized on release' : ''}`,
          ),
          `extents: ${r.extentsAvailable} of ${r.extentsSupported} available`,
        ].join('\n'),
      );
    });

  more(fm, opts);

  fm.command('extents')
    .description('5603h Get DC Region Extent Lists')
    .requiredOption('--host <h>', 'head id')
    .action(async (a: { host: string }, cmd: Command) => {
      const o = opts(cmd);
      const host = parseUint(a.host, '--host', 0xffff);
      const r = await withClient(o, (c) => c.allExtents(host));
      out(o, { host, ...r }, () =>
        r.extents.length === 0
          ? `head ${host}: no extents (generation ${r.generation})`
          : [
              `head ${host}: ${r.extents.length} extent(s), generation ${r.generation}`,
              ...r.extents.map((e) => `  DPA ${e.startDpa} len ${formatSize(e.len)} tag ${e.tag}`),
            ].join('\n'),
      );
    });

  fm.command('add')
    .description('5604h Initiate Dynamic Capacity Add: give one head (or, with a tag, several) pool capacity')
    .requiredOption('--host <h[,h...]>', 'head id; several (with --shared --tag) get the same allocation, all or none')
    .option('--region <r>', 'DC region', '0')
    .option('--extent <offset:len...>', 'pool byte ranges, e.g. 1G:256M (prescriptive)')
    .option('--length <size>', 'how much to add when the device chooses (with --policy free|contiguous)')
    .addOption(new Option('--policy <p>', 'selection policy').choices(['prescriptive', 'free', 'contiguous']).default('prescriptive'))
    .option('--shared', 'enable shared access: other heads may hold the same blocks')
    .option('--tag <uuid>', 'tag the extents: names the allocation (guests find it by tag; release by tag later)')
    .action(
      async (
        a: { host: string; region: string; extent?: string[]; length?: string; policy: string; shared?: boolean; tag?: string },
        cmd: Command,
      ) => {
        const o = opts(cmd);
        const hosts = a.host.split(',').map((h) => parseUint(h.trim(), '--host', 0xffff));
        const region = parseUint(a.region, '--region', 7);
        const tag = parseTag(a.tag);
        const pieces = (a.extent ?? []).map(parseExtent);
        const chooses = a.policy !== 'prescriptive';
        if (chooses && a.shared) throw new UsageError('--shared needs prescriptive extents (--extent)');
        if (chooses ? !a.length || pieces.length > 0 : pieces.length === 0) {
          throw new UsageError(chooses ? `--policy ${a.policy} takes --length, not --extent` : 'give at least one --extent OFFSET:LEN');
        }
        if (hosts.length > 1 && (!a.shared || tag === ZERO_TAG))
          throw new UsageError('several --host need --shared and --tag: one allocation, named by its tag, on every head');
        const policy = a.shared
          ? SelectionPolicy.EnableSharedAccess
          : a.policy === 'free'
            ? SelectionPolicy.Free
            : a.policy === 'contiguous'
              ? SelectionPolicy.Contiguous
              : SelectionPolicy.Prescriptive;
        // Loaded here: the allocation rules are needed by `fm add` alone.
        const { addToHosts } = await import('../capacity/index.js');
        await withClient(o, (c) =>
          addToHosts(
            {
              initiateAdd: (r) => c.call('initiateAdd', r).then(() => undefined),
              initiateRelease: (r) => c.call('initiateRelease', r).then(() => undefined),
            },
            hosts,
            async (hostId) => {
              const base = (await c.regionConfig(hostId)).regions[region]?.base ?? 0;
              const extents = pieces.map((p) => ({ startDpa: base + p.offset, len: p.len, tag, sharedSeq: 0 }));
              const length = chooses ? parseSize(a.length as string, '--length') : extents.reduce((n, e) => n + e.len, 0);
              return { hostId, region, selectionPolicy: policy, extents, length, tag };
            },
            (msg) => hosts.length > 1 && !o.json && process.stderr.write(`${msg}\n`),
          ),
        );
        const what = chooses ? a.length : pieces.map((p) => `${formatSize(p.len)} at pool offset ${p.offset}`).join(', ');
        out(o, { ok: true, host: hosts.length === 1 ? hosts[0] : hosts, extents: pieces, tag: tag === ZERO_TAG ? null : tag }, () =>
          hosts.length === 1 ? `head ${hosts[0]}: added ${what}` : `heads ${hosts.join(', ')}: added ${what} tagged ${tag}`,
        );
      },
    );

  fm.command('release')
    .description('5605h Initiate Dynamic Capacity Release: take capacity back from a head')
    .requiredOption('--host <h>', 'head id')
    .option('--region <r>', 'DC region', '0')
    .option('--extent <offset:len...>', 'pool byte ranges as added (prescriptive)')
    .option('--tag <uuid>', 'release every extent with this tag instead')
    .action(async (a: { host: string; region: string; extent?: string[]; tag?: string }, cmd: Command) => {
      const o = opts(cmd);
      const host = parseUint(a.host, '--host', 0xffff);
      const region = parseUint(a.region, '--region', 7);
      const pieces = (a.extent ?? []).map(parseExtent);
      if ((pieces.length === 0) === (a.tag === undefined))
        throw new UsageError('give either --extent OFFSET:LEN (one or more) or --tag UUID');
      await withClient(o, async (c) => {
        const base = (await c.regionConfig(host)).regions[region]?.base ?? 0;
        await c.release({
          host,
          region,
          removalPolicy: a.tag ? RemovalPolicy.TagBased : RemovalPolicy.Prescriptive,
          extents: pieces.map((p) => ({ startDpa: base + p.offset, len: p.len })),
          tag: parseTag(a.tag),
        });
      });
      out(
        o,
        { ok: true, host, extents: pieces, tag: a.tag ?? null },
        () =>
          `head ${host}: release of ${a.tag ? `extents tagged ${a.tag}` : pieces.map((p) => `${formatSize(p.len)} at pool offset ${p.offset}`).join(', ')} accepted`,
      );
    });
}

/** One line for the FM-API's own errors (a codec's or the device's verdict); null for any other. */
export function describeFmError(e: unknown): string | null {
  if (e instanceof PayloadError) return `request not sent: ${e.message}`;
  if (e instanceof FmError) return `the device answered ${e.codeName} (0x${Number(e.code).toString(16).padStart(2, '0')}): ${e.message}`;
  return null;
}
