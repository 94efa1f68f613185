// The AccountService's side of the users file: adding, changing and
// removing accounts rewrites the file atomically (a temporary file, 0600,
// renamed over it), passwords stored as scrypt hashes computed off the
// event loop; lines of other users and comments stay as they were. Auth
// learns the change only once the file holds it, so nothing is half done.
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { type Auth, hashPasswordAsync, type Role, userLine } from './auth.js';

export class Accounts {
  /** One change at a time: each rewrite starts from the file the last one left. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly auth: Auth,
    /** The users file; null for users given in memory (tests), which changes keep in memory. */
    private readonly file: string | null,
  ) {}

  /** Sets a user's password, role and/or PasswordChangeRequired; a new user needs a password and a role. */
  async set(user: string, change: { password?: string; role?: Role; changeRequired?: boolean }): Promise<void> {
    const secret = change.password === undefined ? null : await hashPasswordAsync(change.password);
    await this.serialize(async () => {
      const role = change.role ?? this.auth.role(user);
      const must = change.changeRequired ?? this.auth.passwordChangeRequired(user);
      const line = secret === null ? null : userLine(user, secret, role, must);
      await this.rewrite(user, (old) => line ?? roleLine(old, user, role, must));
      if (secret !== null) this.auth.setUser(user, secret, role);
      else this.auth.setRole(user, role);
      this.auth.setPasswordChangeRequired(user, must);
    });
  }

  async remove(user: string): Promise<void> {
    await this.serialize(async () => {
      await this.rewrite(user, () => null);
      this.auth.removeUser(user);
    });
  }

  private serialize(fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Replaces (or drops, or appends) the line of `user`. */
  private async rewrite(user: string, next: (old: string | null) => string | null): Promise<void> {
    if (!this.file) return;
    const lines = readFileSync(this.file, 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const at = lines.findIndex((l) => l.trim().startsWith(`${user}:`));
    const line = next(at < 0 ? null : (lines[at] as string).trim());
    if (at < 0 && line !== null) lines.push(line);
    else if (at >= 0 && line === null) lines.splice(at, 1);
    else if (at >= 0 && line !== null) lines[at] = line;
    const tmp = `${this.file}.tmp-${process.pid}`;
    await writeFile(tmp, `${lines.join('\n')}\n`, { mode: 0o600 });
    await rename(tmp, this.file);
  }
}

/** The same secret under another role (and PasswordChangeRequired). */
function roleLine(old: string | null, user: string, role: Role, changeRequired: boolean): string | null {
  if (old === null) return null;
  const secret = old.slice(user.length + 1).replace(/:(Administrator|Operator|ReadOnly)(:PasswordChangeRequired)?$/, '');
  return userLine(user, secret, role, changeRequired);
}
