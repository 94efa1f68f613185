// `cxl-mhd pool create|destroy`.
import type { Command } from 'commander';
import { DEFAULT_BLOCK_BYTES, formatSize, Pool, parseSize, resolveDirs } from '../pool/index.js';
import { type DirOpts, parseHeads, parseMode, withDirs } from './options.js';

export function addPoolCommands(program: Command): void {
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
}
