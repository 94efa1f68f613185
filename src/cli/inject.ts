// `cxl-mhd inject`: one CXL event record (General Media, DRAM, Memory
// Module) into one head's type-3 device, sent to the pool's running backend
// over its control socket, which speaks QMP to that head's QEMU (heads/inject.ts).
import { type Command, Option } from 'commander';
import { UsageError } from '../errors/index.js';
import { controlRequest, INJECT_KINDS, INJECT_LOGS, INJECT_RECORDS, type InjectKind, injectFieldNames } from '../heads/index.js';
import { MAX_HEADS, resolveDirs } from '../pool/index.js';
import { withDirs } from './options.js';

/** --dpa 0x1000 → dpa; commander turns --transaction-type into transactionType. */
const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function parseField(name: string, text: string): number | string {
  if (name === 'component-id') return text;
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new UsageError(`--${name} "${text}" is not a number (decimal or 0x hex)`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} ${text} is too large`);
  return n;
}

export function addInjectCommand(program: Command): void {
  const cmd = withDirs(program.command('inject'))
    .description(
      "inject a CXL event record into head N's type-3 device through its QEMU (QEMU >= 11.1, whose records carry the head id); the guest's `cxl monitor` or its cxl trace events show it",
    )
    .argument('<record>', 'the record: media (General Media), dram (DRAM), module (Memory Module)')
    .requiredOption('--pool <name>', 'pool name')
    .requiredOption('--head <n>', 'the head whose device gets the record (it must be attached)')
    .addOption(new Option('--log <log>', 'the event log').choices([...INJECT_LOGS]).default('informational'));
  for (const name of injectFieldNames()) {
    const records = INJECT_KINDS.filter((k) => INJECT_RECORDS[k].fields.some((f) => f.name === name));
    cmd.option(`--${name} <${name === 'component-id' ? 'text' : 'n'}>`, `the record's ${name} field (${records.join(', ')})`);
  }
  cmd.action(async (record: string, o: Record<string, string | undefined>) => {
    if (!INJECT_KINDS.includes(record as InjectKind)) throw new UsageError(`record "${record}" must be one of ${INJECT_KINDS.join(', ')}`);
    const head = String(o.head);
    if (!/^\d+$/.test(head) || Number(head) >= MAX_HEADS) throw new UsageError(`head "${head}" is not a head number (0..${MAX_HEADS - 1})`);
    const kind = record as InjectKind;
    const fields: Record<string, number | string> = {};
    for (const name of injectFieldNames()) {
      const v = o[camel(name)];
      if (v === undefined) continue;
      if (!INJECT_RECORDS[kind].fields.some((f) => f.name === name)) throw new UsageError(`a ${kind} event record has no --${name}`);
      fields[name] = parseField(name, v);
    }
    if (INJECT_RECORDS[kind].fields.some((f) => f.required && fields[f.name] === undefined)) {
      throw new UsageError(
        `a ${kind} event record needs ${INJECT_RECORDS[kind].fields
          .filter((f) => f.required)
          .map((f) => `--${f.name}`)
          .join(', ')}`,
      );
    }
    const reply = await controlRequest(resolveDirs({ runDir: o.runDir }).runDir, String(o.pool), {
      op: 'inject',
      head: Number(head),
      kind,
      log: (o.log ?? 'informational') as (typeof INJECT_LOGS)[number],
      fields,
    });
    if (!reply.ok) throw new Error(reply.error);
    console.log(reply.message);
  });
}
