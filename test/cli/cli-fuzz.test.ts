// Fuzzing the command line's and the pool configuration's inputs. First,
// seeded property tests of the parsers and validators the CLI feeds: every
// input either yields a well-formed value that an independent re-computation
// agrees with, or a PoolError or UsageError with a message, never another exception. Then a
// few hundred runs of the built CLI on random argv made from its real
// vocabulary mixed with garbage: exit 0, 1 or 2, a message on stderr for every
// failure, never a stack trace or a hang, nothing half-made in /dev/shm.
// Last, the inputs this fuzzing found, one test each.
//
// CXL_MHD_FUZZ_CLI multiplies the case and run counts (default 1: 20 000
// cases per function, 300 CLI runs; `make soak` can raise it).
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { UsageError } from '../../src/errors/index.js';
import { FmApiServer, serveChannel } from '../../src/fmapi/server.js';
import { PoolError } from '../../src/pool/errors.js';
import { validateGeometry } from '../../src/pool/geometry.js';
import type { Geometry } from '../../src/pool/layout.js';
import { validatePoolName } from '../../src/pool/paths.js';
import { parseSize } from '../../src/pool/units.js';
import { parseStaticWindow } from '../../src/qemu/args.js';
import { RUN_TIMEOUT_MS, type RunResult, runCli, runProblems } from '../helpers/cli-run.js';
import { FakeBackend } from '../helpers/fmapi-backend.js';
import { prng } from '../helpers/fmapi-util.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

type Rng = ReturnType<typeof prng>;

/** CXL_MHD_FUZZ_CLI: a positive multiplier of the default counts. */
function fuzzScale(env = process.env.CXL_MHD_FUZZ_CLI): number {
  if (env === undefined || env.trim() === '') return 1;
  const n = Number(env);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`CXL_MHD_FUZZ_CLI="${env}" must be a positive number (a multiplier of the default counts)`);
  return n;
}

const SCALE = fuzzScale();
const CASES = Math.max(1_000, Math.round(20_000 * SCALE));
const RUNS = Math.max(20, Math.round(300 * SCALE));
const LANES = 4;

const KiB = 2 ** 10;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const UNIT = 256 * MiB;
const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

// ---- generators -------------------------------------------------------------

/** JavaScript whitespace (what `\s` and trim() take), and look-alikes that are not. */
const WS = [' ', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u1680', '\u2003', '\u2028', '\u2029', '\u202f', '\u3000', '\ufeff'];
const NOT_WS = ['\u200b', '\u0085', '\u180e'];
const UNITS = [
  ...['', 'K', 'M', 'G', 'T', 'P', 'k', 'm', 'g', 't', 'p'],
  ...['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'kib', 'mb', 'KB', 'B', 'b', 'iB', 'ib'],
  ...['E', 'X', 'Ki', 'KiBG', 'MiBB', 'MM', 'i', 'Mi B', 'M B', 'M\u0130B', 'M\u0131B', '\u212a'],
];
const NINES_400 = '9'.repeat(400);
const JUNK = [
  ...['0x10M', '0X10', '1e9', '1E3M', 'NaN', 'Infinity', '-Infinity', '-1', '+1', '-0', '1.5G', '.5M', '1.', '1_000', '1,000', '1 000'],
  ...['0b101', '0o17', '../x', '..', './', 'x/../y', '\0', '1\0M', '\uff11', '\u0663', '\u00b2', '\u216b', '\u{1d7d7}', '\u{1f4be}'],
  ...['\ud800', '\udc00', '@', ',', ',exclusive', 'exclusive', '%s', '$\x7bx}', '$(id)', '__proto__', 'constructor', 'toString'],
  ...['9007199254740991', '9007199254740992', '9007199254740993', '8191P', '8192P', '8388607T', '8388608T', '18446744073709551616'],
  NINES_400,
];
const MUTATION_CHARS = ['0', '1', '9', 'K', 'M', 'G', 'i', 'B', 'b', ' ', '.', '-', '+', 'e', 'x', '@', ',', '/', '\0', '\n', '\u00a0'];
const MUTATION_ODD = ['\u00e9', '\uff11', '\u{1f4be}', '\ud800', '\u0130', '\u200b', 'A', 'Z', '_'];

function digits(r: Rng): string {
  switch (r.int(6)) {
    case 0:
      return String(r.int(10));
    case 1:
      return String(1 + r.int(4096));
    case 2:
      return '0'.repeat(1 + r.int(4)) + String(r.int(1000));
    case 3:
      return `${1 + r.int(2 ** 31)}${r.int(10 ** 9)}`;
    case 4:
      return r.pick(['256', '512', '1024', '268435456', '2097152', '8191', '8192', '8388607', '9007199254740991', '9007199254740992', '0']);
    default:
      return Array.from({ length: 1 + r.int(30) }, () => String(r.int(10))).join('');
  }
}

/** Inserts, deletes, replaces, duplicates or re-cases a few UTF-16 units (so surrogate pairs get split too). */
function mutateText(r: Rng, s: string, alphabet: readonly string[] = MUTATION_CHARS): string {
  let out = s;
  for (let k = 1 + r.int(3); k > 0; k--) {
    const at = r.int(out.length + 1);
    const ch = r.next() < 0.8 ? r.pick(alphabet) : r.pick(MUTATION_ODD);
    switch (r.int(6)) {
      case 0:
        out = out.slice(0, at) + ch + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1);
        break;
      case 2:
        out = out.slice(0, at) + ch + out.slice(at + 1);
        break;
      case 3:
        out = out.slice(0, at) + out.slice(at, at + 1 + r.int(4)).repeat(2) + out.slice(at + 1 + r.int(4));
        break;
      case 4:
        out = r.next() < 0.5 ? out.toUpperCase() : out.toLowerCase();
        break;
      default:
        out = out.slice(0, at) + r.pick(WS) + out.slice(at);
    }
  }
  return out;
}

function structuredSize(r: Rng): string {
  const ws = () => (r.next() < 0.15 ? r.pick(r.next() < 0.8 ? WS : NOT_WS).repeat(1 + r.int(2)) : '');
  return `${ws()}${digits(r)}${ws()}${r.pick(UNITS)}${ws()}`;
}

function sizeText(r: Rng): string {
  const x = r.next();
  if (x < 0.5) return structuredSize(r);
  if (x < 0.7) return Array.from({ length: 1 + r.int(3) }, () => (r.next() < 0.7 ? r.pick(JUNK) : r.pick(UNITS) || digits(r))).join('');
  return mutateText(r, structuredSize(r));
}

function windowText(r: Rng): string {
  const structured = () => {
    let s =
      r.next() < 0.6
        ? r.pick(['256M', '512M', '768M', '1G', '2G', '4G', '268435456', '0', '0M', '100M', '1', '8191P', ' 256M ', '256MiB'])
        : sizeText(r);
    if (r.next() < 0.6) {
      s += `@${r.next() < 0.6 ? r.pick(['0', '0M', ' 0 ', '00', '256M', '1G', '3G', '1T', '128M', '-0', '0x0', '', '1G@1G']) : sizeText(r)}`;
    }
    if (r.next() < 0.5) {
      s += `,${r.pick(['exclusive', 'shared', 'Exclusive', 'EXCLUSIVE', 'excl', '', 'exclusive,exclusive', 'shared ', ' exclusive'])}`;
    }
    return r.next() < 0.2 ? `${r.pick(WS)}${s}${r.pick(WS)}` : s;
  };
  const x = r.next();
  if (x < 0.6) return structured();
  if (x < 0.8) return Array.from({ length: 1 + r.int(4) }, () => r.pick([...JUNK, '@', ',', '@0', ',shared', '256M', '1G'])).join('');
  return mutateText(r, structured(), [...MUTATION_CHARS, '@', ',', 'exclusive']);
}

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
const NAME_JUNK = [
  ...['../x', '..', '.', 'x/y', '/x', 'x\0', '\0', 'A', 'Ab', '\u00e4', '\u0430', '\ufb00', '\u00df', '\u0130', '\u212a', 'x ', ' x'],
  ...['x\n', '\nx', '-x', '_x', '', ' ', 'x.y', '%2e%2e', '~', '*', '?', 'x'.repeat(32), 'x'.repeat(33), '\u{1f4be}', 'con'],
];

function validName(r: Rng, maxLen = 34): string {
  const first = NAME_CHARS[r.int(36)]!;
  return first + Array.from({ length: r.int(maxLen) }, () => NAME_CHARS[r.int(NAME_CHARS.length)]).join('');
}

function nameText(r: Rng): string {
  const x = r.next();
  if (x < 0.4) return validName(r, r.next() < 0.8 ? 12 : 34);
  if (x < 0.6) return Array.from({ length: 1 + r.int(3) }, () => (r.next() < 0.6 ? r.pick(NAME_JUNK) : validName(r, 6))).join('');
  return mutateText(r, validName(r, 12), [...NAME_CHARS.split(''), '.', '/', '\0', ' ', 'A', '\n']);
}

const SPECIAL_NUMBERS = [
  ...[Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, -1, 0.5, 1, 2, 31, 32, 33, 64],
  ...[2 * MiB, 2 * MiB - 1, 2 * MiB + 1, 4 * MiB, 128 * MiB, UNIT, UNIT + 1, 512 * MiB, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 32 + 2 * MiB],
  ...[2 ** 53, 2 ** 53 - UNIT, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON],
  ...[1e21, 3 * 2 * MiB, 3 * UNIT, 1 * KiB, 1 * GiB, 2 ** 52 + UNIT],
];
/** Not numbers at all: what an untyped config could hand over. */
const NOT_NUMBERS: unknown[] = ['4', '2M', '', null, undefined, true, [], [2], {}, 4n];
/** Not strings: what parsed JSON (or a missing field) could hand over as a name. */
const NOT_STRINGS: unknown[] = [undefined, null, 0, 1, 4.5, true, [], ['a'], {}, { name: 'a' }];

function numberValue(r: Rng, kind: 'heads' | 'block' | 'capacity'): unknown {
  const x = r.next();
  if (x < 0.02) return r.pick(NOT_NUMBERS);
  if (x < 0.2) return r.pick(SPECIAL_NUMBERS);
  if (x < 0.35) return (r.next() < 0.1 ? -1 : 1) * 2 ** r.int(64);
  if (x < 0.45) return r.next() * 2 ** r.int(60);
  if (kind === 'heads') return r.int(40) - 4;
  if (kind === 'block') return r.next() < 0.7 ? 2 ** (19 + r.int(12)) : r.int(2 ** 29);
  return r.next() < 0.7 ? (r.int(64) + (r.next() < 0.05 ? 0.5 : 0)) * UNIT : (1 + r.int(2 ** 30)) * 2 ** r.int(30);
}

// ---- oracles: independent of the code under test ----------------------------

/** What parseSize should return: digits, optional blanks, an optional binary unit with optional B/iB, or null. */
function expectedSize(text: string): number | null {
  const t = text.trim();
  let i = 0;
  while (i < t.length && t.charCodeAt(i) >= 48 && t.charCodeAt(i) <= 57) i++;
  if (i === 0) return null;
  let rest = t.slice(i).trimStart();
  let unit = 1n;
  const c = rest.charCodeAt(0);
  const idx = c < 128 ? 'KMGTP'.indexOf(rest.charAt(0).toUpperCase()) : -1;
  if (idx >= 0) {
    unit = 1024n ** BigInt(idx + 1);
    rest = rest.slice(1);
  }
  const tail = rest.toLowerCase();
  if (tail !== '' && tail !== 'b' && tail !== 'ib') return null;
  const bytes = BigInt(t.slice(0, i)) * unit;
  return bytes > 0n && bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : null;
}

function expectedWindow(text: string): { size: number; offset: number; exclusive: boolean } | null {
  const t = text.trim();
  let k = 0;
  while (k < t.length && t[k] !== '@' && t[k] !== ',') k++;
  if (k === 0) return null;
  let rest = t.slice(k);
  let offsetText: string | undefined;
  if (rest.startsWith('@')) {
    const comma = rest.indexOf(',');
    offsetText = comma < 0 ? rest.slice(1) : rest.slice(1, comma);
    if (offsetText === '') return null;
    rest = comma < 0 ? '' : rest.slice(comma);
  }
  if (rest !== '' && rest !== ',exclusive' && rest !== ',shared') return null;
  const size = expectedSize(t.slice(0, k));
  // A zero offset may carry a unit ("0M"); sizes themselves must be non-zero.
  const offset = offsetText === undefined || /^\s*0+[KMGTP]?(?:i?B)?\s*$/i.test(offsetText) ? 0 : expectedSize(offsetText);
  if (size === null || offset === null || size % UNIT !== 0 || offset % UNIT !== 0) return null;
  return { size, offset, exclusive: rest === ',exclusive' };
}

function expectedNameOk(name: unknown): boolean {
  if (typeof name !== 'string' || name.length < 1 || name.length > 32) return false;
  const ok = (c: number, first: boolean) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (!first && (c === 95 || c === 45));
  for (let i = 0; i < name.length; i++) if (!ok(name.charCodeAt(i), i === 0)) return false;
  return true;
}

function expectedGeometry(g: Record<string, unknown>): 'ok' | 'BAD_HEADS' | 'BAD_BLOCK' | 'BAD_SIZE' {
  const { headCount: h, blockBytes: b, capacityBytes: c } = g;
  if (typeof h !== 'number' || !Number.isInteger(h) || h < 1 || h > 32) return 'BAD_HEADS';
  if (typeof b !== 'number' || !Number.isInteger(b) || b < 2 * MiB || b > 256 * MiB || !Number.isInteger(Math.log2(b))) return 'BAD_BLOCK';
  if (typeof c !== 'number' || !Number.isSafeInteger(c) || c <= 0 || c % UNIT !== 0) return 'BAD_SIZE';
  return 'ok';
}

// ---- the property harness ---------------------------------------------------

const show = (v: unknown): string => {
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x === undefined ? 'undefined' : x)) ?? String(v);
  } catch {
    return String(v);
  }
};

interface Tally {
  accepted: number;
  refused: number;
  problems: string[];
}

/**
 * Runs `fn` on `count` generated inputs. A call must return (then `accept`
 * checks the value and returns a problem or null) or throw a PoolError (or, for
 * what a person typed outside the pool, a UsageError) with a
 * message (then `refuse` may object to the refusal).
 */
function property<I, O>(
  seed: number,
  count: number,
  gen: (r: Rng) => I,
  fn: (input: I) => O,
  accept: (input: I, value: O) => string | null,
  refuse: (input: I, e: PoolError | UsageError) => string | null,
): Tally {
  const r = prng(seed);
  const t: Tally = { accepted: 0, refused: 0, problems: [] };
  const seen = new Set<string>();
  const note = (i: number, input: I, what: string) => {
    const key = `${show(input)}: ${what}`;
    if (!seen.has(key) && t.problems.length < 40) t.problems.push(`case ${i}, input ${key}`);
    seen.add(key);
  };
  for (let i = 0; i < count; i++) {
    const input = gen(r);
    let value: O;
    try {
      value = fn(input);
    } catch (e) {
      t.refused++;
      if (!(e instanceof PoolError || e instanceof UsageError)) {
        note(i, input, `threw ${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`);
      } else if (
        typeof e.message !== 'string' ||
        e.message.trim() === '' ||
        typeof e.code !== 'string' ||
        !e.errorCode.startsWith('CXLMHD_ERR_')
      ) {
        note(i, input, `${e.name} without a message or code: ${show({ code: e.code, errorCode: e.errorCode, message: e.message })}`);
      } else {
        const p = refuse(input, e);
        if (p) note(i, input, p);
      }
      continue;
    }
    t.accepted++;
    const p = accept(input, value);
    if (p) note(i, input, p);
  }
  return t;
}

/** One JSON line per passed fuzz test into CXL_MHD_RESULTS, when set (make soak collects them). */
function record(result: Record<string, unknown>): void {
  if (process.env.CXL_MHD_RESULTS) appendFileSync(process.env.CXL_MHD_RESULTS, `${JSON.stringify(result)}\n`);
}

function expectHealthy(fn: string, t: Tally): void {
  expect(t.problems, t.problems.join('\n')).toEqual([]);
  // The generators reach both sides of the boundary.
  expect(t.accepted, 'inputs accepted').toBeGreaterThan(CASES * 0.05);
  expect(t.refused, 'inputs refused').toBeGreaterThan(CASES * 0.05);
  record({ test: 'fuzz-cli-property', fn, cases: CASES, accepted: t.accepted, refused: t.refused });
}

describe(`property fuzz: ${CASES} inputs per function (seeded)`, () => {
  it('parseSize: a positive safe integer equal to an independent parse, or a PoolError', () => {
    const t = property(
      0x512e,
      CASES,
      sizeText,
      (text) => parseSize(text, 'capacity'),
      (text, v) => {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return `returned ${show(v)}, not a positive safe integer`;
        const want = expectedSize(text);
        return v === want ? null : `returned ${v}, expected ${want === null ? 'a refusal' : want}`;
      },
      (text, e) => {
        const want = expectedSize(text);
        if (want !== null) return `refused (${e.message}), expected ${want}`;
        return e.message.includes('capacity') ? null : `message does not say what was wrong: ${e.message}`;
      },
    );
    expectHealthy('parseSize', t);
  });

  it('validatePoolName: the name itself when it matches [a-z0-9][a-z0-9_-]{0,31}, else a PoolError', () => {
    const t = property(
      0x4a3e,
      CASES,
      (r) => (r.next() < 0.01 ? (r.pick(NOT_STRINGS) as string) : nameText(r)),
      (name) => validatePoolName(name),
      (name, v) => {
        if (v !== name) return `returned ${show(v)}, not the name given`;
        if (!POOL_NAME.test(v) || !expectedNameOk(v)) return 'accepted a name outside [a-z0-9][a-z0-9_-]{0,31}';
        return null;
      },
      (name, e) => (expectedNameOk(name) ? `refused a valid name (${e.message})` : null),
    );
    expectHealthy('validatePoolName', t);
  });

  it('parseStaticWindow: 256 MiB-aligned size and offset equal to an independent parse, or a coded refusal', () => {
    const t = property(
      0x3a7d,
      CASES,
      windowText,
      (text) => parseStaticWindow(text),
      (text, w) => {
        const ok =
          Number.isSafeInteger(w.size) &&
          w.size > 0 &&
          w.size % UNIT === 0 &&
          Number.isSafeInteger(w.offset) &&
          w.offset >= 0 &&
          w.offset % UNIT === 0 &&
          typeof w.exclusive === 'boolean';
        if (!ok) return `returned ${show(w)}, not a 256 MiB-aligned window`;
        const want = expectedWindow(text);
        return show(w) === show(want) ? null : `returned ${show(w)}, expected ${want === null ? 'a refusal' : show(want)}`;
      },
      (text, e) => {
        const want = expectedWindow(text);
        return want === null ? null : `refused (${e.message}), expected ${show(want)}`;
      },
    );
    expectHealthy('parseStaticWindow', t);
  });

  it('validateGeometry (allowOvercommit): accepts exactly the valid geometries, refuses the rest with the right code', () => {
    const t = property(
      0x6e0,
      CASES,
      (r): Record<string, unknown> => {
        // Mostly valid in two fields, so the third is what decides.
        const g: Record<string, unknown> = {
          headCount: r.next() < 0.6 ? 1 + r.int(32) : numberValue(r, 'heads'),
          blockBytes: r.next() < 0.6 ? 2 ** (21 + r.int(8)) : numberValue(r, 'block'),
          capacityBytes: r.next() < 0.6 ? (1 + r.int(64)) * UNIT : numberValue(r, 'capacity'),
        };
        return g;
      },
      (g) => validateGeometry(g as unknown as Geometry, { allowOvercommit: true }),
      (g, v) => {
        if (v !== undefined) return `returned ${show(v)}`;
        const want = expectedGeometry(g);
        return want === 'ok' ? null : `accepted; expected ${want}`;
      },
      (g, e) => {
        const want = expectedGeometry(g);
        return want === e.code ? null : `refused with ${e.code} (${e.message}); expected ${want}`;
      },
    );
    expectHealthy('validateGeometry', t);
  });
});

// ---- the CLI as a process ---------------------------------------------------

const firstLines = (s: string, n = 3) =>
  s
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, n)
    .join(' | ');

const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The temp world the fuzzed processes live in: dirs good and bad, FM-LD ports dead and alive. */
interface World {
  root: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  file: string;
  dangling: string;
  staleSock: string;
  liveSock: string;
  goodStateDirs: string[];
  badStateDirs: string[];
  runDirs: string[];
  ports: string[];
  noQemu: string;
}

function makeStaleSocket(path: string): void {
  // A listener that dies without closing leaves its socket file behind, with nobody listening.
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  if (!existsSync(path)) throw new Error(`could not make a stale socket at ${path}`);
}

function makeWorld(): World {
  const root = tempDir('cxl-mhd-fuzz-cli-');
  const cwd = join(root, 'w1', 'w2', 'w3'); // relative paths like ../../x stay inside root
  mkdirSync(cwd, { recursive: true });
  mkdirSync(join(root, 'state'));
  mkdirSync(join(root, 'run'));
  const file = join(root, 'file');
  writeFileSync(file, 'not a directory, not a port\n');
  const dangling = join(root, 'dangling');
  symlinkSync(join(root, 'nowhere'), dangling);
  const staleSock = join(root, 'stale.sock');
  makeStaleSocket(staleSock);
  return {
    root,
    cwd,
    env: { ...process.env, XDG_STATE_HOME: join(root, 'xdg-state'), XDG_RUNTIME_DIR: join(root, 'xdg-run') },
    file,
    dangling,
    staleSock,
    liveSock: join(root, 'fm.sock'),
    goodStateDirs: [join(root, 'state'), join(root, 'state-new', 'a', 'b'), 'rel-state', '../../rel-state'],
    badStateDirs: [file, join(file, 'sub'), dangling, join(dangling, 'sub')],
    runDirs: [join(root, 'run'), join(root, 'run-new'), file, 'rel-run', ''],
    ports: [join(root, 'no-such-port'), file, root, staleSock, join(root, 'fm.sock'), '/dev/null', 'relative-port'],
    noQemu: join(root, 'no-qemu'),
  };
}

/** An FM-API server on a Unix socket, answering from the scripted fake backend. */
async function startLiveFm(path: string): Promise<{ close: () => Promise<void> }> {
  const server = new FmApiServer(new FakeBackend());
  const sockets = new Set<Socket>();
  const net: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    serveChannel(s, server, {});
  });
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    net.listen(path, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        net.close(() => resolve());
      }),
  };
}

// ---- argv generation --------------------------------------------------------

interface Lane {
  id: number;
  r: Rng;
  pools: string[];
  /** Pools of this lane that exist, as far as successful creates and destroys say. */
  exists: Set<string>;
}

const BAD_POOL_NAMES = ['BAD', '../x', '', '-x', '_x', 'x'.repeat(33), 'x/y', '\u00e4', 'a b', '.', 'Pool', 'x\n'];
const GARBAGE = [
  ...['--', '-', '--bogus', '-x', '--pool=', '--json', '--force', '--keep', '', ' ', '\u00fc', '\u{1f4a5}', '--state-dir', '--run-dir'],
  ...['%s', '$\x7bHOME}', '$(id)', '`id`', "'", '"', '\\', '\n', '-h', '--help', 'help', '--capacity', '--heads', '--port', '--extent'],
  ...['x'.repeat(5000), '../x', '../../y', '=', '--=', '---', '--pool', '256M', '-1', 'NaN', 'create', 'destroy', 'fm', 'identify'],
];

/** A value generator; `clean` asks for a value the command should accept, so runs also reach the success paths. */
type Gen = (r: Rng, lane: Lane, w: World, clean: boolean) => string;
const pick =
  (...xs: string[]): Gen =>
  (r) =>
    r.pick(xs);
const mostly =
  (good: string[], bad: string[], p = 0.7): Gen =>
  (r, _lane, _w, clean) =>
    clean || r.next() < p ? r.pick(good) : r.next() < 0.7 ? r.pick(bad) : sizeText(r);

const poolValue: Gen = (r, lane, _w, clean) => (clean || r.next() < 0.8 ? r.pick(lane.pools) : r.pick(BAD_POOL_NAMES));
const capacityValue = mostly(
  ['256M', '512M', '1G', '2G', '268435456', '256MiB', ' 512M', '0256M'],
  ['0', '100M', '1T', '8191P', 'lots', '-256M', '1e9', '0x10M', 'NaN', 'Infinity', '1KiBG', '', `${NINES_400}P`, '1.5G'],
);
const blockValue = mostly(['2M', '4M', '256M', '2MiB', '2097152', '128M'], ['3M', '1M', '512M', '0', 'junk', '256K', '', '-2M']);
const sizeValue = mostly(['256M', '2M', '1G', '4096'], ['0', 'x', '', '-1', '8191P', '1.5M', NINES_400]);
const uuid = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';

interface CommandSpec {
  words: string[];
  dirs: boolean;
  weight: number;
  options: [flag: string, value: Gen | null, p: number][];
  /** Appended last, after garbage: makes sure the command refuses (serve must never start, demo never boot). */
  poison?: string[];
  env?: (r: Rng, w: World) => NodeJS.ProcessEnv;
}

const qemuEnv = (r: Rng, w: World): NodeJS.ProcessEnv => (r.next() < 0.5 ? w.env : { ...w.env, CXL_MHD_QEMU: w.noQemu });

const COMMANDS: CommandSpec[] = [
  {
    words: ['pool', 'create'],
    dirs: true,
    weight: 6,
    options: [
      ['--pool', poolValue, 0.9],
      ['--capacity', capacityValue, 0.9],
      ['--heads', mostly(['1', '2', '3', '32', '007'], ['0', '33', '-1', 'two', '1.5', '', ' 2', '99999999999999999999', NINES_400]), 0.9],
      ['--block', blockValue, 0.4],
      ['--mode', mostly(['600', '0600', '640', '644', '7777', '000'], ['999', '8', '60', 'rw-------', '0o600', '', '06000']), 0.3],
    ],
  },
  {
    words: ['pool', 'destroy'],
    dirs: true,
    weight: 3,
    options: [
      ['--pool', poolValue, 0.9],
      ['--force', null, 0.3],
    ],
  },
  {
    words: ['status'],
    dirs: true,
    weight: 3,
    options: [
      ['--pool', poolValue, 0.9],
      ['--json', null, 0.5],
    ],
  },
  {
    words: ['fsck'],
    dirs: true,
    weight: 3,
    options: [
      ['--pool', poolValue, 0.9],
      ['--json', null, 0.5],
    ],
  },
  {
    words: ['qemu-args'],
    dirs: true,
    weight: 5,
    env: qemuEnv,
    options: [
      ['--pool', poolValue, 0.9],
      ['--head', mostly(['0', '1', '2', '31'], ['32', '40', '-1', 'x', '1.5', '', '99999999999999999999', NINES_400, '00']), 0.9],
      ['--static', (r, _l, _w, clean) => (clean ? r.pick(['256M', '256M@256M,exclusive', '512M,shared']) : windowText(r)), 0.5],
      ['--spare-ports', mostly(['0', '1', '2', '16'], ['17', '-1', 'x', '', '99999999999999999999']), 0.3],
      ['--delivery', mostly(['hotplug', 'dcd'], ['DCD', 'x', '']), 0.3],
      ['--memory', pick('1G', '512M', '', 'x', '1G,slots=2'), 0.2],
      ['--capacity', capacityValue, 0.6],
      ['--with-binary', null, 0.2],
    ],
  },
  {
    words: ['serve'],
    dirs: true,
    weight: 2,
    options: [
      ['--pool', poolValue, 0.9],
      ['--capacity', capacityValue, 0.3],
      ['--heads', pick('1', '2', 'x', '0'), 0.3],
      ['--block', blockValue, 0.2],
      ['--socket-group', pick('root', 'nogroup', 'no-such-group', '', '0'), 0.2],
      ['--allow-uid', pick('0', '1000', 'x', '-1', ''), 0.2],
      ['--qmp-timeout', pick('10000', '0', 'x', '-1'), 0.2],
      ['--fm-socket', null, 0.2],
    ],
    poison: ['--capacity', 'not-a-size', '--capacity', 'not-a-size'],
  },
  { words: ['qemu-bin'], dirs: false, weight: 1, env: qemuEnv, options: [] },
  { words: ['demo'], dirs: false, weight: 1, options: [['--keep', null, 0.5]], poison: ['--no-such-option', '--no-such-option'] },
  ...(['identify', 'mhd-info', 'head-info', 'dcd-info'] as const).map(
    (sub): CommandSpec => ({ words: ['fm', sub], dirs: false, weight: 1, options: [] }),
  ),
  ...(['region-config', 'extents'] as const).map(
    (sub): CommandSpec => ({
      words: ['fm', sub],
      dirs: false,
      weight: 1,
      options: [['--host', mostly(['0', '1', '3'], ['4', '65535', '65536', '-1', 'x', '', '99999999999', NINES_400]), 0.9]],
    }),
  ),
  {
    words: ['fm', 'add'],
    dirs: false,
    weight: 3,
    options: [
      ['--host', mostly(['0', '1', '3'], ['65536', '-1', 'x', '', NINES_400]), 0.9],
      ['--region', mostly(['0'], ['1', '7', '8', '256', 'x', NINES_400]), 0.3],
      [
        '--extent',
        mostly(['1G:256M', '0:2M', '256M:2M'], ['0:0', '0', '1G', '1G:', '::', ':256M', '1G:256M:1', 'x:y', '8191P:1', '7P:1P']),
        0.7,
      ],
      ['--extent', mostly(['2G:256M'], ['1G:1.5M', `${NINES_400}:1`]), 0.2],
      ['--length', sizeValue, 0.3],
      ['--policy', mostly(['prescriptive', 'free', 'contiguous'], ['x', 'Free', '']), 0.4],
      ['--shared', null, 0.2],
      ['--tag', mostly([uuid, uuid.toUpperCase()], ['nope', '', uuid.replace(/-/g, ''), `${uuid}0`, 'g'.repeat(36)]), 0.3],
    ],
  },
  {
    words: ['fm', 'release'],
    dirs: false,
    weight: 2,
    options: [
      ['--host', mostly(['0', '1'], ['65536', 'x', NINES_400]), 0.9],
      ['--region', mostly(['0'], ['9', 'x']), 0.2],
      ['--extent', mostly(['1G:256M'], ['0:0', 'x:y', '1G']), 0.5],
      ['--tag', mostly([uuid], ['nope', '']), 0.5],
    ],
  },
  { words: [], dirs: false, weight: 1, options: [] },
  { words: ['pool'], dirs: false, weight: 1, options: [] },
  { words: ['fm'], dirs: false, weight: 1, options: [] },
  { words: ['help'], dirs: false, weight: 1, options: [] },
  { words: ['no-such-command'], dirs: false, weight: 1, options: [] },
];
const WEIGHTED = COMMANDS.flatMap((c) => Array.from({ length: c.weight }, () => c));

const FM_TIMEOUTS = ['2000', '30000', '0', 'x', '-1', '1.5', '99999999999'];

/** Builds one argv; the values that name pools, dirs and ports are kept inside the test's own world. */
function buildArgv(lane: Lane, w: World): { argv: string[]; env: NodeJS.ProcessEnv; spec: CommandSpec } {
  const { r } = lane;
  const spec = r.pick(WEIGHTED);
  // Two runs in five are clean: likely values, no garbage. They create pools for the others to work on.
  const clean = r.next() < 0.4;
  const words = [...spec.words];
  if (spec.words[0] === 'help' && r.next() < 0.5) words.push(r.pick(['pool', 'fm', 'serve', 'nope']));
  const pairs: string[][] = [];
  for (const [flag, gen, p] of spec.options) {
    if (r.next() >= (clean && p >= 0.9 ? 1 : p)) continue;
    if (gen === null) pairs.push([flag]);
    else {
      const value = gen(r, lane, w, clean);
      const roll = clean ? 1 : r.next();
      if (roll < 0.05)
        pairs.push([flag]); // value missing
      else if (roll < 0.15) pairs.push([`${flag}=${value}`]);
      else pairs.push([flag, value]);
    }
  }
  if (spec.dirs) {
    const dir = (good: string[], bad: string[]) => (clean || r.next() < 0.8 ? r.pick(good) : r.pick(bad));
    if (r.next() < 0.9) pairs.push(['--state-dir', dir(w.goodStateDirs, w.badStateDirs)]);
    if (r.next() < 0.6) pairs.push(['--run-dir', r.pick(w.runDirs)]);
  }
  if (spec.words[0] === 'fm') {
    if (clean || r.next() < 0.95) pairs.push(['--port', clean || r.next() < 0.4 ? w.liveSock : r.pick(w.ports)]);
    if (r.next() < 0.4) pairs.push(['--timeout', clean ? '30000' : r.pick(FM_TIMEOUTS)]);
    if (r.next() < 0.3) pairs.push(['--json']);
  }
  // Shuffle the option pairs, then sprinkle garbage in between.
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  let rest = pairs.flat();
  for (let k = clean || r.next() < 0.5 ? 0 : 1 + r.int(3); k > 0; k--) {
    const at = r.int(rest.length + 1);
    rest.splice(at, 0, r.next() < 0.8 ? r.pick(GARBAGE) : mutateText(r, r.pick(GARBAGE)));
  }
  if (spec.poison) rest = [...rest.filter((t) => t !== '--'), ...spec.poison];
  const argv = sanitize([...words, ...rest], lane, w);
  return { argv, env: spec.env ? spec.env(r, w) : w.env, spec };
}

/**
 * Keeps every run inside the test's world: a syntactically valid pool name
 * given to --pool is always one of this lane's (so cleanup knows it), dirs and
 * ports are never absolute paths outside the temp root, and argv has no NUL
 * (the OS cannot pass one).
 */
function sanitize(argv: string[], lane: Lane, w: World): string[] {
  const out = argv.map((t) => t.replace(/\0/g, ''));
  const fixPool = (v: string) => (POOL_NAME.test(v) && !lane.pools.includes(v) ? lane.pools[0]! : v);
  const inWorld = (v: string) => !isAbsolute(v) || v === w.root || v.startsWith(`${w.root}/`) || v === '/dev/null';
  for (let i = 0; i < out.length; i++) {
    const t = out[i]!;
    if (t === '--pool' && i + 1 < out.length) out[i + 1] = fixPool(out[i + 1]!);
    if (t.startsWith('--pool=')) out[i] = `--pool=${fixPool(t.slice(7))}`;
    for (const flag of ['--state-dir', '--run-dir', '--port']) {
      if (t === flag && i + 1 < out.length && !inWorld(out[i + 1]!)) out[i + 1] = join(w.root, 'state');
      if (t.startsWith(`${flag}=`) && !inWorld(t.slice(flag.length + 1))) out[i] = `${flag}=${join(w.root, 'state')}`;
    }
  }
  return out;
}

const shmExists = (pool: string) => ({
  state: existsSync(`/dev/shm/cxl-mhd.${pool}.state`),
  mem: existsSync(`/dev/shm/cxl-mhd.${pool}.mem`),
});

describe('CLI process fuzz', () => {
  it(
    `${RUNS} runs of the built CLI on random argv: exit 0/1/2, a message for every failure, no stack trace, no hang, no half-made pool`,
    async () => {
      const world = makeWorld();
      const live = await startLiveFm(world.liveSock);
      onTestFinished(() => live.close());
      const failures: string[] = [];
      const codes = new Map<string, number>();
      let created = 0;
      const lanes: Lane[] = Array.from({ length: LANES }, (_, id) => ({
        id,
        r: prng(0xc11 + id),
        pools: [uniquePoolName('fz'), uniquePoolName('fz')],
        exists: new Set<string>(),
      }));
      const lane = async (l: Lane) => {
        // Lane i makes runs i, i + LANES, ...: each lane's sequence is the same on every run.
        for (let n = l.id; n < RUNS; n += LANES) {
          const { argv, env, spec } = buildArgv(l, world);
          const res = await runCli(argv, { cwd: world.cwd, env });
          const key = res.timedOut ? 'hang' : String(res.code ?? res.signal);
          codes.set(key, (codes.get(key) ?? 0) + 1);
          const problems = runProblems(res, { fsck: spec.words[0] === 'fsck' });
          // The shm objects of this lane's pools change only by a create or destroy that succeeded.
          if (res.code === 0) {
            const made = /^created pool (\S+):/m.exec(res.stdout)?.[1];
            const gone = /^destroyed pool (\S+)$/m.exec(res.stdout)?.[1];
            if (made) {
              l.exists.add(made);
              created++;
            }
            if (gone) l.exists.delete(gone);
          }
          for (const p of l.pools) {
            const s = shmExists(p);
            if (s.state !== s.mem)
              problems.push(`pool ${p} half-made: state object ${s.state ? 'present' : 'absent'}, data ${s.mem ? 'present' : 'absent'}`);
            const expected = l.exists.has(p);
            if (s.state !== expected) {
              problems.push(
                expected
                  ? `pool ${p} vanished though the command failed (exit ${res.code})`
                  : `pool ${p} left in /dev/shm though no create succeeded (exit ${res.code})`,
              );
            }
            if (s.state) l.exists.add(p);
            else l.exists.delete(p);
          }
          if (problems.length > 0) {
            const extra = env.CXL_MHD_QEMU ? `CXL_MHD_QEMU=${shq(env.CXL_MHD_QEMU)} ` : '';
            failures.push(
              `run ${n} (lane ${l.id}): ${problems.join('; ')}\n    ${extra}node dist/src/cli/main.js ${argv.map(shq).join(' ')}\n    exit ${res.code}, stderr: ${firstLines(res.stderr)}`,
            );
          }
        }
      };
      await Promise.all(lanes.map(lane));

      expect(failures.length, `${failures.length} of ${RUNS} runs broke a rule:\n${failures.slice(0, 40).join('\n')}`).toBe(0);
      // The mix reached success, refusals and usage errors, and made real pools.
      for (const c of ['0', '1', '2']) expect(codes.get(c) ?? 0, `exit ${c} in ${show([...codes])}`).toBeGreaterThan(RUNS * 0.03);
      expect(created).toBeGreaterThan(0);
      record({ test: 'fuzz-cli-process', runs: RUNS, exitCodes: Object.fromEntries(codes), poolsCreated: created });
    },
    60_000 + Math.ceil(RUNS / LANES) * RUN_TIMEOUT_MS,
  );
});

// ---- what the fuzzing found -------------------------------------------------

/** A refusal as the README promises: exit 1 or 2, one clear line on stderr, no stack trace. */
function expectCleanRefusal(r: RunResult): void {
  expect(runProblems(r), `exit ${r.code}, stderr:\n${r.stderr}`).toEqual([]);
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).toMatch(/^cxl-mhd: \S|^error: /m);
}

describe('inputs the fuzzing found', () => {
  // Each test makes its own world: temp dirs are removed after every test.

  it.each([
    ['a regular file', (w: World) => w.file],
    ['a directory', (w: World) => w.root],
    ['a socket nobody listens on', (w: World) => w.staleSock],
  ])('fm identify --port <%s>: a clear refusal, not a stack trace', async (_what, port) => {
    const world = makeWorld();
    expectCleanRefusal(await runCli(['fm', 'identify', '--port', port(world)], { cwd: world.cwd, env: world.env }));
  });

  it.each([
    ['a regular file', (w: World) => w.file],
    ['a path under a regular file', (w: World) => join(w.file, 'sub')],
    ['a dangling symlink', (w: World) => w.dangling],
    ['a path in /proc', (_w: World) => '/proc/cxl-mhd-fuzz-no-such-dir'],
  ])('pool create --state-dir <%s>: a clear refusal, no hang, nothing left in /dev/shm', async (_what, dir) => {
    const world = makeWorld();
    const pool = uniquePoolName('fz');
    const r = await runCli(['pool', 'create', '--pool', pool, '--capacity', '256M', '--heads', '2', '--state-dir', dir(world)], {
      cwd: world.cwd,
      env: world.env,
    });
    expectCleanRefusal(r);
    expect(shmExists(pool)).toEqual({ state: false, mem: false });
  });

  it('pool destroy --state-dir <a regular file>: refuses cleanly and leaves the pool whole, or removes it all', async () => {
    const world = makeWorld();
    const pool = uniquePoolName('fz');
    const state = join(world.root, 'state');
    const made = await runCli(['pool', 'create', '--pool', pool, '--capacity', '256M', '--heads', '2', '--state-dir', state], {
      cwd: world.cwd,
      env: world.env,
    });
    expect(made.code, made.stderr).toBe(0);
    const r = await runCli(['pool', 'destroy', '--pool', pool, '--state-dir', world.file], { cwd: world.cwd, env: world.env });
    expect(runProblems(r), `exit ${r.code}, stderr:\n${r.stderr}`).toEqual([]);
    expect(shmExists(pool)).toEqual(r.code === 0 ? { state: false, mem: false } : { state: true, mem: true });
  });

  it.each([['x'], ['-1']])('fm identify --timeout %s on a live FM-LD channel: refuses and exits, no hang', async (timeout) => {
    const world = makeWorld();
    const live = await startLiveFm(world.liveSock);
    onTestFinished(() => live.close());
    const r = await runCli(['fm', 'identify', '--port', world.liveSock, '--timeout', timeout], { cwd: world.cwd, env: world.env });
    expectCleanRefusal(r);
    expect(r.stderr).toMatch(/--timeout/);
  });

  it.each([[['--static', '256M']], [['--delivery', 'dcd']]])(
    'qemu-args --head <400 nines> %j: a clear refusal, not a RangeError',
    async (extra) => {
      const world = makeWorld();
      const r = await runCli(['qemu-args', '--pool', uniquePoolName('fz'), '--head', NINES_400, '--capacity', '1G', ...extra], {
        cwd: world.cwd,
        env: world.env,
      });
      expectCleanRefusal(r);
    },
  );

  it.each([[['qemu-bin']], [['qemu-args', '--head', '0', '--capacity', '1G', '--with-binary']]])(
    '%j with no usable QEMU (CXL_MHD_QEMU names nothing): a clear refusal, not a stack trace',
    async (words) => {
      const world = makeWorld();
      const argv = words[0] === 'qemu-args' ? [...words, '--pool', uniquePoolName('fz')] : words;
      const r = await runCli(argv, { cwd: world.cwd, env: { ...world.env, CXL_MHD_QEMU: world.noQemu } });
      expectCleanRefusal(r);
      expect(r.stderr).toMatch(/CXL_MHD_QEMU/);
    },
  );
});
