// `cxl-mhd status`: the pool's status (heads/status.ts) for people or as JSON.
import type { Command } from 'commander';
import { type Status, statusOf } from '../heads/lite.js';
import { formatSize, Pool, resolveDirs, ZERO_TAG } from '../pool/index.js';
import { type DirOpts, withDirs } from './options.js';

function renderStatus(s: Status): string {
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
        `        grant ${formatSize(g.len)} at pool offset ${g.offset}${g.shared ? ' shared' : ''} by ${g.delivery}${g.state === 'releasing' ? ' (releasing)' : ''}${g.state === 'quarantined' ? ` (quarantined: ${g.reason ?? 'no evidence yet'})` : ''}${
          g.tag !== ZERO_TAG ? ` tag ${g.tag}` : ''
        }`,
      );
    }
  }
  if (s.allocations?.length) lines.push(`${'allocation (tag)'.padEnd(38)}${'extents'.padEnd(32)}holders`);
  for (const a of s.allocations ?? []) {
    const ext = a.extents.map((e, i) => `#${i} ${formatSize(e.len)}@${e.offset}`).join(', ');
    lines.push(`${a.tag}  ${(a.shared ? ext : `${ext} (exclusive)`).padEnd(30)}  heads ${a.holders.join(', ')}`);
  }
  for (const r of s.references ?? []) {
    const ext = r.extents.map((e) => `${formatSize(e.len)}@${e.offset}`).join(', ');
    lines.push(`reference: tag ${r.tag} x${r.count} keeps ${ext}${r.shared ? ' shared' : ''}`);
  }
  return lines.join('\n');
}

export function addStatusCommand(program: Command): void {
  withDirs(
    program
      .command('status')
      .description('show a pool: heads, grants, FM-LD owner, free capacity')
      .requiredOption('--pool <name>', 'pool name')
      .option('--json', 'print one JSON object'),
  ).action(async (o: DirOpts & { pool: string; json?: boolean }) => {
    const dirs = resolveDirs(o);
    const p = Pool.open({ name: o.pool, stateDir: dirs.stateDir, readOnly: true });
    try {
      const s = statusOf(p, dirs.runDir);
      console.log(o.json ? JSON.stringify(s) : renderStatus(s));
    } finally {
      p.close();
    }
  });
}
