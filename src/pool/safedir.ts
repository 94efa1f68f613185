// Directories the backend may trust with its sockets: every existing
// component of the path, as given and as resolved, must be owned by the
// serving uid or root, and not writable by group or others unless sticky
// (as /tmp is: others may not rename or remove what is ours there). What
// the backend creates itself is made private and checked again once made,
// since another user may have made it first. OpenSSH applies the same
// rule to the files it trusts (docs/security.md, "The run and state dirs").
import { lstatSync, mkdirSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { PoolError } from './errors.js';

function euid(): number {
  return typeof process.geteuid === 'function' ? process.geteuid() : 0;
}

/** Every prefix of an absolute path, from `/` down to the path itself. */
function prefixes(abs: string): string[] {
  const parts = abs.split(sep).filter(Boolean);
  return ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)];
}

function problemOf(st: Stats, me: number): string | null {
  if (!st.isDirectory()) return 'is not a directory';
  if (st.uid !== me && st.uid !== 0) return `belongs to uid ${st.uid}, not to uid ${me} that runs this or root`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    return `is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode 0${(st.mode & 0o7777).toString(8)}) without the sticky bit`;
  }
  return null;
}

/**
 * Refuses `dir` (what: how the user named it) unless every existing
 * component is safe; components that do not exist yet are not judged here.
 */
export function checkSafeDir(dir: string, what: string): void {
  const me = euid();
  const abs = resolve(dir);
  const refuse = (p: string, why: string): never => {
    throw new PoolError(
      'NOT_OWNED',
      `${what} ${dir}: ${p} ${why}; refusing to use it (someone else could replace what the backend puts there)`,
    );
  };
  let deepest = '/';
  for (const p of prefixes(abs)) {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw new PoolError('BAD_STATE', `${what} ${dir}: cannot use ${p} (${(e as NodeJS.ErrnoException).code})`);
    }
    deepest = p;
    if (st.isSymbolicLink()) {
      // A link someone else owns can be repointed at any time; ours or root's is judged by where it leads.
      if (st.uid !== me && st.uid !== 0) refuse(p, `is a symbolic link owned by uid ${st.uid}`);
      continue;
    }
    const why = problemOf(st, me);
    if (why) refuse(p, why);
  }
  // The same walk over where the links lead.
  let real: string;
  try {
    real = realpathSync(deepest);
  } catch (e) {
    throw new PoolError('BAD_STATE', `${what} ${dir}: cannot resolve ${deepest} (${(e as NodeJS.ErrnoException).code})`);
  }
  for (const p of prefixes(real)) {
    const why = problemOf(statSync(p), me);
    if (why) refuse(p, why);
  }
}

/**
 * Makes `dir` and its missing parents (parents `parentMode`, `dir` itself
 * `mode`) after checking what exists, then checks again: a directory someone
 * else made between the check and mkdir is refused, not used.
 */
export function makeSafeDir(dir: string, what: string, mode: number, parentMode = 0o711): void {
  checkSafeDir(dir, what);
  const abs = resolve(dir);
  mkdirSync(dirname(abs), { recursive: true, mode: parentMode });
  mkdirSync(abs, { recursive: true, mode });
  checkSafeDir(dir, what);
}
