// `cxl-mhd serve`: parses and checks the options, then hands them to the
// daemon's start-up (daemon/serve.ts), loaded only for this command.
import type { Command } from 'commander';
import type { HttpServeOptions } from '../daemon/index.js';
import { UsageError } from '../errors/index.js';
import { parseSize, resolveDirs } from '../pool/index.js';
import { type DirOpts, parseHeads, parseMode, parseMs, withDirs } from './options.js';

// The --http* flags are the northbound's own options (daemon/northbound.ts), declared there once.
interface ServeFlags extends DirOpts, HttpServeOptions {
  pool: string;
  capacity?: string;
  heads?: string;
  block?: string;
  mode?: string;
  socketGroup?: string;
  allowUid?: string[];
  qmpTimeout: string;
  fmSocket?: boolean;
  acceptJournalLoss?: boolean;
}

export function addServeCommand(program: Command): void {
  withDirs(
    program
      .command('serve')
      .description('serve a pool: listen on every head socket, attach QEMU heads, run until SIGINT/SIGTERM')
      .requiredOption('--pool <name>', 'pool name')
      .option('--capacity <size>', 'create the pool with this capacity if it does not exist (with --heads)')
      .option('--heads <n>', 'head count for a pool created here')
      .option('--block <size>', 'block size for a pool created here')
      .option('--mode <octal>', 'file mode of the shm objects of a pool created here (default 600)')
      .option('--socket-group <group>', 'make head sockets 0660 for this group (default 0600)')
      .option('--allow-uid <uid...>', 'uids allowed to connect as QEMU (default: this process uid)')
      .option('--qmp-timeout <ms>', 'QMP command timeout in ms', '10000')
      .option('--fm-socket', 'also serve the FM-API to host tools on <run-dir>/<pool>/fm.sock (0600), while the FM-LD owner is attached')
      .option('--accept-journal-loss', 'start even though the journal lacks answered operations; what that drops is journaled and logged')
      .option(
        '--http <addr:port>',
        'serve Redfish, the event stream and the pool page on ADDR:PORT (loopback only unless --http-allow-remote); turns on fm.sock',
      )
      .option('--http-users <file>', 'users for --http: user:password lines (or user:scrypt$... from `cxl-mhd http-passwd`), mode 0600')
      .option('--http-allow-remote', 'let --http listen on a non-loopback address')
      .option('--http-tls-cert <file>', 'serve --http as HTTPS with this PEM certificate (nothing then over plain HTTP)')
      .option('--http-tls-key <file>', "the certificate's PEM private key, mode 0600")
      .option('--http-aggregator <url>', 'offer this service to an aggregating fabric manager (OFA Sunfish contract) at URL')
      .option(
        '--http-aggregator-user <name>',
        'the ReadOnly user the aggregator reads with (default aggregator; its password in clear in --http-users)',
      ),
  ).action(async (o: ServeFlags) => {
    const dirs = resolveDirs(o);
    const { checkNorthbound, serve } = await import('../daemon/index.js');
    const http = await checkNorthbound(o);
    const mode = o.mode === undefined ? undefined : parseMode(o.mode);
    const capacityBytes = o.capacity ? parseSize(o.capacity, 'capacity') : undefined;
    const headCount = o.heads ? parseHeads(o.heads) : undefined;
    const blockBytes = o.block ? parseSize(o.block, 'block size') : undefined;
    const allowedUids = o.allowUid?.map((u) => {
      if (!/^\d+$/.test(u)) throw new UsageError(`--allow-uid ${u} is not a numeric uid`);
      return Number(u);
    });
    await serve({
      pool: o.pool,
      ...dirs,
      capacityBytes,
      headCount,
      blockBytes,
      mode,
      access: { group: o.socketGroup, allowedUids },
      qmpTimeoutMs: parseMs(o.qmpTimeout, '--qmp-timeout'),
      fmSocket: o.fmSocket === true,
      acceptJournalLoss: o.acceptJournalLoss === true,
      http,
      onReady: (r) =>
        console.log(
          `cxl-mhd: pool ${o.pool} ready: ${r.headCount} head sockets in ${dirs.runDir}/${o.pool}${r.url ? `; Redfish on ${r.url}/redfish/v1` : ''}`,
        ),
    });
  });
}
