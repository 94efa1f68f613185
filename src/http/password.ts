// Password checks off the answer path: scrypt runs in one dedicated worker
// thread, never on the event loop (scryptSync stalled every FM-API answer
// behind a guess) nor in libuv's pool (crypto.scrypt would queue the
// journal's fsyncs behind guesses). One check at a time, a short queue, and
// a failure without work beyond it: a guess flood costs at most that one
// thread. Every check costs one scrypt, whoever it names: unknown users and
// plain-text users are checked against a dummy hash, so timing does not
// tell which user names exist (docs/security.md).
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  keylen: number;
}

// CommonJS text run with eval, so the same worker serves the built CLI and the TypeScript tests.
// setPriority(0, …) is per thread on Linux: only this worker yields the CPU to the answer path.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
try { require('node:os').setPriority(0, 19); } catch {}
parentPort.on('message', (m) => {
  let hash = null;
  try {
    hash = scryptSync(Buffer.from(m.password), Buffer.from(m.salt), m.keylen, { N: m.N, r: m.r, p: m.p, maxmem: 256 * m.N * m.r + 1024 * 1024 });
  } catch {}
  parentPort.postMessage({ id: m.id, hash });
});
`;

interface Job {
  resolve: (hash: Buffer | null) => void;
}

export class ScryptWorker {
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  /** The parameters of every scrypt run so far (the tests count the work a check costs). */
  readonly runs: { N: number; r: number; p: number; keylen: number }[] = [];

  /** @param maxPending checks running or waiting; one more fails at once (null) without work. */
  constructor(private readonly maxPending = 4) {}

  /** The derived key, or null when the queue is full (or the worker failed). */
  hash(password: Buffer, params: ScryptParams): Promise<Buffer | null> {
    if (this.jobs.size >= this.maxPending) return Promise.resolve(null);
    const w = this.start();
    const id = this.nextId++;
    this.runs.push({ N: params.N, r: params.r, p: params.p, keylen: params.keylen });
    if (this.runs.length > 64) this.runs.shift();
    return new Promise((resolve) => {
      this.jobs.set(id, { resolve });
      w.postMessage({ id, password, salt: params.salt, N: params.N, r: params.r, p: params.p, keylen: params.keylen });
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER, { eval: true });
    // Never what keeps `serve` alive.
    w.unref();
    w.on('message', (m: { id: number; hash: Uint8Array | null }) => {
      const job = this.jobs.get(m.id);
      this.jobs.delete(m.id);
      job?.resolve(m.hash ? Buffer.from(m.hash) : null);
    });
    const fail = () => {
      for (const j of this.jobs.values()) j.resolve(null);
      this.jobs.clear();
      this.worker = null;
    };
    w.on('error', fail);
    w.on('exit', fail);
    this.worker = w;
    return w;
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = null;
  }
}

/** What an unknown user's (or a plain-text user's) password is checked against: same work, never a match that counts. */
export function dummyParams(like: ScryptParams | undefined): ScryptParams {
  return { N: like?.N ?? 16384, r: like?.r ?? 8, p: like?.p ?? 1, salt: randomBytes(16), keylen: like?.keylen ?? 32 };
}
