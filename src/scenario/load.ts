// Owns reading a scenario file: YAML with positions, the published schema,
// then the checks a schema cannot express (head ids, windows, files that
// must exist). Every mistake becomes one line FILE:LINE:COL: what was
// expected; nothing is started until the whole file is clean.
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Document, isMap, LineCounter, type Node, parseDocument } from 'yaml';
import { CAPACITY_UNIT, PoolError, sizeBytes } from '../pool/index.js';
import { parseStaticWindow, type StaticWindow } from '../qemu/index.js';
import { checkSchema } from './schema.js';

export interface GuestSpec {
  /** The kernel to boot; undefined: the project's guest kernel (make setup). */
  kernel?: string;
  /** A lib/modules/VERSION tree whose CXL/DAX/virtio modules go into the initramfs. */
  modules?: string;
  /** The kernel's own initramfs, with disk: (root on the disk); replaces the project's. */
  initrd?: string;
  /** A full distribution image with qemu-guest-agent, booted instead of the initramfs. */
  disk?: string;
  /** The project's guest with Debian's kernel of this release ("7.3"; default 6.12: `make guest KERNEL=…`). */
  debianKernel?: string;
  append: string;
  memory: string;
  fmCommand: string;
}

export interface HeadSpec {
  id: number;
  static?: StaticWindow;
  sparePorts?: number;
  delivery: 'hotplug' | 'dcd';
  guest: GuestSpec;
}

export interface Matcher {
  text: string;
  test(output: string): boolean;
}

export interface PatternSpec {
  /** Guests that access it through a devdax over `memdev`; empty: the host, in the pool's data object. */
  guests: number[];
  memdev: string;
  offset: number;
  size: number;
  seed: bigint;
}

export type StepKind = 'run' | 'fm' | 'host' | 'write' | 'read' | 'kill' | 'restart';

export interface StepSpec {
  index: number;
  name: string;
  line: number;
  kind: StepKind;
  /** run/host: a shell command; fm: the FM client's arguments. */
  command: string;
  guests: number[];
  pattern?: PatternSpec;
  /** kill: the head whose QEMU is killed; restart: the head restarted (none: the backend). */
  killHead?: number;
  restartHead?: number;
  /** Run only on a QEMU this condition holds for (`qemu: ">=11.1"`); other QEMUs report the step skipped. */
  qemu?: QemuCondition;
  expect?: Matcher;
  expectNot?: Matcher;
  expectExit: number;
  timeoutMs: number;
  retryMs: number | null;
}

/** `>=11.1` or `<11.1`: a step for some QEMU versions only. */
export interface QemuCondition {
  op: '>=' | '<';
  major: number;
  minor: number;
  text: string;
}

/** Whether QEMU `version` ("11.1.3") meets the condition. */
export function qemuConditionHolds(c: QemuCondition, version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const atLeast = major > c.major || (major === c.major && minor >= c.minor);
  return c.op === '>=' ? atLeast : !atLeast;
}

export interface Scenario {
  file: string;
  name: string;
  pool: { capacityBytes: number; headCount: number; blockBytes: number };
  heads: HeadSpec[];
  steps: StepSpec[];
  bootTimeoutMs: number;
}

/** A scenario file that cannot run; `lines` are the FILE:LINE:COL messages. */
export class ScenarioFileError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'ScenarioFileError';
  }
}

const DEFAULT_STEP_TIMEOUT_MS = 180_000;
const DEFAULT_BOOT_TIMEOUT_MS = 600_000;

export function parseDuration(v: number | string): number {
  if (typeof v === 'number') return v * 1000;
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$/.exec(v);
  if (!m) throw new Error(`duration "${v}"`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

export function parseBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const bytes = sizeBytes(v);
  if (bytes === null) throw new Error(`size "${v}"`);
  return bytes;
}

function matcher(text: string): Matcher {
  const re = /^\/(.*)\/([a-z]*)$/s.exec(text);
  if (re) {
    const rx = new RegExp(re[1] ?? '', re[2]);
    return { text, test: (s) => rx.test(s) };
  }
  return { text, test: (s) => s.includes(text) };
}

/** $VAR and ${VAR} from the environment, for CI paths; an unset variable is a mistake. */
function expandEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b) as string;
    const v = env[name];
    if (v === undefined || v === '') throw new Error(`environment variable ${name} is not set`);
    return v;
  });
}

type Raw = Record<string, unknown>;

class Checker {
  readonly lines: string[] = [];
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly counter: LineCounter,
  ) {}

  /** 1-based line and column of the node at `path` (its key when atKey), else of the nearest ancestor. */
  where(path: (string | number)[], atKey = false): { line: number; col: number } {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      let offset: number | undefined;
      if (atKey && n === path.length && n > 0) {
        const parent = this.doc.getIn(sub.slice(0, -1), true) as Node | undefined;
        if (isMap(parent)) {
          const pair = parent.items.find((p) => (p.key as { value?: unknown } | null)?.value === sub[n - 1]);
          offset = (pair?.key as Node | undefined)?.range?.[0];
        }
      } else {
        const node = (sub.length === 0 ? this.doc.contents : this.doc.getIn(sub, true)) as Node | null | undefined;
        offset = node?.range?.[0];
      }
      if (offset !== undefined) {
        const p = this.counter.linePos(offset);
        return { line: p.line, col: p.col };
      }
    }
    return { line: 1, col: 1 };
  }

  add(path: (string | number)[], message: string, atKey = false): void {
    const { line, col } = this.where(path, atKey);
    this.lines.push(`${this.file}:${line}:${col}: ${message}`);
  }
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '').trim();
}

/** The largest scenario file read (the examples are a few KiB; a step list this long is a mistake or an attack). */
export const MAX_SCENARIO_BYTES = 1024 * 1024;

/**
 * Reads a scenario: a regular file (a link to one is fine) of at most
 * MAX_SCENARIO_BYTES. Opened non-blocking so a FIFO cannot hang us before
 * fstat says what it is; a device such as /dev/zero is refused unread.
 */
function readScenarioFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new ScenarioFileError([`${file}: cannot read the scenario: ${(e as Error).message}`]);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device';
      throw new ScenarioFileError([`${file}: a scenario must be a regular file; this is ${kind}`]);
    }
    // Read one byte past the limit: the file may grow after fstat.
    const buf = Buffer.alloc(Math.min(st.size, MAX_SCENARIO_BYTES) + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (st.size > MAX_SCENARIO_BYTES || n > MAX_SCENARIO_BYTES) {
      throw new ScenarioFileError([
        `${file}: the scenario is ${Math.max(st.size, n)} bytes; at most ${MAX_SCENARIO_BYTES} (1 MiB) are read`,
      ]);
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks a scenario file; throws ScenarioFileError with every mistake found. */
export function loadScenario(file: string, env: NodeJS.ProcessEnv = process.env): Scenario {
  return parseScenario(readScenarioFile(file), file, env);
}

/** As loadScenario, from text (relative paths resolve against FILE's directory). */
export function parseScenario(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Scenario {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => {
      const p = e.linePos?.[0] ?? counter.linePos(e.pos[0]);
      return `${file}:${p.line}:${p.col}: ${firstLine(e.message)}`;
    });
    throw new ScenarioFileError(lines);
  }
  const c = new Checker(file, doc, counter);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // Alias bombs and the like: the document parsed, but cannot be expanded.
    throw new ScenarioFileError([`${file}:1:1: expected a plain YAML document: ${firstLine((e as Error).message)}`]);
  }
  const findings = checkSchema(raw);
  for (const f of findings) c.add(f.path, f.message, f.atKey);
  if (c.lines.length > 0) throw new ScenarioFileError(c.lines);
  const scenario = build(c, raw as Raw, dirname(resolve(file)), env);
  if (c.lines.length > 0) throw new ScenarioFileError(c.lines);
  return scenario;
}

function build(c: Checker, raw: Raw, base: string, env: NodeJS.ProcessEnv): Scenario {
  const rawPool = raw.pool as Raw;
  const capacityBytes = parseBytes(rawPool.capacity as string | number);
  if (capacityBytes === 0 || capacityBytes % CAPACITY_UNIT !== 0)
    c.add(['pool', 'capacity'], 'expected a capacity that is a positive multiple of 256M');
  const headCount = rawPool.heads as number;
  const blockBytes = rawPool.block === undefined ? 2 * 2 ** 20 : parseBytes(rawPool.block as string | number);
  if (rawPool.block !== undefined && !(blockBytes >= 2 ** 21 && blockBytes <= CAPACITY_UNIT && (blockBytes & (blockBytes - 1)) === 0))
    c.add(['pool', 'block'], 'expected a block size that is a power of two from 2M to 256M');

  const guestOf = (g: Raw | undefined, path: (string | number)[], inherit?: GuestSpec): GuestSpec => {
    const spec: GuestSpec = inherit ? { ...inherit } : { append: '', memory: '768M', fmCommand: 'cxl-mhd-fm' };
    if (!g) return spec;
    const file = (key: 'kernel' | 'modules' | 'disk' | 'initrd', dir: boolean): string | undefined => {
      const v = g[key];
      if (typeof v !== 'string') return undefined;
      let p: string;
      try {
        p = expandEnv(v, env);
      } catch (e) {
        c.add([...path, key], `expected a path whose variables are set: ${(e as Error).message}`);
        return undefined;
      }
      p = isAbsolute(p) ? p : resolve(base, p);
      if (!existsSync(p)) c.add([...path, key], `expected an existing ${dir ? 'directory' : 'file'} for ${key}: ${p} does not exist`);
      else if (statSync(p).isDirectory() !== dir)
        c.add([...path, key], `expected ${key} to be a ${dir ? 'directory' : 'file'}: ${p} is not`);
      return p;
    };
    // A head's own kernel or disk replaces the common one entirely.
    if (g.kernel !== undefined || g.disk !== undefined || g['debian-kernel'] !== undefined) {
      delete spec.debianKernel;
      delete spec.kernel;
      delete spec.modules;
      delete spec.disk;
      delete spec.initrd;
    }
    const kernel = file('kernel', false);
    const modules = file('modules', true);
    const disk = file('disk', false);
    const initrd = file('initrd', false);
    if (kernel) spec.kernel = kernel;
    if (initrd) spec.initrd = initrd;
    if (modules) spec.modules = modules;
    if (disk) spec.disk = disk;
    if (g.modules !== undefined && g.kernel === undefined && inherit?.kernel === undefined)
      c.add([...path, 'modules'], 'expected modules only with a kernel (they must match it)', true);
    if (g.initrd !== undefined && (spec.kernel === undefined || spec.disk === undefined))
      c.add([...path, 'initrd'], 'expected initrd only with kernel and disk (your initramfs mounting the root on the disk)', true);
    if (g.modules !== undefined && g.disk !== undefined)
      c.add([...path, 'modules'], 'expected either disk or modules: a disk brings its own', true);
    if (typeof g['debian-kernel'] === 'string') {
      spec.debianKernel = g['debian-kernel'];
      if (g.kernel !== undefined || g.disk !== undefined)
        c.add([...path, 'debian-kernel'], "expected debian-kernel without kernel or disk (it picks the project's guest kernel)", true);
    }
    if (typeof g.append === 'string') spec.append = g.append;
    if (typeof g.memory === 'string') spec.memory = g.memory;
    else if (disk) spec.memory = '1G';
    if (typeof g['fm-command'] === 'string') spec.fmCommand = g['fm-command'];
    return spec;
  };
  const common = guestOf(raw.guest as Raw | undefined, ['guest']);

  const heads: HeadSpec[] = [];
  const ids = new Set<number>();
  (raw.heads as Raw[]).forEach((h, i) => {
    const id = h.id as number;
    if (ids.has(id)) c.add(['heads', i, 'id'], `expected a head id not listed before: head ${id} is listed twice`);
    if (id >= headCount) c.add(['heads', i, 'id'], `expected a head id below the pool's ${headCount} heads, got ${id}`);
    ids.add(id);
    let win: StaticWindow | undefined;
    if (typeof h.static === 'string') {
      try {
        win = parseStaticWindow(h.static);
        if (win.offset + win.size > capacityBytes)
          c.add(['heads', i, 'static'], `expected a static window inside the pool's capacity: ${h.static} ends past it`);
      } catch (e) {
        c.add(['heads', i, 'static'], `expected ${e instanceof PoolError ? e.message : 'a static window SIZE[@OFFSET]'}`);
      }
    }
    heads.push({
      id,
      ...(win ? { static: win } : {}),
      ...(typeof h['spare-ports'] === 'number' ? { sparePorts: h['spare-ports'] } : {}),
      delivery: (h.delivery as 'hotplug' | 'dcd' | undefined) ?? 'hotplug',
      guest: guestOf(h.guest as Raw | undefined, ['heads', i, 'guest'], common),
    });
  });
  if (heads.length > headCount) c.add(['heads'], `expected at most ${headCount} heads (the pool's head count), got ${heads.length}`);

  const targets = (v: unknown, path: (string | number)[]): number[] => {
    const list = v === 'all' ? heads.map((h) => h.id) : Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v] : [];
    for (const t of list) if (!ids.has(t)) c.add(path, `expected a head listed under heads, got ${t}`);
    return list;
  };

  const steps: StepSpec[] = (raw.steps as Raw[]).map((s, i) => {
    const at = (k: string) => ['steps', i, k];
    const kind = (['run', 'fm', 'host', 'write', 'read', 'kill', 'restart'] as const).find((k) => s[k] !== undefined) as StepKind;
    const step: StepSpec = {
      index: i + 1,
      name: s.name as string,
      line: c.where(['steps', i]).line,
      kind,
      command: typeof s[kind] === 'string' ? (s[kind] as string) : '',
      guests: [],
      expectExit: (s['expect-exit'] as number | undefined) ?? 0,
      timeoutMs: s.timeout === undefined ? DEFAULT_STEP_TIMEOUT_MS : parseDuration(s.timeout as string | number),
      retryMs: s.retry === undefined ? null : parseDuration(s.retry as string | number),
    };
    for (const k of ['expect', 'expect-not'] as const) {
      if (typeof s[k] !== 'string') continue;
      try {
        const m = matcher(s[k] as string);
        if (k === 'expect') step.expect = m;
        else step.expectNot = m;
      } catch (e) {
        c.add(at(k), `expected a valid /regex/: ${(e as Error).message}`);
      }
    }
    const checksOutput = kind === 'run' || kind === 'fm' || kind === 'host';
    for (const k of ['expect', 'expect-not', 'expect-exit', 'retry']) {
      if (s[k] !== undefined && !checksOutput)
        c.add(at(k), `expected ${k} only on run, fm and host steps (a ${kind} step checks itself)`, true);
    }
    if (s.guest !== undefined && kind !== 'run')
      c.add(at('guest'), `expected guest only on run steps${kind === 'fm' ? ' (fm steps run in the FM-LD owner guest)' : ''}`, true);
    if (kind === 'run') {
      if (s.guest === undefined) c.add(['steps', i], 'expected a "guest" entry: the head(s) to run the command in');
      step.guests = targets(s.guest, at('guest'));
    }
    if (kind === 'write' || kind === 'read') {
      const p = s[kind] as Raw;
      const pp = [...at(kind)];
      const inGuest = p.guest !== undefined;
      if (inGuest === (p['pool-offset'] !== undefined))
        c.add(pp, 'expected either guest (through its devdax) or pool-offset (the host, straight into the pool), not both or neither');
      if (!inGuest && (p.memdev !== undefined || p.offset !== undefined))
        c.add(pp, 'expected memdev and offset only with guest (pool-offset already says where)');
      const size = parseBytes(p.size as string | number);
      if (size === 0) c.add([...pp, 'size'], 'expected a size above zero');
      step.pattern = {
        guests: inGuest ? targets(p.guest, [...pp, 'guest']) : [],
        memdev: (p.memdev as string | undefined) ?? 'mem0',
        offset: parseBytes(((inGuest ? p.offset : p['pool-offset']) as string | number | undefined) ?? 0),
        size,
        seed: BigInt(p.seed as string | number),
      };
      if (!inGuest && step.pattern.offset + size > capacityBytes)
        c.add([...pp, 'pool-offset'], "expected a range inside the pool's capacity");
    }
    if (kind === 'kill') {
      const id = Number((s.kill as string).slice(5));
      if (!ids.has(id)) c.add(at('kill'), `expected a head listed under heads, got head ${id}`);
      step.killHead = id;
      step.command = `head ${id}`;
    }
    if (kind === 'restart') {
      const what = s.restart as string;
      step.command = what;
      if (what !== 'backend') {
        const id = Number(what.slice(5));
        if (!ids.has(id)) c.add(at('restart'), `expected a head listed under heads, got head ${id}`);
        step.restartHead = id;
      }
    }
    if (typeof s.qemu === 'string') {
      const m = /^(>=|<) ?(\d+)\.(\d+)$/.exec(s.qemu);
      if (m) step.qemu = { op: m[1] as '>=' | '<', major: Number(m[2]), minor: Number(m[3]), text: `${m[1]}${m[2]}.${m[3]}` };
    }
    return step;
  });

  return {
    file: c.file,
    name: typeof raw.name === 'string' ? raw.name : c.file.replace(/^.*\//, '').replace(/\.ya?ml$/, ''),
    pool: { capacityBytes, headCount, blockBytes },
    heads,
    steps,
    bootTimeoutMs: raw['boot-timeout'] === undefined ? DEFAULT_BOOT_TIMEOUT_MS : parseDuration(raw['boot-timeout'] as string | number),
  };
}
