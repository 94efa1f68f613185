// Who may use the northbound: the users file (plain or scrypt-hashed
// passwords), HTTP Basic, Redfish sessions (X-Auth-Token), and the local
// token that `cxl-mhd events` reads from the 0600 record in the run dir.
import { createHash, randomBytes, randomUUID, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync, type Stats, statSync } from 'node:fs';
import { UsageError } from '../errors/index.js';
import { dummyParams, type ScryptParams, ScryptWorker } from './password.js';

/** Thrown for a users file `serve` must refuse; its message is the one line the user sees. */
export class UsersFileError extends UsageError {}

type Secret = { kind: 'plain'; password: Buffer } | { kind: 'scrypt'; N: number; r: number; p: number; salt: Buffer; hash: Buffer };

const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;
// scrypt parameters a hash line may ask for: enough for real hashes, not enough to exhaust memory on login.
const MAX_N = 2 ** 20;

/** hashPassword off the event loop: what the accounts service stores. */
export async function hashPasswordAsync(password: string, N = 16384, r = 8, p = 1): Promise<string> {
  const salt = randomBytes(16);
  const hash = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (e, k) => (e ? reject(e) : resolve(k))),
  );
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** `scrypt$N$r$p$SALT$HASH` (salt and hash in base64): what `cxl-mhd http-passwd` prints. */
export function hashPassword(password: string, N = 16384, r = 8, p = 1): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** How long a guess over the rate waits for its refusal. */
const FAIL_DELAY_MS = 250;
const failSlowly = (): Promise<false> => new Promise((resolve) => setTimeout(() => resolve(false), FAIL_DELAY_MS).unref());

function sameSecret(a: Secret, b: Secret): boolean {
  if (a.kind === 'plain' || b.kind === 'plain') return a.kind === 'plain' && b.kind === 'plain' && a.password.equals(b.password);
  return a.hash.equals(b.hash) && a.salt.equals(b.salt) && a.N === b.N && a.r === b.r && a.p === b.p;
}

function parseSecret(text: string, where: string): Secret {
  if (!text.startsWith('scrypt$')) return { kind: 'plain', password: Buffer.from(text, 'utf8') };
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) throw new UsersFileError(`${where}: a scrypt password must read scrypt$N$r$p$SALT$HASH (run \`cxl-mhd http-passwd\`)`);
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new UsersFileError(`${where}: scrypt parameters N=${N} r=${r} p=${p} are out of range (N a power of two up to 2^20)`);
  }
  const hash = Buffer.from(m[5] as string, 'base64');
  if (hash.length < 16) throw new UsersFileError(`${where}: the scrypt hash is shorter than 16 bytes`);
  return { kind: 'scrypt', N, r, p, salt: Buffer.from(m[4] as string, 'base64'), hash };
}

/** Distinct Basic headers remembered; beyond, the memory starts over (only verified ones enter it). */
const MAX_BASIC_SEEN = 256;

export const ROLES = ['Administrator', 'Operator', 'ReadOnly'] as const;
const ROLE_SUFFIX = /:(Administrator|Operator|ReadOnly)(:PasswordChangeRequired)?$/;
const CHANGE_REQUIRED = ':PasswordChangeRequired';

/**
 * `user:secret[:Role[:PasswordChangeRequired]]`: the line a user has in the
 * users file (no role: Administrator, as in files from before roles); the
 * marker keeps an account that must change its password (DSP0266) so
 * across restarts.
 */
export function userLine(user: string, secret: string, role: Role, changeRequired = false): string {
  return `${user}:${secret}:${role}${changeRequired ? CHANGE_REQUIRED : ''}`;
}

/** Reads FILE: `user:password[:Role]` lines, `#` comments; refused unless it is 0600 (or stricter). */
export function loadUsers(path: string): Map<string, Secret> {
  return readUsersFile(path).users;
}

/** The users file's users and, for lines that name one, their role. */
export function readUsersFile(path: string): { users: Map<string, Secret>; roles: Map<string, Role>; changeRequired: Set<string> } {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new UsersFileError(
      `--http-users ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new UsersFileError(
      `--http-users ${path} is mode ${(mode & 0o777).toString(8).padStart(4, '0')}; it holds passwords and must be 0600 (chmod 600 ${path})`,
    );
  }
  const users = new Map<string, Secret>();
  const roles = new Map<string, Role>();
  const changeRequired = new Set<string>();
  const lines = readFileSync(path, 'utf8').split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `--http-users ${path} line ${i + 1}`;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    if (colon < 0 || !USER_RE.test(user)) throw new UsersFileError(`${where}: expected user:password with a user name of [A-Za-z0-9._@-]`);
    let secret = line.slice(colon + 1);
    const role = ROLE_SUFFIX.exec(secret);
    if (role && role.index > 0) {
      roles.set(user, role[1] as Role);
      if (role[2]) changeRequired.add(user);
      secret = secret.slice(0, role.index);
    }
    if (secret === '') throw new UsersFileError(`${where}: user ${user} has an empty password`);
    users.set(user, parseSecret(secret, where));
  }
  if (users.size === 0) throw new UsersFileError(`--http-users ${path} names no user`);
  return { users, roles, changeRequired };
}

export interface SessionInfo {
  id: string;
  user: string;
  token: string;
  created: string;
  lastUsed: number;
}

/** The predefined Redfish roles and what each may do (DSP0266, the Role schema's predefined roles). */
export type Role = 'Administrator' | 'Operator' | 'ReadOnly';
export const ROLE_PRIVILEGES: Record<Role, readonly string[]> = {
  Administrator: ['Login', 'ConfigureManager', 'ConfigureUsers', 'ConfigureComponents', 'ConfigureSelf'],
  Operator: ['Login', 'ConfigureComponents', 'ConfigureSelf'],
  ReadOnly: ['Login', 'ConfigureSelf'],
};

export interface AuthOptions {
  /** Users without an entry are Administrators. */
  roles?: Map<string, Role>;
  /** Users whose password must be changed first. */
  changeRequired?: Set<string>;
  sessionTimeoutMs?: number;
  maxSessions?: number;
  /** scrypt checks of not-yet-verified passwords per second; beyond it they fail without the work (guessing costs CPU). */
  maxHashChecksPerSecond?: number;
  /**
   * The users file to follow: re-read when it changes (polled each second)
   * and on SIGHUP. A user removed, or whose password changed, loses Basic
   * access and its sessions at once; a file that no longer loads is logged
   * and the users before it are kept.
   */
  usersFile?: string;
  /** Where reloads are reported (one line each). */
  log?: (message: string) => void;
}

export class Auth {
  /** Hashes already verified: a scrypt check per Basic request would cost more than the request. */
  private readonly verified = new Map<string, string>();
  /** Authorization headers already verified, to the user and the verification they stand for (valid while `verified` holds it). */
  private readonly basicSeen = new Map<string, { user: string; key: string }>();
  /** Checks under way, by credentials: concurrent requests with the same ones share one. */
  private readonly checking = new Map<string, Promise<boolean>>();
  private readonly sessions = new Map<string, SessionInfo>();
  readonly localToken = randomBytes(24).toString('hex');
  readonly sessionTimeoutMs: number;
  readonly maxSessions: number;
  private readonly maxHashChecks: number;
  private hashChecks: number[] = [];
  /** The password worker (password.ts); its `runs` show what each check cost. */
  readonly scrypt = new ScryptWorker();
  /** What an unknown or plain user's password is hashed with when any user has a scrypt hash; null when all are plain. */
  private dummy: ScryptParams | null;
  private stopWatching: (() => void) | null = null;
  private readonly roles: Map<string, Role>;
  /** Users who must change their password before anything else (DSP0266 PasswordChangeRequired). */
  private readonly changeRequired: Set<string>;

  constructor(
    private users: Map<string, Secret>,
    opts: AuthOptions = {},
  ) {
    this.sessionTimeoutMs = opts.sessionTimeoutMs ?? 30 * 60_000;
    this.maxSessions = opts.maxSessions ?? 64;
    this.maxHashChecks = opts.maxHashChecksPerSecond ?? 20;
    this.dummy = this.dummyFor(users);
    this.roles = opts.roles ?? new Map();
    this.changeRequired = new Set(opts.changeRequired);
    if (opts.usersFile) this.watch(opts.usersFile, opts.log ?? ((m) => process.stderr.write(`cxl-mhd: ${m}\n`)));
  }

  role(user: string): Role {
    return this.roles.get(user) ?? 'Administrator';
  }

  /** The users, by name (the local token's user is not one). */
  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  hasUser(user: string): boolean {
    return this.users.has(user);
  }

  /** Adds or changes a user (the accounts service has already written the users file). */
  setUser(user: string, secret: string, role: Role): void {
    this.users.set(user, parseSecret(secret, `user ${user}`));
    this.roles.set(user, role);
    this.verified.delete(user);
    this.dummy = this.dummyFor(this.users);
  }

  setRole(user: string, role: Role): void {
    this.roles.set(user, role);
  }

  passwordChangeRequired(user: string): boolean {
    return this.changeRequired.has(user);
  }

  setPasswordChangeRequired(user: string, required: boolean): void {
    if (required) this.changeRequired.add(user);
    else this.changeRequired.delete(user);
  }

  /** Removes a user and ends its sessions. */
  removeUser(user: string): void {
    this.users.delete(user);
    this.roles.delete(user);
    this.changeRequired.delete(user);
    this.verified.delete(user);
    for (const [t, s] of this.sessions) if (s.user === user) this.sessions.delete(t);
  }

  hasPrivilege(user: string, privilege: string): boolean {
    return privilege === 'None' || ROLE_PRIVILEGES[this.role(user)].includes(privilege);
  }

  /** The password of a user stored in clear in the users file, for handing to an aggregator; null if only a hash is kept. */
  plainPassword(user: string): string | null {
    const s = this.users.get(user);
    return s?.kind === 'plain' ? s.password.toString('utf8') : null;
  }

  private dummyFor(users: Map<string, Secret>): ScryptParams | null {
    const first = [...users.values()].find((u) => u.kind === 'scrypt');
    return first?.kind === 'scrypt' ? dummyParams({ ...first, keylen: first.hash.length }) : null;
  }

  /**
   * Every check not already verified costs the same, whoever it names: one
   * scrypt (the user's, or a dummy with the file's scrypt parameters for an
   * unknown or plain-text user) when the file holds any scrypt hash, none
   * when every password is plain. scrypt runs off the event loop
   * (password.ts). Over the rate, every check fails alike, without work.
   */
  check(user: string, password: string): Promise<boolean> {
    const key = createHash('sha256').update(user).update('\0').update(password).digest('hex');
    if (this.users.has(user) && this.verified.get(user) === key) return Promise.resolve(true);
    // A client's first burst (a crawler's parallel GETs) carries the same credentials on every request:
    // one check answers them all, instead of each spending the rate and the worker's queue.
    const pending = this.checking.get(key);
    if (pending) return pending;
    const p = this.checkOnce(user, password, key).finally(() => this.checking.delete(key));
    this.checking.set(key, p);
    return p;
  }

  private async checkOnce(user: string, password: string, key: string): Promise<boolean> {
    const secret = this.users.get(user);
    const given = Buffer.from(password, 'utf8');
    const params = secret?.kind === 'scrypt' ? { ...secret, keylen: secret.hash.length } : this.dummy;
    if (params) {
      const now = Date.now();
      this.hashChecks = this.hashChecks.filter((t) => now - t < 1000);
      // Over the rate (or with the worker's queue full) a guess fails after a pause that costs no CPU, as
      // pam_faildelay does: a client that waits for its answer before guessing again is slowed to a trickle.
      if (this.hashChecks.length >= this.maxHashChecks) return failSlowly();
      this.hashChecks.push(now);
      const got = await this.scrypt.hash(given, params);
      if (!got) return failSlowly();
      // The users may have been reloaded meanwhile: judge against what holds now.
      // (A reload of an unchanged file makes new Secret objects: compare what they hold, not which object it is.)
      const current = this.users.get(user);
      if (secret ? !current || !sameSecret(current, secret) : current !== undefined) return false;
      if (secret?.kind === 'scrypt' && !timingSafeEqual(got, secret.hash)) return false;
    }
    if (!secret) return false;
    const ok = secret.kind === 'scrypt' || (given.length === secret.password.length && timingSafeEqual(given, secret.password));
    if (ok) this.verified.set(user, key);
    return ok;
  }

  /** Replaces the users (and their roles, when given); ends what a removed user or a changed password held. Returns the users whose access ended. */
  setUsers(users: Map<string, Secret>, roles?: Map<string, Role>, changeRequired?: Set<string>): string[] {
    const old = this.users;
    if (roles) {
      this.roles.clear();
      for (const [u, r] of roles) this.roles.set(u, r);
    }
    if (changeRequired) {
      this.changeRequired.clear();
      for (const u of changeRequired) this.changeRequired.add(u);
    }
    const ended = [...old.keys()].filter((u) => !users.has(u) || !sameSecret(old.get(u) as Secret, users.get(u) as Secret));
    this.users = users;
    this.dummy = this.dummyFor(users);
    for (const u of ended) this.verified.delete(u);
    for (const [t, s] of this.sessions) if (ended.includes(s.user)) this.sessions.delete(t);
    return ended;
  }

  private watch(path: string, log: (message: string) => void): void {
    const reload = (why: string) => {
      try {
        const { users, roles, changeRequired } = readUsersFile(path);
        const ended = this.setUsers(users, roles, changeRequired);
        log(`${why}: users re-read from ${path}${ended.length ? `; access ended for ${ended.join(', ')}` : ''}`);
      } catch (e) {
        log(`${why}: ${(e as Error).message}; keeping the users read before`);
      }
    };
    // Our own poll against a stat taken now: fs.watchFile's first stat is asynchronous and misses an early change.
    const sig = (st: Stats | null) => (st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}` : 'gone');
    const statOrNull = (): Stats | null => {
      try {
        return statSync(path);
      } catch {
        return null;
      }
    };
    let last = sig(statOrNull());
    const poll = setInterval(() => {
      const now = sig(statOrNull());
      if (now === last) return;
      last = now;
      reload('users file changed');
    }, 1000);
    poll.unref();
    const onHup = () => reload('SIGHUP');
    process.on('SIGHUP', onHup);
    this.stopWatching = () => {
      clearInterval(poll);
      process.off('SIGHUP', onHup);
    };
  }

  /** Stops following the users file and the password worker. */
  close(): void {
    this.stopWatching?.();
    this.stopWatching = null;
    this.scrypt.close();
  }

  /** The user an Authorization or X-Auth-Token header stands for, or null. */
  async identify(headers: { authorization?: string | undefined; 'x-auth-token'?: string | string[] | undefined }): Promise<string | null> {
    const token = headers['x-auth-token'];
    if (typeof token === 'string' && token !== '') return this.byToken(token)?.user ?? null;
    const auth = headers.authorization;
    if (typeof auth === 'string' && /^basic /i.test(auth)) {
      // The same header again (a client sends it on every request): no decoding, no hashing while what it proved still holds.
      const known = this.basicSeen.get(auth);
      if (known && this.verified.get(known.user) === known.key && this.users.has(known.user)) return known.user;
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) return null;
      const user = decoded.slice(0, colon);
      if (!(await this.check(user, decoded.slice(colon + 1)))) return null;
      const key = this.verified.get(user);
      if (key !== undefined) {
        if (this.basicSeen.size >= MAX_BASIC_SEEN) this.basicSeen.clear();
        this.basicSeen.set(auth, { user, key });
      }
      return user;
    }
    return null;
  }

  private byToken(token: string): { user: string } | null {
    const a = Buffer.from(token);
    const local = Buffer.from(this.localToken);
    if (a.length === local.length && timingSafeEqual(a, local)) return { user: 'local' };
    this.expire();
    const s = this.sessions.get(token);
    if (!s) return null;
    s.lastUsed = Date.now();
    return s;
  }

  private expire(): void {
    const now = Date.now();
    for (const [t, s] of this.sessions) if (now - s.lastUsed > this.sessionTimeoutMs) this.sessions.delete(t);
  }

  /** A new session, or null when the cap is reached. */
  openSession(user: string): SessionInfo | null {
    this.expire();
    if (this.sessions.size >= this.maxSessions) return null;
    const s: SessionInfo = {
      id: randomUUID(),
      user,
      token: randomBytes(24).toString('hex'),
      created: new Date().toISOString(),
      lastUsed: Date.now(),
    };
    this.sessions.set(s.token, s);
    return s;
  }

  listSessions(): SessionInfo[] {
    this.expire();
    return [...this.sessions.values()];
  }

  session(id: string): SessionInfo | undefined {
    return this.listSessions().find((s) => s.id === id);
  }

  closeSession(id: string): boolean {
    const s = this.session(id);
    if (!s) return false;
    this.sessions.delete(s.token);
    return true;
  }
}
