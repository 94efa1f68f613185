#!/usr/bin/env node
// The cxl-mhd command line: argument parsing and output formatting only;
// the work is done by the pool, heads, qemu and fmapi modules.
import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
// Not capacity/index.js, which loads the native addon: see fm.ts.
import { type AllocationView, allocationsOf } from '../capacity/allocations.js';
import { isCodedError, UsageError } from '../errors/index.js';
import { Backend, type HeadRecord, readHeadRecords } from '../heads/index.js';
import {
  DEFAULT_BLOCK_BYTES,
  formatSize,
  fsck,
  MAX_HEADS,
  Pool,
  type PoolStatus,
  parseSize,
  poolStatus,
  resolveDirs,
} from '../pool/index.js';
import { headArgs, parseQemuVersion, parseStaticWindow, qemuArgv, resolveQemu } from '../qemu/index.js';
import { addFmCommands, describeFmError } from './fm.js';
import { addHttpCommands, checkHttpOptions, type HttpServeOptions, readHttpRecord, startHttp } from './http.js';
import { addInjectCommand } from './inject.js';
import { addLeaseCommands } from './lease.js';
import { addRunCommand, demoScenarioPath, runScenarioFile } from './run.js';
import { notifyReady } from './sd-notify.js';

interface DirOpts {
  runDir?: string;
  stateDir?: string;
}

function withDirs(cmd: Command): Command {
  return cmd
    .addOption(new Option('--run-dir <dir>', 'directory for head sockets (default: $XDG_RUNTIME_DIR/cxl-mhd or /run/cxl-mhd)'))
    .addOption(new Option('--state-dir <dir>', 'directory for the journal (default: $XDG_STATE_HOME/cxl-mhd or /var/lib/cxl-mhd)'));
}

function parseHeads(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`head count "${text}" is not a whole number`);
  return Number(text);
}

function parseHead(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`head "${text}" is not a whole number`);
  const head = Number(text);
  if (head >= MAX_HEADS) throw new UsageError(`head ${text} does not exist: a pool has at most ${MAX_HEADS} heads (0..${MAX_HEADS - 1})`);
  return head;
}

/** An octal file mode for a pool's shm objects. */
function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`mode "${text}" must be an octal permission mode such as 600 or 660`);
  return Number.parseInt(text, 8);
}

/** A positive whole number of milliseconds a timer can hold. */
function parseMs(text: string, what: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= 2 ** 31 - 1))
    throw new UsageError(`${what} "${text}" must be a whole number of milliseconds from 1 to ${2 ** 31 - 1}`);
  return ms;
}

type StatusWithRecords = PoolStatus & {
  http?: { url: string; redfish: string; sse: string; pid: number; usersFile: string; stateFile: string; fmSocket: string };
  /** Tagged allocations and the heads holding them (with a running backend's records). */
  allocations?: AllocationView[];
  heads: (PoolStatus['heads'][number] & {
    phase?: string;
    reason?: string | null;
    delivery?: string | null;
    grants?: HeadRecord['grants'];
  })[];
};

/** Adds what the backend recorded per head (refusal reasons) when it is there to read. */
function withRecords(s: PoolStatus, runDir: string): StatusWithRecords {
  const rec = s.backend.running ? readHttpRecord(runDir, s.pool) : null;
  const withHttp = rec
    ? {
        ...s,
        http: {
          url: rec.url,
          redfish: rec.redfish,
          sse: rec.sse,
          pid: rec.pid,
          usersFile: rec.usersFile,
          stateFile: rec.stateFile,
          fmSocket: rec.fmSocket,
        },
      }
    : s;
  return withHeadRecords(withHttp, runDir);
}

function withHeadRecords(s: StatusWithRecords, runDir: string): StatusWithRecords {
  const records = readHeadRecords(runDir, s.pool);
  if (!records) return s;
  const heads = s.heads.map((h) => {
    const r = records.find((x) => x.head === h.id);
    return r ? { ...h, phase: r.phase, reason: r.reason, delivery: r.delivery ?? null, grants: r.grants ?? [] } : h;
  });
  return { ...s, heads, allocations: allocationsOf(heads) };
}

function renderStatus(s: StatusWithRecords): string {
  const lines = [
    `pool ${s.pool}: ${formatSize(s.capacityBytes)} in ${s.blockCount} blocks of ${formatSize(s.blockBytes)}, ${s.headCount} heads`,
    `backend: ${s.backend.running ? `running${s.backend.pid ? ` (pid ${s.backend.pid})` : ''}` : 'not running'}`,
    `FM-LD owner: ${s.fmldOwner === null ? 'none' : `head ${s.fmldOwner}`}`,
    ...(s.http
      ? [
          `http: ${s.http.url} (Redfish ${s.http.redfish}, events ${s.http.sse})`,
          `  users ${s.http.usersFile}; chunks and connections ${s.http.stateFile}; FM-API via ${s.http.fmSocket}`,
        ]
      : []),
    `free: ${formatSize(s.freeBytes)}`,
    'head  attached  pid       granted   shared',
  ];
  for (const h of s.heads) {
    lines.push(
      `${String(h.id).padEnd(6)}${(h.attached ? 'yes' : 'no').padEnd(10)}${String(h.pid ?? '-').padEnd(10)}${formatSize(h.grantedBytes).padEnd(10)}${formatSize(h.sharedBytes)}${
        h.phase === 'refused' && h.reason ? `  refused: ${h.reason}` : ''
      }`,
    );
    for (const g of h.grants ?? []) {
      lines.push(
        `        grant ${formatSize(g.len)} at pool offset ${g.offset}${g.shared ? ' shared' : ''} by ${g.delivery}${g.state === 'releasing' ? ' (releasing)' : ''}${
          g.tag !== '00000000-0000-0000-0000-000000000000' ? ` tag ${g.tag}` : ''
        }`,
      );
    }
  }
  if (s.allocations?.length) lines.push(`${'allocation (tag)'.padEnd(38)}${'extents'.padEnd(32)}holders`);
  for (const a of s.allocations ?? []) {
    const ext = a.extents.map((e, i) => `#${i} ${formatSize(e.len)}@${e.offset}`).join(', ');
    lines.push(`${a.tag}  ${(a.shared ? ext : `${ext} (exclusive)`).padEnd(30)}  heads ${a.holders.join(', ')}`);
  }
  return lines.join('\n');
}

export function buildProgram(): Command {
  const program = new Command('cxl-mhd')
    .description('CXL multi-headed memory device backend for stock QEMU')
    .showHelpAfterError()
    .exitOverride();

  const pool = program.command('pool').description('create or destroy a pool');

  withDirs(
    pool
      .command('create')
      .description('create a pool: its shared-memory data and state objects and its journal')
      .requiredOption('--pool <name>', 'pool name: [a-z0-9][a-z0-9_-]{0,31}')
      .requiredOption('--capacity <size>', 'pool capacity, a multiple of 256M (e.g. 2G)')
      .requiredOption('--heads <n>', 'number of heads, 1..32')
      .option('--block <size>', 'block size, a power of two from 2M to 256M', '2M')
      .option('--mode <octal>', 'file mode of the shm objects', '600'),
  ).action((o: DirOpts & { pool: string; capacity: string; heads: string; block: string; mode: string }) => {
    const dirs = resolveDirs(o);
    const mode = parseMode(o.mode);
    const p = Pool.create({
      name: o.pool,
      capacityBytes: parseSize(o.capacity, 'capacity'),
      blockBytes: o.block ? parseSize(o.block, 'block size') : DEFAULT_BLOCK_BYTES,
      headCount: parseHeads(o.heads),
      stateDir: dirs.stateDir,
      mode,
    });
    try {
      console.log(
        `created pool ${p.name}: ${formatSize(p.state.header.capacityBytes)}, ${p.state.headCount} heads, ${formatSize(p.state.header.blockBytes)} blocks`,
      );
    } finally {
      p.close();
    }
  });

  withDirs(
    pool
      .command('destroy')
      .description('remove a pool (refused while heads are attached or a backend serves it)')
      .requiredOption('--pool <name>', 'pool name')
      .option('--force', 'remove even with attached heads or a running backend'),
  ).action((o: DirOpts & { pool: string; force?: boolean }) => {
    Pool.destroy({ name: o.pool, stateDir: resolveDirs(o).stateDir, force: o.force === true });
    console.log(`destroyed pool ${o.pool}`);
  });

  withDirs(
    program
      .command('status')
      .description('show a pool: heads, grants, FM-LD owner, free capacity')
      .requiredOption('--pool <name>', 'pool name')
      .option('--json', 'print one JSON object'),
  ).action((o: DirOpts & { pool: string; json?: boolean }) => {
    const dirs = resolveDirs(o);
    const p = Pool.open({ name: o.pool, stateDir: dirs.stateDir, readOnly: true });
    try {
      const s = withRecords(poolStatus(p), dirs.runDir);
      console.log(o.json ? JSON.stringify(s) : renderStatus(s));
    } finally {
      p.close();
    }
  });

  withDirs(
    program
      .command('fsck')
      .description('check a pool: bitmap invariants, header, and shared memory against the journal')
      .requiredOption('--pool <name>', 'pool name')
      .option('--json', 'print the report as JSON'),
  ).action((o: DirOpts & { pool: string; json?: boolean }) => {
    const p = Pool.open({ name: o.pool, stateDir: resolveDirs(o).stateDir, readOnly: true });
    try {
      const r = fsck(p);
      if (o.json) console.log(JSON.stringify(r));
      else {
        for (const f of r.findings) console.log(`${f.kind}: ${f.message}`);
        console.log(
          r.clean
            ? `pool ${p.name}: clean (${r.blocksChecked} blocks, ${r.snapshotSeq === null ? '' : `snapshot to seq ${r.snapshotSeq} + `}${r.journalEntries} journal entries)`
            : `pool ${p.name}: ${r.findings.length} problem(s)`,
        );
      }
      if (!r.clean) process.exitCode = 1;
    } finally {
      p.close();
    }
  });

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
      .option(
        '--http <addr:port>',
        'serve Redfish, the event stream and the pool page on ADDR:PORT (loopback only unless --http-allow-remote); turns on fm.sock',
      )
      .option('--http-users <file>', 'users for --http: user:password lines (or user:scrypt$... from `cxl-mhd http-passwd`), mode 0600')
      .option('--http-allow-remote', 'let --http listen on a non-loopback address'),
  ).action(
    async (
      o: DirOpts & {
        pool: string;
        capacity?: string;
        heads?: string;
        block?: string;
        mode?: string;
        socketGroup?: string;
        allowUid?: string[];
        qmpTimeout: string;
        fmSocket?: boolean;
      } & HttpServeOptions,
    ) => {
      const dirs = resolveDirs(o);
      const httpAt = checkHttpOptions(o);
      const logger = pino({ base: undefined }, pino.destination(2));
      const mode = o.mode === undefined ? undefined : parseMode(o.mode);
      if (mode !== undefined && o.capacity && o.heads && !Pool.exists(o.pool)) {
        // The backend creates pools 0600; a wider mode (QEMU as another user) is made here first.
        const blockBytes = o.block ? parseSize(o.block, 'block size') : DEFAULT_BLOCK_BYTES;
        const capacityBytes = parseSize(o.capacity, 'capacity');
        Pool.create({ name: o.pool, capacityBytes, blockBytes, headCount: parseHeads(o.heads), stateDir: dirs.stateDir, mode }).close();
      }
      const backend = await Backend.start({
        pool: o.pool,
        ...dirs,
        capacityBytes: o.capacity ? parseSize(o.capacity, 'capacity') : undefined,
        headCount: o.heads ? parseHeads(o.heads) : undefined,
        blockBytes: o.block ? parseSize(o.block, 'block size') : undefined,
        access: {
          group: o.socketGroup,
          allowedUids: o.allowUid?.map((u) => {
            if (!/^\d+$/.test(u)) throw new UsageError(`--allow-uid ${u} is not a numeric uid`);
            return Number(u);
          }),
        },
        logger,
        qmpTimeoutMs: parseMs(o.qmpTimeout, '--qmp-timeout'),
        fmSocket: o.fmSocket === true || httpAt !== null,
      });
      let http: Awaited<ReturnType<typeof startHttp>> | null = null;
      if (httpAt) {
        try {
          http = await startHttp(backend, httpAt, { ...o, ...dirs }, logger);
        } catch (e) {
          await backend.stop();
          throw e;
        }
      }
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info(`${signal}: shutting down; attached QEMUs keep running and reconnect to the next backend`);
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
        // Only now: whoever waits for "ready" may signal at once, and without a handler SIGTERM kills outright.
        console.log(
          `cxl-mhd: pool ${o.pool} ready: ${backend.headCount} head sockets in ${dirs.runDir}/${o.pool}${http ? `; Redfish on ${http.url}/redfish/v1` : ''}`,
        );
      });
      // Only now: a manager may send SIGTERM the moment it reads READY=1.
      const notifyProblem = await notifyReady(`serving pool ${o.pool}: ${backend.headCount} head sockets`);
      if (notifyProblem) logger.warn(notifyProblem);
      await stopped;
      await http?.close();
      await backend.stop();
      logger.flush();
    },
  );

  withDirs(
    program
      .command('qemu-args')
      .description('print the QEMU arguments that make a VM head I of the pool, one per line')
      .requiredOption('--pool <name>', 'pool name')
      .requiredOption('--head <i>', 'head id (the socket the VM dials)')
      .option('--static <window>', 'static window SIZE[@OFFSET][,exclusive] of the pool, present at boot')
      .option('--spare-ports <k>', 'empty CXL root ports for hot-added capacity (default 2 for hotplug, 0 for dcd)')
      .addOption(new Option('--delivery <how>', 'how dynamic capacity reaches this head').choices(['hotplug', 'dcd']).default('hotplug'))
      .option('--memory <size>', 'guest RAM (-m)', '1G')
      .option('--capacity <size>', "the pool's capacity, when the pool does not exist yet")
      .option('--with-binary', 'print the QEMU command (and firmware paths) first: a complete command line')
      .option(
        '--qemu-version <x.y>',
        "the QEMU the arguments are for (picks -object monitor-qmp on >= 11.1, -mon before); default: the project's QEMU, else -mon",
      ),
  ).action(
    (
      o: DirOpts & {
        pool: string;
        head: string;
        static?: string;
        sparePorts?: string;
        delivery: 'hotplug' | 'dcd';
        memory: string;
        capacity?: string;
        withBinary?: boolean;
        qemuVersion?: string;
      },
    ) => {
      const dirs = resolveDirs(o);
      const head = parseHead(o.head);
      let capacityBytes: number;
      if (Pool.exists(o.pool)) {
        const p = Pool.open({ name: o.pool, stateDir: dirs.stateDir, readOnly: true });
        try {
          p.state.checkHead(head);
          capacityBytes = p.state.header.capacityBytes;
        } finally {
          p.close();
        }
      } else if (o.capacity) {
        capacityBytes = parseSize(o.capacity, 'capacity');
      } else {
        throw new UsageError(`pool "${o.pool}" does not exist; create it first or pass --capacity`);
      }
      if (o.sparePorts !== undefined && !/^\d+$/.test(o.sparePorts)) {
        throw new UsageError(`--spare-ports ${o.sparePorts} is not a whole number`);
      }
      if (!/^\d+[KMG]?$/i.test(o.memory)) throw new UsageError(`--memory "${o.memory}" must be a size QEMU's -m takes, e.g. 1G or 512M`);
      const args = headArgs({
        pool: o.pool,
        head,
        runDir: dirs.runDir,
        capacityBytes,
        static: o.static ? parseStaticWindow(o.static) : undefined,
        sparePorts: o.sparePorts === undefined ? undefined : Number(o.sparePorts),
        delivery: o.delivery,
        memory: o.memory,
        qemuVersion: argsQemuVersion(o.qemuVersion, o.withBinary === true),
      });
      const words = o.withBinary ? qemuArgv(resolveQemu(), args) : args;
      process.stdout.write(`${words.join('\n')}\n`);
    },
  );

  addFmCommands(program);
  addLeaseCommands(program);
  addInjectCommand(program);
  addHttpCommands(program);
  addRunCommand(program);

  program
    .command('demo')
    .description('boot three Linux guests on one pool and move capacity between them, narrated (what `make demo` runs)')
    .option('--keep', 'keep guest consoles and logs')
    .action(async (o: { keep?: boolean }) => {
      process.exitCode = await runScenarioFile(demoScenarioPath(), { keep: o.keep === true });
    });

  program
    .command('qemu-bin')
    .description('print the command words (one per line) that run the QEMU >= 10 this project uses, firmware paths included')
    .action(() => {
      process.stdout.write(`${qemuArgv(resolveQemu(), []).join('\n')}\n`);
    });

  return program;
}

/**
 * The QEMU version `qemu-args` writes for: the one given, else the project's
 * QEMU (which --with-binary runs anyway), else unknown (`-mon`, accepted by
 * every QEMU >= 10.0).
 */
function argsQemuVersion(given: string | undefined, withBinary: boolean): string | undefined {
  if (given !== undefined) {
    if (parseQemuVersion(given) === null) throw new UsageError(`--qemu-version "${given}" must look like 11.1 or 10.0.13`);
    return given;
  }
  try {
    return resolveQemu().version;
  } catch (e) {
    if (withBinary) throw e;
    return undefined;
  }
}

/**
 * One line for the person at the terminal. Errors of the system (errno
 * codes: a path that is a file, a socket nobody listens on, a permission)
 * are the user's to fix and say so; anything else is our bug, said plainly,
 * with the stack behind CXL_MHD_DEBUG=1.
 */
function describeError(e: unknown): string {
  const fm = describeFmError(e);
  if (fm !== null) return fm;
  // Usage, pool, socket, QMP and FM-channel errors: their messages are written for this line.
  if (isCodedError(e)) return e.message;
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return e.message;
    // A plain Error is one we raised with a message for the user (e.g. no QEMU found); subclasses we did not expect are bugs.
    if (Object.getPrototypeOf(e) === Error.prototype) return e.message;
    return `internal error: ${e.message} (set CXL_MHD_DEBUG=1 for details)`;
  }
  return String(e);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed its message (help, version or usage error).
      return e.exitCode === 0 ? 0 : 2;
    }
    console.error(`cxl-mhd: ${describeError(e)}`);
    if (process.env.CXL_MHD_DEBUG && e instanceof Error && e.stack) console.error(e.stack);
    return 1;
  }
}

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
