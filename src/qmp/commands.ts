// Which reply answers which command: hands out ids, keeps each command's
// promise and timer until its reply, timeout or the session's end, and
// remembers the ids of commands that timed out after they were written so
// their late replies are dropped rather than taken for a protocol violation.
// Memory is bounded: at most `maxAbandoned` such ids are kept, oldest first
// to go.
import { QmpCommandError, type QmpError, QmpTimeoutError } from './errors.js';
import { decodeReplyBody, type QmpMessage, replyId, snippet } from './parser.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_ABANDONED = 256;

/** One command's bytes on their way out; `sent` once any of them reached the socket. */
export interface Outgoing {
  id: number;
  bytes: Buffer;
  fds: number[] | undefined;
  sent: boolean;
}

interface Pending {
  command: string;
  out: Outgoing;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export class CommandTable {
  private lastId = 0;
  private readonly pending = new Map<number, Pending>();
  // Insertion-ordered, so the first entry is the oldest to forget.
  private readonly abandoned = new Set<number>();

  /**
   * `onUnsentTimeout` runs when a command times out before any of its bytes
   * were written, before its promise rejects: the writer must drop it.
   */
  constructor(
    private readonly maxAbandoned: number,
    private readonly onUnsentTimeout: (out: Outgoing) => void,
  ) {
    if (!Number.isInteger(maxAbandoned) || maxAbandoned < 1) {
      throw new RangeError(`maxAbandonedIds must be a positive integer, got ${maxAbandoned}`);
    }
  }

  /** A fresh id; used even when the command then fails before it is added. */
  nextId(): number {
    return ++this.lastId;
  }

  /** Tracks `out` until it is answered; `timeoutMs` is already checked (Infinity: no timer). */
  add(command: string, out: Outgoing, timeoutMs: number, resolve: (value: unknown) => void, reject: (error: Error) => void): void {
    const p: Pending = { command, out, timeoutMs, timer: undefined, resolve, reject };
    if (Number.isFinite(timeoutMs)) p.timer = setTimeout(() => this.onTimeout(out.id), timeoutMs);
    this.pending.set(out.id, p);
  }

  commandOf(id: number): string | undefined {
    return this.pending.get(id)?.command;
  }

  /** Rejects one command that cannot be sent; the others go on. */
  fail(id: number, error: QmpError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(error);
  }

  /** The session ended: rejects every command still waiting and forgets every id. */
  failAll(errorFor: (command: string) => Error): void {
    this.abandoned.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(errorFor(p.command));
    }
  }

  /**
   * Settles the command a reply answers. Returns the violation when the
   * reply has no id, answers nothing we asked (or forgot), or is malformed.
   */
  reply(m: QmpMessage): string | undefined {
    const id = replyId(m);
    if (!id.ok) return id.violation;
    const p = typeof id.value === 'number' ? this.pending.get(id.value) : undefined;
    if (!p?.out.sent) {
      // A late answer to a command we gave up on: expected, drop it.
      if (typeof id.value === 'number' && this.abandoned.delete(id.value)) return undefined;
      return `a reply for unknown id ${snippet(JSON.stringify(id.value))}`;
    }
    const body = decodeReplyBody(m);
    if (!body.ok) return body.violation;
    this.pending.delete(p.out.id);
    clearTimeout(p.timer);
    if (body.value.ok) p.resolve(body.value.value);
    else p.reject(new QmpCommandError(p.command, body.value.errorClass, body.value.desc));
    return undefined;
  }

  private onTimeout(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (p.out.sent) {
      this.abandoned.add(id);
      if (this.abandoned.size > this.maxAbandoned) this.abandoned.delete(this.abandoned.values().next().value!);
    } else {
      // Never written, so no reply can come: just forget it.
      this.onUnsentTimeout(p.out);
    }
    p.reject(new QmpTimeoutError(p.command, p.timeoutMs));
  }
}

// setTimeout fires at once for delays past 2^31-1 ms, so those are refused.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function checkTimeout(name: string, ms: number): number {
  if (typeof ms !== 'number' || !(ms > 0) || (Number.isFinite(ms) && ms > MAX_TIMER_MS)) {
    throw new RangeError(`${name} must be 1..${MAX_TIMER_MS} ms or Infinity, got ${ms}`);
  }
  return ms;
}
