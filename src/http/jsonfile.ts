// One JSON document kept in a 0600 file of the state dir, written off the
// request path: changes are coalesced, each write goes to a temporary file
// renamed over the old one, so a crash leaves the old or the new document,
// never half of one. The chunk store and the subscription store use it.
import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

export class JsonFile<T> {
  /** The last failure to write the file, if any (the service keeps running from memory). */
  lastError: Error | null = null;
  private dirty = false;
  private saving: Promise<void> | null = null;

  constructor(
    readonly path: string | null,
    private readonly what: string,
  ) {}

  /** The stored document, or null when there is none yet; one clear line when it does not parse. */
  read(): T | null {
    if (!this.path || !existsSync(this.path)) return null;
    try {
      return JSON.parse(readFileSync(this.path, 'utf8')) as T;
    } catch (e) {
      throw new Error(`${this.what} ${this.path} does not parse (${(e as Error).message}); move it away to start afresh`);
    }
  }

  /** Schedules a write of whatever `body()` returns when the write happens. */
  save(body: () => T): void {
    if (!this.path) return;
    this.dirty = true;
    this.saving ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.writeOut(body));
  }

  private async writeOut(body: () => T): Promise<void> {
    const path = this.path as string;
    try {
      while (this.dirty) {
        this.dirty = false;
        const tmp = `${path}.tmp`;
        await writeFile(tmp, `${JSON.stringify(body())}\n`, { mode: 0o600 });
        await rename(tmp, path);
      }
      this.lastError = null;
    } catch (e) {
      this.lastError = e as Error;
    } finally {
      this.saving = null;
    }
  }

  /** Resolves once everything changed so far is on disk. */
  async flush(): Promise<void> {
    while (this.saving) await this.saving;
  }
}
