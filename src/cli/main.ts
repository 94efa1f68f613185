#!/usr/bin/env node
// The cxl-mhd command line: argument parsing and output formatting only;
// the work is done by the pool (and later heads/fmapi) modules.
import { Command, CommanderError, Option } from 'commander';
import {
  DEFAULT_BLOCK_BYTES,
  formatSize,
  fsck,
  Pool,
  PoolError,
  type PoolStatus,
  parseSize,
  poolStatus,
  resolveDirs,
} from '../pool/index.js';

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
  if (!/^\d+$/.test(text)) throw new PoolError('BAD_HEADS', `head count "${text}" is not a whole number`);
  return Number(text);
}

function renderStatus(s: PoolStatus): string {
  const lines = [
    `pool ${s.pool}: ${formatSize(s.capacityBytes)} in ${s.blockCount} blocks of ${formatSize(s.blockBytes)}, ${s.headCount} heads`,
    `backend: ${s.backend.running ? `running${s.backend.pid ? ` (pid ${s.backend.pid})` : ''}` : 'not running'}`,
    `FM-LD owner: ${s.fmldOwner === null ? 'none' : `head ${s.fmldOwner}`}`,
    `free: ${formatSize(s.freeBytes)}`,
    'head  attached  pid       granted   shared',
  ];
  for (const h of s.heads) {
    lines.push(
      `${String(h.id).padEnd(6)}${(h.attached ? 'yes' : 'no').padEnd(10)}${String(h.pid ?? '-').padEnd(10)}${formatSize(h.grantedBytes).padEnd(10)}${formatSize(h.sharedBytes)}`,
    );
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
    if (!/^[0-7]{3,4}$/.test(o.mode)) throw new PoolError('BAD_SIZE', `mode "${o.mode}" is not an octal file mode`);
    const p = Pool.create({
      name: o.pool,
      capacityBytes: parseSize(o.capacity, 'capacity'),
      blockBytes: o.block ? parseSize(o.block, 'block size') : DEFAULT_BLOCK_BYTES,
      headCount: parseHeads(o.heads),
      stateDir: dirs.stateDir,
      mode: Number.parseInt(o.mode, 8),
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
    const p = Pool.open({ name: o.pool, stateDir: resolveDirs(o).stateDir, readOnly: true });
    try {
      const s = poolStatus(p);
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
            ? `pool ${p.name}: clean (${r.blocksChecked} blocks, ${r.journalEntries} journal entries)`
            : `pool ${p.name}: ${r.findings.length} problem(s)`,
        );
      }
      if (!r.clean) process.exitCode = 1;
    } finally {
      p.close();
    }
  });

  return program;
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
    if (e instanceof PoolError) {
      console.error(`cxl-mhd: ${e.message}`);
      return 1;
    }
    console.error(`cxl-mhd: ${(e as Error).stack ?? String(e)}`);
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
