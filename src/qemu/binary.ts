// Owns finding the QEMU (>= 10.0) that cxl-mhd runs, and the Debian root that supplies it and the guest kernels.
//
// One resolver for the tests, the demo and `qemu-args`, so they can never
// disagree about which QEMU a head runs on. The order mirrors
// scripts/setup-qemu.sh: CXL_MHD_QEMU, then a host QEMU >= 10.0 on PATH, then
// the root that `make setup` debootstraps into the cache directory: the
// chosen series' (CXL_MHD_QEMU_SERIES, `make setup QEMU=11|10`), else the
// other one if only that one was built.

import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';

export const MIN_QEMU_VERSION: readonly [number, number] = [10, 0];

export type QemuSeries = '11' | '10';
/** The series `make setup` builds when none is named. */
export const DEFAULT_QEMU_SERIES: QemuSeries = '11';
/** Directory names of the debootstrapped roots inside the cache dir: QEMU 11.1 + kernels 7.3 and 6.12, QEMU 10.0 + kernel 6.12. */
export const ROOT_DIR_NAMES: Readonly<Record<QemuSeries, string>> = { '11': 'trixie-backports-root', '10': 'trixie-root' };
/** The 10.0 root's name, which older checkouts used alone. */
export const ROOT_DIR_NAME = ROOT_DIR_NAMES['10'];
/** setup-qemu.sh writes this last; a root without it is incomplete. */
export const ROOT_STAMP_NAME = '.cxl-mhd-root-ok';

export type QemuSource = 'env' | 'host' | 'root';

export interface QemuBinary {
  /**
   * The words that run qemu-system-x86_64; QEMU's own arguments go after them
   * (then `firmwareArgs`). For a root QEMU this is
   * `[<root>/lib64/ld-linux-x86-64.so.2, '--library-path', <libs>, <root>/usr/bin/qemu-system-x86_64]`.
   */
  command: readonly string[];
  /**
   * `-L` pairs that point QEMU at its firmware. A root QEMU needs them: its
   * built-in search path names the host's /usr/share/qemu and
   * /usr/share/seabios (Debian keeps the BIOS there), and run through ld.so it
   * cannot find a data dir relative to itself (/proc/self/exe is the loader).
   * Empty for a host QEMU.
   */
  firmwareArgs: readonly string[];
  /** QEMU's version, e.g. "10.0.3". */
  version: string;
  /** The trixie root QEMU runs from, or null when it is a host/override binary. */
  root: string | null;
  /** Where it was found. */
  source: QemuSource;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Where setup-qemu.sh caches things: `${CXL_MHD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cxl-mhd}`. */
export function cacheDir(env: Env = process.env): string {
  // Empty counts as unset, as with the shell's `:-`.
  if (env.CXL_MHD_CACHE) return resolve(env.CXL_MHD_CACHE);
  const xdg = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return resolve(xdg, 'cxl-mhd');
}

/** The series asked for: `CXL_MHD_QEMU_SERIES` (11 or 10), else the default. */
export function qemuSeries(env: Env = process.env): QemuSeries {
  const s = env.CXL_MHD_QEMU_SERIES;
  if (!s) return DEFAULT_QEMU_SERIES;
  if (s !== '11' && s !== '10') throw new Error(`CXL_MHD_QEMU_SERIES=${s} must be 11 or 10`);
  return s;
}

/** Path of the chosen series' root (whether or not it has been built yet). */
export function trixieRootPath(env: Env = process.env): string {
  return join(cacheDir(env), ROOT_DIR_NAMES[qemuSeries(env)]);
}

/** The chosen series' root if setup finished building it, else the other series' root, else null. */
export function findTrixieRoot(env: Env = process.env): string | null {
  const series = qemuSeries(env);
  for (const s of [series, series === '11' ? '10' : '11'] as const) {
    const root = join(cacheDir(env), ROOT_DIR_NAMES[s]);
    if (isCompleteRoot(root)) return root;
  }
  return null;
}

/** The trixie root; throws with the fix when setup has not been run. */
export function trixieRoot(env: Env = process.env): string {
  const root = findTrixieRoot(env);
  if (root === null) {
    throw new Error(`no Debian root at ${trixieRootPath(env)} (guest kernel and QEMU come from it); run \`make setup\``);
  }
  return root;
}

/**
 * The guest kernel inside a root (`<root>/boot/vmlinuz-*`). With several, the
 * highest version wins, matching what the root's own /vmlinuz would point to.
 */
export function guestKernel(root: string = trixieRoot()): string {
  const boot = join(root, 'boot');
  let names: string[] = [];
  try {
    names = readdirSync(boot).filter((n) => n.startsWith('vmlinuz-'));
  } catch {
    // Reported below together with the fix.
  }
  const newest = names.sort((a, b) => compareVersions(a.slice('vmlinuz-'.length), b.slice('vmlinuz-'.length))).at(-1);
  if (newest === undefined) {
    throw new Error(`no guest kernel (vmlinuz-*) in ${boot}; run \`make setup\``);
  }
  return join(boot, newest);
}

/** The words that run the QEMU inside a root through that root's dynamic loader. */
export function rootQemuCommand(root: string): string[] {
  return [
    join(root, 'lib64', 'ld-linux-x86-64.so.2'),
    '--library-path',
    [join(root, 'lib', 'x86_64-linux-gnu'), join(root, 'usr', 'lib', 'x86_64-linux-gnu')].join(':'),
    join(root, 'usr', 'bin', 'qemu-system-x86_64'),
  ];
}

export function rootFirmwareArgs(root: string): string[] {
  return ['-L', join(root, 'usr', 'share', 'qemu'), '-L', join(root, 'usr', 'share', 'seabios')];
}

export interface ResolveOptions {
  env?: Env;
}

const cache = new Map<string, QemuBinary>();

/**
 * Finds a QEMU >= 10.0. Order: `CXL_MHD_QEMU` (a path; an error if it is not
 * a usable QEMU >= 10.0, because silently running another QEMU would hide a
 * misconfiguration), a host `qemu-system-x86_64` >= 10.0 on PATH, the trixie
 * root. Throws with an actionable message when there is none.
 */
export function resolveQemu(opts: ResolveOptions = {}): QemuBinary {
  const env = opts.env ?? process.env;
  // Running `qemu --version` costs tens of ms; callers resolve often.
  const key = JSON.stringify([env.CXL_MHD_QEMU ?? '', env.PATH ?? '', cacheDir(env), env.CXL_MHD_QEMU_SERIES ?? '']);
  const hit = cache.get(key);
  if (hit) return hit;
  const found = resolveUncached(env);
  cache.set(key, found);
  return found;
}

/** Full argv (program first) for spawning QEMU with `args`. */
export function qemuArgv(bin: QemuBinary, args: readonly string[]): string[] {
  return [...bin.command, ...bin.firmwareArgs, ...args];
}

function resolveUncached(env: Env): QemuBinary {
  const override = env.CXL_MHD_QEMU;
  if (override) {
    const path = resolve(override);
    if (!isExecutable(path)) {
      throw new Error(`CXL_MHD_QEMU=${override} is not an executable file; fix or unset it`);
    }
    // A root's QEMU cannot run against the host's libraries; run it the root's way.
    const root = rootOfQemu(path);
    const command = root === null ? [path] : rootQemuCommand(root);
    const version = qemuVersion(command);
    if (version === null) {
      throw new Error(`CXL_MHD_QEMU=${override} is not a QEMU (\`--version\` printed no QEMU version); fix or unset it`);
    }
    if (!versionAtLeast(version, MIN_QEMU_VERSION)) {
      throw new Error(`CXL_MHD_QEMU=${override} is QEMU ${version}; cxl-mhd needs >= ${MIN_QEMU_VERSION.join('.')}`);
    }
    return {
      command,
      firmwareArgs: root === null ? [] : rootFirmwareArgs(root),
      version,
      root,
      source: 'env',
    };
  }

  let tooOld: string | null = null;
  const host = findOnPath('qemu-system-x86_64', env.PATH ?? '');
  if (host !== null) {
    const version = qemuVersion([host]);
    if (version !== null && versionAtLeast(version, MIN_QEMU_VERSION)) {
      return {
        command: [host],
        firmwareArgs: [],
        version,
        root: null,
        source: 'host',
      };
    }
    tooOld = `${host} is QEMU ${version ?? '(unknown version)'}`;
  }

  const root = findTrixieRoot(env);
  if (root !== null) {
    const command = rootQemuCommand(root);
    const version = qemuVersion(command);
    if (version !== null && versionAtLeast(version, MIN_QEMU_VERSION)) {
      return {
        command,
        firmwareArgs: rootFirmwareArgs(root),
        version,
        root,
        source: 'root',
      };
    }
    throw new Error(`the QEMU in ${root} does not run (version ${version ?? 'unknown'}); delete ${root} and run \`make setup\``);
  }

  throw new Error(
    `no QEMU >= ${MIN_QEMU_VERSION.join('.')} found` +
      (tooOld ? ` (${tooOld}, too old)` : ' (none on PATH)') +
      ` and no Debian root at ${trixieRootPath(env)}; run \`make setup\`, or set CXL_MHD_QEMU to a QEMU >= ${MIN_QEMU_VERSION.join('.')}`,
  );
}

/** "10.0.3" from `QEMU emulator version 10.0.3 (Debian ...)`; null if it does not run. */
export function qemuVersion(command: readonly string[]): string | null {
  const [file, ...args] = command;
  if (file === undefined) return null;
  try {
    const out = execFileSync(file, [...args, '--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    return /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

function versionAtLeast(version: string, min: readonly [number, number]): boolean {
  const [major = 0, minor = 0] = version.split('.').map((p) => Number.parseInt(p, 10));
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

function isCompleteRoot(root: string): boolean {
  // The stamp's contents are setup-qemu.sh's business (it rebuilds on a
  // recipe change); here its presence means "finished", since the script
  // writes it just before the atomic rename.
  return existsSync(join(root, ROOT_STAMP_NAME)) && isExecutable(join(root, 'usr', 'bin', 'qemu-system-x86_64'));
}

/** `<root>` when `path` is `<root>/usr/bin/qemu-system-x86_64` of a finished root. */
function rootOfQemu(path: string): string | null {
  const root = dirname(dirname(dirname(path)));
  if (join(root, 'usr', 'bin', 'qemu-system-x86_64') !== path) return null;
  if (!existsSync(join(root, 'lib64', 'ld-linux-x86-64.so.2'))) return null;
  return isCompleteRoot(root) ? root : null;
}

function findOnPath(name: string, path: string): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+]/);
  const pb = b.split(/[.\-+]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isInteger(nx) && Number.isInteger(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}
