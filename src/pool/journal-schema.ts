// The shape every journal line and the snapshot must have when read back
// (journal-events.ts and image.ts's Snapshot, as JSON Schema): a line that
// parses as JSON but says something replay would misread (a misspelt field,
// a string where a count goes) is refused with its file and line, never
// replayed into NaN or silently skipped.
import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject, ValidateFunction } from 'ajv';
import type { JournalEntry } from './journal-events.js';
import { MAX_HEADS } from './layout.js';

const int = { type: 'integer', minimum: 0 } as const;
const head = { type: 'integer', minimum: 0, maximum: MAX_HEADS - 1 } as const;
const headCount = { type: 'integer', minimum: 1, maximum: MAX_HEADS } as const;
const bool = { type: 'boolean' } as const;
const str = { type: 'string' } as const;
const poolId = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;
const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const grantMeta = {
  kind: { enum: ['static', 'dynamic'] },
  tag: str,
  delivery: { enum: ['hotplug', 'dcd'] },
  tx: int,
  rollback: bool,
  recovered: bool,
};
const range = { head, first: int, count: { type: 'integer', minimum: 1 } };
const poolCreate = obj({ capacityBytes: int, blockBytes: int, headCount, createdMs: int, mode: int, poolId }, [
  'capacityBytes',
  'blockBytes',
  'headCount',
  'createdMs',
]);

/** JSON Schema's if/then, built so no object literal carries a `then` (it would look like a thenable). */
const when = (cond: unknown, then: unknown): Record<string, unknown> =>
  Object.fromEntries([
    ['if', cond],
    ['then', then],
  ]);

// Notes change no state except the two that bracket an add in old journals; the rest are kept as written.
const note = {
  type: 'object',
  required: ['event'],
  properties: { event: str },
  allOf: [
    when({ properties: { event: { const: 'fm-add-begin' } } }, { required: ['head'], properties: { head } }),
    when({ properties: { event: { const: 'fm-add-end' } } }, { required: ['tx'], properties: { tx: int } }),
  ],
};

const ARGS: Record<string, unknown> = {
  'pool-create': poolCreate,
  'head-register': obj({ head, pid: int }),
  'head-unregister': obj({ head }),
  claim: obj({ ...grantMeta, ...range, shared: bool }, ['head', 'first', 'count']),
  release: obj({ ...grantMeta, ...range }, ['head', 'first', 'count']),
  'release-all': obj({ head, sharedOnly: bool }, ['head']),
  'lease-acquire': obj({ head }),
  'lease-release': obj({ head }),
  'lease-takeover': obj({ from: { anyOf: [head, { type: 'null' }] }, to: head, forced: bool }, ['to']),
  'fm-add': obj({
    head,
    pieces: { type: 'array', items: obj({ first: int, count: range.count, device: str }, ['first', 'count']) },
    shared: bool,
    tag: str,
    delivery: str,
  }),
  'fm-release': obj({ head, pieces: { type: 'array', items: obj({ first: int, count: range.count }) } }),
  'ref-add': obj({ tag: str, shared: bool, ranges: { type: 'array', items: obj({ first: int, count: range.count }) } }),
  'ref-remove': obj({ tag: str, last: bool, ranges: { type: 'array', items: obj({ first: int, count: range.count }) } }),
  'region-config': obj({ region: { type: 'integer', minimum: 0, maximum: 7 }, blockSize: int, sanitizeOnRelease: bool }),
  note,
};

const result = {
  type: 'object',
  required: ['ok'],
  properties: { ok: bool, code: str, message: str, epoch: int },
};

const entrySchema = {
  type: 'object',
  required: ['seq', 'op', 'args', 'result'],
  properties: { seq: { type: 'integer', minimum: 1 }, time: str, op: { enum: Object.keys(ARGS) }, args: { type: 'object' }, result },
  allOf: [
    ...Object.entries(ARGS).map(([op, args]) => when({ properties: { op: { const: op } } }, { properties: { args } })),
    // A takeover's epoch is what replay sets the lease to.
    when(
      { properties: { op: { const: 'lease-takeover' }, result: { properties: { ok: { const: true } } } } },
      { properties: { result: { required: ['epoch'] } } },
    ),
  ],
};

const snapshotSchema = obj(
  {
    version: { const: 1 },
    lastSeq: int,
    pool: poolCreate,
    blocks: {
      type: 'array',
      items: {
        type: 'array',
        items: [int, range.count, { type: 'string', pattern: '^[0-9a-f]{1,16}$' }],
        minItems: 3,
        additionalItems: false,
      },
    },
    heads: { type: 'array', items: obj({ head, pid: int }) },
    lease: obj({ owner: { anyOf: [head, { type: 'null' }] }, epoch: int }),
    grants: {
      type: 'array',
      items: obj(
        {
          head,
          offset: int,
          len: int,
          tag: str,
          shared: bool,
          delivery: { type: ['string', 'null'] },
          device: { type: ['string', 'null'] },
          releasing: bool,
          quarantined: str,
        },
        ['head', 'offset', 'len', 'tag', 'shared', 'delivery', 'device', 'releasing'],
      ),
    },
    unfinished: { type: 'array', items: obj({ tx: int, head, ranges: { type: 'array', items: obj({ first: int, count: range.count }) } }) },
    references: {
      type: 'array',
      items: obj({
        tag: str,
        count: { type: 'integer', minimum: 1 },
        shared: bool,
        ranges: { type: 'array', items: obj({ first: int, count: range.count }) },
      }),
    },
    regions: {
      type: 'array',
      items: obj({ region: { type: 'integer', minimum: 0, maximum: 7 }, blockSize: int, sanitizeOnRelease: bool }),
    },
  },
  ['version', 'lastSeq', 'pool', 'blocks', 'heads', 'lease', 'grants', 'unfinished'],
);

// Loaded and compiled on first use: every command imports pool/, and most
// (`status`, `fm`) never read a journal line, so they skip ajv's start-up cost.
let validators: { entry: ValidateFunction; snapshot: ValidateFunction } | null = null;
function compiled(): { entry: ValidateFunction; snapshot: ValidateFunction } {
  if (validators === null) {
    const { Ajv } = createRequire(import.meta.url)('ajv') as { Ajv: typeof AjvClass };
    const ajv = new Ajv({ allErrors: false, strict: false });
    validators = { entry: ajv.compile(entrySchema), snapshot: ajv.compile(snapshotSchema) };
  }
  return validators;
}

function say(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.find((x) => x.keyword !== 'if') ?? errors?.[0];
  if (!e) return 'does not match the journal format';
  const at = e.instancePath || '(the line)';
  if (e.keyword === 'additionalProperties')
    return `${at} has a field replay does not know: "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'required') return `${at} lacks "${(e.params as { missingProperty: string }).missingProperty}"`;
  return `${at} ${e.message ?? 'is wrong'}`;
}

/** Why a parsed journal line is not one, or null when it is. */
export function journalLineProblem(value: unknown): string | null {
  const { entry } = compiled();
  return entry(value) ? null : say(entry.errors);
}

/** Why a parsed snapshot is not one, or null when it is. */
export function snapshotProblem(value: unknown): string | null {
  const { snapshot } = compiled();
  return snapshot(value) ? null : say(snapshot.errors);
}

/** Where each line read from a journal came from, for messages that name file and line. */
const origin = new WeakMap<JournalEntry, string>();

export function setOrigin(e: JournalEntry, where: string): void {
  origin.set(e, where);
}

/** `FILE:LINE` of a journal line read from disk, for refusals. */
export function originOf(e: JournalEntry): string | undefined {
  return origin.get(e);
}
