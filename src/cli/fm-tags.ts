// `cxl-mhd fm` commands of CXL r3.2's DCD management additions: 5602h
// set-region-config, 5606h/5607h add-reference/remove-reference and 5608h
// tags. Output like the other fm commands: one line per fact, or --json.
import type { Command } from 'commander';
import { UsageError } from '../errors/index.js';
import { TagFlag, ZERO_TAG } from '../fmapi/index.js';
import { formatSize, parseSize } from '../pool/lite.js';
import { type FmOpts, out, parseTag, parseUint, withClient } from './fm.js';

function requireTag(text: string): string {
  const tag = parseTag(text);
  if (tag === ZERO_TAG) throw new UsageError('--tag must not be the zero UUID: references name a tagged allocation');
  return tag;
}

export function addTagCommands(fm: Command, opts: (cmd: Command) => FmOpts): void {
  fm.command('set-region-config')
    .description('5602h Set DC Region Configuration: block size and sanitize on release (only while the region holds no extent)')
    .option('--region <r>', 'DC region', '0')
    .requiredOption('--block-size <size>', 'one of the sizes dcd-info reports, e.g. 2M')
    .option('--sanitize-on-release', 'zero blocks before they can be given to another head')
    .action(async (a: { region: string; blockSize: string; sanitizeOnRelease?: boolean }, cmd: Command) => {
      const o = opts(cmd);
      const region = parseUint(a.region, '--region', 7);
      const blockSize = parseSize(a.blockSize, '--block-size');
      const sanitizeOnRelease = a.sanitizeOnRelease === true;
      await withClient(o, (c) => c.call('setRegionConfig', { region, blockSize, sanitizeOnRelease }));
      out(
        o,
        { ok: true, region, blockSize, sanitizeOnRelease },
        () => `region ${region}: block size ${formatSize(blockSize)}, sanitize on release ${sanitizeOnRelease ? 'on' : 'off'}`,
      );
    });

  for (const [name, key, opcode, verb] of [
    ['add-reference', 'addReference', '5606h Dynamic Capacity Add Reference', 'added'],
    ['remove-reference', 'removeReference', '5607h Dynamic Capacity Remove Reference', 'removed'],
  ] as const) {
    fm.command(name)
      .description(
        `${opcode}: ${verb === 'added' ? 'keep a tagged allocation allocated while no head holds it' : 'drop one; the last frees an unheld allocation'}`,
      )
      .requiredOption('--tag <uuid>', 'the allocation')
      .action(async (a: { tag: string }, cmd: Command) => {
        const o = opts(cmd);
        const tag = requireTag(a.tag);
        await withClient(o, (c) => c.call(key, { tag }));
        out(o, { ok: true, tag }, () => `tag ${tag}: reference ${verb}`);
      });
  }

  fm.command('tags')
    .description('5608h Dynamic Capacity List Tags: tagged allocations, their holders and FM references')
    .option('--start <n>', 'first tag index (one page from there; default: every tag)')
    .option('--count <n>', 'at most this many tags (with --start)')
    .action(async (a: { start?: string; count?: string }, cmd: Command) => {
      const o = opts(cmd);
      const paged = a.start !== undefined || a.count !== undefined;
      const r = await withClient(o, async (c) => {
        if (!paged) return { ...(await c.allTags()), start: 0 };
        const start = parseUint(a.start ?? '0', '--start', 2 ** 32 - 1);
        const p = await c.tags({ start, count: a.count === undefined ? undefined : parseUint(a.count, '--count', 2 ** 32 - 1) });
        return { generation: p.generation, tags: p.tags, start, total: p.totalTags };
      });
      out(o, r, () => {
        const head = `${r.tags.length}${'total' in r ? ` of ${r.total}` : ''} tag(s), generation ${r.generation}`;
        const lines = r.tags.map((t) => {
          const held = t.references.length > 0 ? `held by head(s) ${t.references.join(',')}` : 'held by no head';
          const ref = t.flags & TagFlag.FmReference ? ', FM reference' : '';
          const pending = t.pending.length > 0 ? `, releasing from head(s) ${t.pending.join(',')}` : '';
          return `  ${t.tag}: ${held}${ref}${pending}`;
        });
        return [head, ...lines].join('\n');
      });
    });
}
