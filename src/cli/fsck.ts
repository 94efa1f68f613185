// `cxl-mhd fsck`: the pool's consistency report; exit 1 when it is not clean.
import type { Command } from 'commander';
import { formatSize, fsck, Pool, resolveDirs } from '../pool/index.js';
import { type DirOpts, withDirs } from './options.js';

export function addFsckCommand(program: Command): void {
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
        for (const q of r.pendingReleases) {
          const what = q.reason ? `quarantined (${q.reason})` : 'releasing';
          console.log(
            `held after release: head ${q.head}, ${formatSize(q.len)} at pool offset ${q.offset}: ${what}; free once QEMU shows the guest cannot reach it`,
          );
        }
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
}
