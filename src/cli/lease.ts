// `cxl-mhd lease`: operator requests about the FM-LD lease, sent to the
// pool's running backend over its control socket (heads/control.ts).
import type { Command } from 'commander';
import { UsageError } from '../errors/index.js';
import { MAX_HEADS, resolveDirs } from '../pool/index.js';
import { type DirOpts, withDirs } from './options.js';

export function addLeaseCommands(program: Command): void {
  const lease = program.command('lease').description('the FM-LD lease: which head may use the FM-API');
  withDirs(
    lease
      .command('takeover')
      .description(
        "give the FM-LD lease to head N: the old owner's FM-LD port is removed from its VM (only the backend's own uid may do this)",
      )
      .requiredOption('--pool <name>', 'pool name')
      .requiredOption('--head <n>', 'the head that becomes the owner (it must be attached)')
      .option('--force', 'take the lease even while its owner is attached (fences the owner)'),
  ).action(async (o: DirOpts & { pool: string; head: string; force?: boolean }) => {
    if (!/^\d+$/.test(o.head) || Number(o.head) >= MAX_HEADS) {
      throw new UsageError(`head "${o.head}" is not a head number (0..${MAX_HEADS - 1})`);
    }
    const { controlRequest } = await import('../heads/index.js');
    const reply = await controlRequest(resolveDirs(o).runDir, o.pool, {
      op: 'lease-takeover',
      head: Number(o.head),
      force: o.force === true,
    });
    if (!reply.ok) throw new Error(reply.error);
    console.log(reply.message);
  });
}
