// Owns the scenario file's JSON Schema (docs/scenario.schema.json, the
// published contract) and turning ajv's findings into one plain sentence
// each, aimed at the YAML node they are about.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/**
 * The checkout (or installed package) root: the first directory above
 * src/scenario, dist/src/scenario or the bundled dist/src/cli whose
 * package.json is this package's (dist/src/cli has one of its own).
 */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!isPackageRoot(dir)) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the cxl-mhd checkout (no package.json above the runner)');
    dir = up;
  }
  return dir;
}

function isPackageRoot(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === 'cxl-mhd';
  } catch {
    return false;
  }
}

/** The three-head demo, as a scenario file (`make demo`, `cxl-mhd demo`, the boot test). */
export function demoScenarioPath(): string {
  return join(projectRoot(), 'examples', 'ci', 'three-heads.yaml');
}

export function schemaPath(): string {
  return join(projectRoot(), 'docs', 'scenario.schema.json');
}

let compiled: ValidateFunction | null = null;

function validator(): ValidateFunction {
  if (compiled === null) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: false });
    compiled = ajv.compile(JSON.parse(readFileSync(schemaPath(), 'utf8')));
  }
  return compiled;
}

export interface SchemaFinding {
  /** Path of the node the finding is about (keys and indexes). */
  path: (string | number)[];
  /** Point at the key itself (unknown keys) rather than its value. */
  atKey: boolean;
  message: string;
}

const STEP_KINDS = ['run', 'fm', 'host', 'write', 'read', 'kill', 'restart'];

function describeValue(v: unknown): string {
  if (v === null) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  return String(v);
}

function pathOf(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function expected(e: ErrorObject): string {
  const described = (e.parentSchema as { description?: string } | undefined)?.description;
  return described ?? (e.schema as { description?: string } | undefined)?.description ?? 'a valid value';
}

/** Validates a parsed document; one finding per distinct mistake. */
export function checkSchema(doc: unknown): SchemaFinding[] {
  const validate = validator();
  if (validate(doc)) return [];
  const errors = validate.errors ?? [];
  // anyOf/oneOf report their branches' failures too: keep the summary only.
  const summaries = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath);
  const findings: SchemaFinding[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (summaries.some((s) => e.schemaPath !== s && e.schemaPath.startsWith(`${s}/`))) continue;
    const path = pathOf(e.instancePath);
    let f: SchemaFinding;
    switch (e.keyword) {
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        f = { path, atKey: false, message: `expected a "${missing}" entry here` };
        break;
      }
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
        f = { path: [...path, extra], atKey: true, message: `unknown key "${extra}": expected one of ${allowed.join(', ')}` };
        break;
      }
      case 'oneOf': {
        const given = STEP_KINDS.filter((k) => typeof e.data === 'object' && e.data !== null && k in e.data);
        f = {
          path,
          atKey: false,
          message:
            given.length === 0
              ? `expected one of ${STEP_KINDS.join(', ')} in this step`
              : `expected only one of ${STEP_KINDS.join(', ')} in this step, got ${given.join(' and ')}`,
        };
        break;
      }
      case 'enum':
        f = {
          path,
          atKey: false,
          message: `expected one of ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).join(', ')}, got ${describeValue(e.data)}`,
        };
        break;
      case 'minItems':
        f = { path, atKey: false, message: `expected at least ${(e.params as { limit: number }).limit} entry here` };
        break;
      default:
        f = { path, atKey: false, message: `expected ${expected(e)}, got ${describeValue(e.data)}` };
    }
    const key = `${f.path.join('/')}|${f.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push(f);
  }
  return findings;
}
