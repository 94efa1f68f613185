// `cxl-mhd lease`: operator requests about the FM-LD lease, sent to the
// pool's running backend over its control socket (heads/control.ts).
import { type Command, Option } from 'commander';
import { UsageError } from '../errors/index.js';
import { controlRequest } from '../heads/index.js';
import { MAX_HEADS, resolveDirs } from '../pool/index.js';

export function addLeaseCommands(program: Command): void {
  const lease = program.command('lease').description('the FM-LD lease: which head may use the FM-API');
  lease
    .command('takeover')
    .description(
      "give the FM-LD lease to head N: the old owner's FM-LD port is removed from its VM (only the backend's own uid may do this)",
    )
    .requiredOption('--pool <name>', 'pool name')
    .requiredOption('--head <n>', 'the head that becomes the owner (it must be attached)')
    .option('--force', 'take the lease even while its owner is attached (fences the owner)')
    .addOption(new Option('--run-dir <dir>', 'directory for head sockets (default: $XDG_RUNTIME_DIR/cxl-mhd or /run/cxl-mhd)'))
    .action(async (o: { pool: string; head: string; force?: boolean; runDir?: string }) => {
      if (!/^\d+$/.test(o.head) || Number(o.head) >= MAX_HEADS) {
        throw new UsageError(`head "${o.head}" is not a head number (0..${MAX_HEADS - 1})`);
      }
      const reply = await controlRequest(resolveDirs(o).runDir, o.pool, {
        op: 'lease-takeover',
        head: Number(o.head),
        force: o.force === true,
      });
      if (!reply.ok) throw new Error(reply.error);
      console.log(reply.message);
    });
}
