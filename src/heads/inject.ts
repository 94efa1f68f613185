// Per-head CXL event injection (`cxl-mhd inject`): one event record (CXL
// r3.1 §8.2.9.2.1: General Media, DRAM, Memory Module) put into a head's
// type-3 device through QEMU's cxl-inject-*-event, which from QEMU 11.1 also
// carries the MHD head id (and LD id) and requires the record's sub-type.
// The table below is the one place that knows each record's fields.
import { qemuFeatures } from '../qemu/index.js';
import type { QmpSession } from '../qmp/index.js';

export type InjectKind = 'media' | 'dram' | 'module';
export const INJECT_KINDS: readonly InjectKind[] = ['media', 'dram', 'module'];
export const INJECT_LOGS = ['informational', 'warning', 'failure', 'fatal'] as const;
export type InjectLog = (typeof INJECT_LOGS)[number];

/** A field of a record: its QMP name and the value it gets when not given (undefined: left out). */
interface Field {
  name: string;
  default?: number;
  required?: boolean;
  text?: boolean;
}

const COMMON: readonly Field[] = [{ name: 'flags', default: 0 }, { name: 'sub-type', default: 0 }, { name: 'ld-id' }];
const MEMORY: readonly Field[] = [
  { name: 'dpa', required: true },
  { name: 'descriptor', default: 0 },
  { name: 'type', default: 0 },
  { name: 'transaction-type', default: 0 },
  { name: 'channel' },
  { name: 'rank' },
];

/** Each record's QMP command and fields (QEMU 11.1's argument names). */
export const INJECT_RECORDS: Readonly<Record<InjectKind, { command: string; fields: readonly Field[] }>> = {
  media: {
    command: 'cxl-inject-general-media-event',
    fields: [...COMMON, ...MEMORY, { name: 'device' }, { name: 'component-id', text: true }],
  },
  dram: {
    command: 'cxl-inject-dram-event',
    fields: [
      ...COMMON,
      ...MEMORY,
      { name: 'nibble-mask' },
      { name: 'bank-group' },
      { name: 'bank' },
      { name: 'row' },
      { name: 'column' },
      { name: 'component-id', text: true },
    ],
  },
  module: {
    command: 'cxl-inject-memory-module-event',
    fields: [
      ...COMMON,
      { name: 'type', default: 0 },
      { name: 'health-status', default: 0 },
      { name: 'media-status', default: 0 },
      { name: 'additional-status', default: 0 },
      { name: 'life-used', default: 0 },
      { name: 'temperature', default: 0 },
      { name: 'dirty-shutdown-count', default: 0 },
      { name: 'corrected-volatile-error-count', default: 0 },
      { name: 'corrected-persistent-error-count', default: 0 },
      { name: 'component-id', text: true },
    ],
  },
};

/** Every field name of every record, for the CLI's options. */
export function injectFieldNames(): string[] {
  return [...new Set(Object.values(INJECT_RECORDS).flatMap((r) => r.fields.map((f) => f.name)))];
}

export interface InjectRequest {
  kind: InjectKind;
  log: InjectLog;
  /** Field values as given (numbers, or text for component-id). */
  fields: Record<string, number | string>;
}

/** The QMP arguments for a request on head `head`'s device at `path`; throws on a field the record lacks or misses. */
export function injectArgs(req: InjectRequest, head: number, path: string): { command: string; args: Record<string, unknown> } {
  const rec = INJECT_RECORDS[req.kind];
  if (!rec) throw new Error(`unknown event record "${req.kind}" (expected ${INJECT_KINDS.join(', ')})`);
  if (!INJECT_LOGS.includes(req.log)) throw new Error(`unknown log "${req.log}" (expected ${INJECT_LOGS.join(', ')})`);
  const known = new Set(rec.fields.map((f) => f.name));
  for (const k of Object.keys(req.fields)) {
    if (!known.has(k)) throw new Error(`a ${req.kind} event record has no field ${k}`);
  }
  const args: Record<string, unknown> = { path, log: req.log, 'head-id': head };
  for (const f of rec.fields) {
    const v = req.fields[f.name] ?? f.default;
    if (v === undefined) {
      if (f.required) throw new Error(`a ${req.kind} event record needs --${f.name}`);
      continue;
    }
    if ((f.text === true) !== (typeof v === 'string')) throw new Error(`--${f.name} must be ${f.text ? 'text' : 'a number'}`);
    args[f.name] = v;
  }
  return { command: rec.command, args };
}

/** Injects the record into the head's device; on a QEMU without per-head records, says what is missing. */
export async function injectEvent(qmp: QmpSession, head: number, path: string, req: InjectRequest): Promise<string> {
  const f = qemuFeatures(qmp.version);
  if (!f.injectPerHead) {
    throw new Error(
      `head ${head} runs QEMU ${f.version}, whose cxl-inject-*-event has no head-id or ld-id (and no sub-type): the record could not name the head; per-head injection needs QEMU >= 11.1`,
    );
  }
  const { command, args } = injectArgs(req, head, path);
  await qmp.execute(command, args);
  return `head ${head}: ${req.kind} event record (${req.log} log) injected through ${command}`;
}
