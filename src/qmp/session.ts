// One QMP conversation with one QEMU, over a connection the backend accepted:
// QEMU dials the head socket and is the QMP *server* on it. Owns the framing,
// the greeting + qmp_capabilities handshake, command/reply matching,
// timeouts, event fan-out and SCM_RIGHTS descriptor passing.
//
// Whatever the peer sends, the worst outcome is that this session ends
// (`closed` resolves with the reason); nothing it receives throws out of the
// process, and nothing it sends is buffered beyond fixed limits.
import type { Duplex } from 'node:stream';
import { isNativeError, native } from '../native/index.js';
import {
  QmpClosedError,
  QmpCommandError,
  QmpDisconnectedError,
  type QmpError,
  QmpFdPassingError,
  QmpProtocolError,
  QmpTimeoutError,
} from './errors.js';

export const DEFAULT_TIMEOUT_MS = 10_000;
// query-qmp-schema, the largest reply QEMU 10 gives, is a few hundred KiB.
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_ABANDONED = 256;

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
  /** Distribution build string, e.g. `Debian 1:10.0.13+ds-1`; may be empty. */
  package: string;
}

export interface QmpGreeting {
  version: QemuVersion;
  /** Optional protocol features QEMU offers (`oob`); none are enabled. */
  capabilities: string[];
  /** The greeting's `QMP` member as received. */
  raw: Record<string, unknown>;
}

export interface QmpEvent {
  event: string;
  /** `{}` when QEMU sent no data member. */
  data: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export type QmpEventHandler = (event: QmpEvent) => void;

/** What sendmsg(SCM_RIGHTS) looks like; the addon's by default. */
export type SendFdsFn = (socketFd: number, bytes: Uint8Array, fds: number[]) => number;

export interface QmpSessionOptions {
  /** How long QEMU has to send its greeting. Default 10 s. */
  greetingTimeoutMs?: number;
  /** Default for execute/waitForEvent. Default 10 s; Infinity disables. */
  commandTimeoutMs?: number;
  /** Longest message accepted, newline excluded. Default 1 MiB. */
  maxLineBytes?: number;
  /** How many timed-out ids may still get a (dropped) late reply. Default 256. */
  maxAbandonedIds?: number;
  /** Where exceptions thrown by event handlers go; default process.emitWarning. */
  onListenerError?: (error: unknown, event: QmpEvent) => void;
  /** Replaces native.sendFds; tests use it to force EAGAIN and short sends. */
  sendFds?: SendFdsFn;
}

export interface ExecuteOptions {
  /** Overrides the session's commandTimeoutMs for this command. */
  timeoutMs?: number;
}

interface Outgoing {
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

type Phase = 'greeting' | 'open' | 'ended';

// sendmsg errors that mean the peer is gone rather than the descriptors bad.
const GONE_CODES = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN', 'ESHUTDOWN']);
const RETRY_MAX_MS = 50;

/**
 * A QMP client session. Create with `QmpSession.open(socket)`.
 *
 * Timeouts: a command that is not answered in time rejects with
 * QmpTimeoutError and the session stays open — a slow device_add is not a
 * broken QEMU, and QEMU answers commands in order, so a late reply only
 * delays the ones behind it. Its id is remembered (the newest
 * `maxAbandonedIds`) so the late reply is dropped; a reply for an id that
 * was never issued, or was forgotten, ends the session as a protocol
 * violation. A command that timed out before it was written (queued behind
 * an fd send) is simply dropped. Callers that cannot tolerate the
 * uncertainty (did device_add happen?) should close the session.
 */
export class QmpSession {
  /** Resolves once, with why the session ended; never rejects. */
  readonly closed: Promise<QmpError>;
  private resolveClosed!: (reason: QmpError) => void;

  private phase: Phase = 'greeting';
  private endReason: QmpError | undefined;
  private greetingInfo: QmpGreeting | undefined;
  private greetingWaiter: { resolve(): void; reject(e: QmpError): void } | undefined;

  private readonly commandTimeoutMs: number;
  private readonly maxLineBytes: number;
  private readonly maxAbandoned: number;
  private readonly onListenerError: (error: unknown, event: QmpEvent) => void;
  private readonly sendFdsImpl: SendFdsFn;

  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  // Insertion-ordered, so the first entry is the oldest to forget.
  private readonly abandoned = new Set<number>();
  private readonly listeners = new Map<string, Set<QmpEventHandler>>();
  private readonly endWatchers = new Set<(reason: QmpError) => void>();

  private partial: Buffer[] = [];
  private partialBytes = 0;

  // Everything goes out through this queue so that a command with
  // descriptors is never overtaken by, or interleaved with, another.
  private outbox: Outgoing[] = [];
  private inflightWrites = 0;
  private pumping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 1;

  private constructor(
    private readonly socket: Duplex,
    opts: QmpSessionOptions,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.commandTimeoutMs = checkTimeout('commandTimeoutMs', opts.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.maxLineBytes = checkCount('maxLineBytes', opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.maxAbandoned = checkCount('maxAbandonedIds', opts.maxAbandonedIds ?? DEFAULT_MAX_ABANDONED);
    this.onListenerError = opts.onListenerError ?? defaultListenerError;
    this.sendFdsImpl = opts.sendFds ?? native.sendFds;
    // Always listening for 'error': an unhandled one would crash the process.
    socket.on('error', (err: Error) => this.finish(new QmpDisconnectedError(`QMP connection failed: ${err.message}`, err)));
    socket.on('end', () => this.finish(new QmpDisconnectedError('QEMU closed the QMP connection')));
    socket.on('close', () => this.finish(new QmpDisconnectedError('QMP connection closed')));
    socket.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    // A caller may have paused the socket; a 'data' listener alone would not restart it.
    socket.resume();
  }

  /**
   * Waits for QEMU's greeting, negotiates capabilities and returns the open
   * session. On any failure the socket is destroyed and the promise rejects
   * with QmpTimeoutError, QmpProtocolError, QmpCommandError or
   * QmpDisconnectedError.
   */
  static async open(socket: Duplex, opts: QmpSessionOptions = {}): Promise<QmpSession> {
    const greetingTimeoutMs = checkTimeout('greetingTimeoutMs', opts.greetingTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    const session = new QmpSession(socket, opts);
    try {
      if (socket.destroyed || socket.readableEnded) session.finish(new QmpDisconnectedError('QMP connection already closed'));
      await session.awaitGreeting(greetingTimeoutMs);
      await session.execute('qmp_capabilities');
      return session;
    } catch (e) {
      session.close();
      if (e instanceof QmpDisconnectedError && e.reason instanceof QmpProtocolError) throw e.reason;
      throw e;
    }
  }

  get greeting(): QmpGreeting {
    return this.greetingInfo!;
  }

  get version(): QemuVersion {
    return this.greetingInfo!.version;
  }

  get isOpen(): boolean {
    return this.phase !== 'ended';
  }

  /** Why the session ended; undefined while it is open. */
  get closeReason(): QmpError | undefined {
    return this.endReason;
  }

  /**
   * Runs a command and resolves with its `return` value, unchecked: T is
   * the caller's claim about QEMU's schema.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: ExecuteOptions = {}): Promise<T> {
    return this.submit(command, args, undefined, opts) as Promise<T>;
  }

  /**
   * Runs a command whose bytes carry `fds` as SCM_RIGHTS (getfd, add-fd).
   * QEMU receives duplicates; the caller still owns `fds` and must keep
   * them open until this settles (the send may wait behind earlier writes).
   * Needs a socket with a real descriptor (net.Socket on a Unix socket).
   */
  executeWithFds<T = unknown>(
    command: string,
    args: Record<string, unknown> | undefined,
    fds: readonly number[],
    opts: ExecuteOptions = {},
  ): Promise<T> {
    const max = native.constants.MAX_FDS;
    if (!Array.isArray(fds) || fds.length < 1 || fds.length > max || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
      return Promise.reject(new QmpFdPassingError(`QMP ${command}: pass 1..${max} descriptors, got ${String(fds)}`));
    }
    if (this.phase !== 'ended' && socketFd(this.socket) === undefined) {
      return Promise.reject(new QmpFdPassingError(`QMP ${command}: descriptor passing needs a Unix socket connection`));
    }
    return this.submit(command, args, [...fds], opts) as Promise<T>;
  }

  /**
   * Calls `handler` for every event named `name` (or every event, for '*')
   * until the returned function is called. Events nobody listens to are
   * dropped on arrival, never queued.
   */
  on(name: string, handler: QmpEventHandler): () => void {
    if (this.phase === 'ended') return () => {};
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(handler);
    return () => {
      const current = this.listeners.get(name);
      if (current?.delete(handler) && current.size === 0) this.listeners.delete(name);
    };
  }

  /**
   * Resolves with the next `name` event that satisfies `predicate`. Only
   * events arriving after the call count: subscribe before issuing the
   * command that causes the event.
   */
  waitForEvent(name: string, predicate?: (event: QmpEvent) => boolean, timeoutMs: number = this.commandTimeoutMs): Promise<QmpEvent> {
    if (this.phase === 'ended') return Promise.reject(this.goneError(`event ${name}`));
    const ms = checkTimeout('timeoutMs', timeoutMs);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        off();
        this.endWatchers.delete(onEnd);
      };
      const onEnd = (): void => {
        done();
        reject(this.goneError(`event ${name}`));
      };
      const off = this.on(name, (event) => {
        let match: boolean;
        try {
          match = predicate ? predicate(event) : true;
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (match) {
          done();
          resolve(event);
        }
      });
      this.endWatchers.add(onEnd);
      if (Number.isFinite(ms)) {
        timer = setTimeout(() => {
          done();
          reject(new QmpTimeoutError(`event ${name}`, ms));
        }, ms);
      }
    });
  }

  /** Ends the session and destroys the socket. Idempotent. */
  close(): void {
    this.finish(new QmpClosedError());
  }

  // ---- sending ----

  private submit(
    command: string,
    args: Record<string, unknown> | undefined,
    fds: number[] | undefined,
    opts: ExecuteOptions,
  ): Promise<unknown> {
    if (this.phase === 'ended') return Promise.reject(this.goneError(command));
    let timeoutMs: number;
    let bytes: Buffer;
    const id = this.nextId++;
    try {
      if (typeof command !== 'string' || command === '') throw new TypeError('QMP command name must be a non-empty string');
      timeoutMs = checkTimeout('timeoutMs', opts.timeoutMs ?? this.commandTimeoutMs);
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      bytes = Buffer.from(`${JSON.stringify(message)}\n`);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const out: Outgoing = { id, bytes, fds, sent: false };
      const p: Pending = { command, out, timeoutMs, timer: undefined, resolve, reject };
      if (Number.isFinite(timeoutMs)) p.timer = setTimeout(() => this.onTimeout(id), timeoutMs);
      this.pending.set(id, p);
      this.outbox.push(out);
      this.pump();
    });
  }

  private pump(): void {
    if (this.pumping || this.retryTimer !== undefined) return;
    this.pumping = true;
    try {
      while (this.phase !== 'ended') {
        const out = this.outbox[0];
        if (!out) break;
        if (out.fds === undefined) {
          this.outbox.shift();
          out.sent = true;
          this.write(out.bytes);
          continue;
        }
        // sendmsg bypasses Node's write queue: it may only run once that
        // queue is empty, or its bytes would land in the middle of another
        // message. Our last write's callback pumps again; bytes someone else
        // queued on the socket have no such hook, so poll for those.
        if (this.inflightWrites > 0) break;
        if (this.socket.writableLength > 0) {
          this.retryLater();
          break;
        }
        if (!this.sendWithFds(out)) break;
      }
    } finally {
      this.pumping = false;
    }
  }

  private write(bytes: Buffer): void {
    this.inflightWrites++;
    this.socket.write(bytes, () => {
      this.inflightWrites--;
      if (this.inflightWrites === 0 && this.outbox.length > 0) this.pump();
    });
  }

  /** False when pumping must stop (retry scheduled, or session ended). */
  private sendWithFds(out: Outgoing): boolean {
    const command = this.pending.get(out.id)?.command ?? 'command';
    const fd = socketFd(this.socket);
    if (fd === undefined) {
      this.outbox.shift();
      this.failPending(out.id, new QmpFdPassingError(`QMP ${command}: descriptor passing needs a Unix socket connection`));
      return true;
    }
    let n: number;
    try {
      n = this.sendFdsImpl(fd, out.bytes, out.fds!);
    } catch (e) {
      if (isNativeError(e, 'EAGAIN') || isNativeError(e, 'EWOULDBLOCK')) {
        this.retryLater();
        return false;
      }
      if (isNativeError(e) && GONE_CODES.has(e.code)) {
        this.finish(new QmpDisconnectedError(`QMP connection lost: ${e.message}`, e));
        return false;
      }
      // Nothing was sent (sendmsg on a stream socket fails only before the
      // first byte), so only this command fails.
      this.outbox.shift();
      const message = e instanceof Error ? e.message : String(e);
      this.failPending(out.id, new QmpFdPassingError(`QMP ${command}: cannot pass descriptors: ${message}`, { cause: e }));
      return true;
    }
    this.cancelRetry();
    this.outbox.shift();
    out.sent = true;
    // The descriptors rode on the first byte; the rest is ordinary data.
    if (n < out.bytes.length) this.write(out.bytes.subarray(n));
    return true;
  }

  // No writability notification exists for a raw sendmsg: poll with
  // backoff. The command's own timeout bounds the wait.
  private retryLater(): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, this.retryDelayMs);
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS);
  }

  private cancelRetry(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryDelayMs = 1;
  }

  private failPending(id: number, error: QmpError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(error);
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
      const i = this.outbox.indexOf(p.out);
      if (i >= 0) this.outbox.splice(i, 1);
      if (i === 0) {
        // The retry was for this command; what follows may go out now.
        this.cancelRetry();
        this.pump();
      }
    }
    p.reject(new QmpTimeoutError(p.command, p.timeoutMs));
  }

  // ---- receiving ----

  private onData(chunk: Buffer): void {
    let start = 0;
    while (this.phase !== 'ended') {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) {
        const rest = chunk.length - start;
        if (this.partialBytes + rest > this.maxLineBytes) {
          this.violation(`a message exceeds ${this.maxLineBytes} bytes`);
          return;
        }
        if (rest > 0) {
          this.partial.push(chunk.subarray(start));
          this.partialBytes += rest;
        }
        return;
      }
      const length = this.partialBytes + (nl - start);
      if (length > this.maxLineBytes) {
        this.violation(`a message exceeds ${this.maxLineBytes} bytes`);
        return;
      }
      let line = chunk.subarray(start, nl);
      if (this.partial.length > 0) {
        this.partial.push(line);
        line = Buffer.concat(this.partial, length);
        this.partial = [];
        this.partialBytes = 0;
      }
      start = nl + 1;
      this.onLine(line.toString('utf8'));
    }
  }

  private onLine(text: string): void {
    // QEMU ends lines with \r\n; JSON.parse takes the \r as whitespace.
    if (text.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.violation(`invalid JSON ${snippet(text)}`);
      return;
    }
    if (!isObject(msg)) {
      this.violation(`a message is not a JSON object: ${snippet(text)}`);
      return;
    }
    if (this.phase === 'greeting') this.onGreeting(msg, text);
    else if (Object.hasOwn(msg, 'event')) this.onEvent(msg, text);
    else if (Object.hasOwn(msg, 'return') || Object.hasOwn(msg, 'error')) this.onReply(msg, text);
    else if (Object.hasOwn(msg, 'QMP')) this.violation('a second greeting');
    else this.violation(`unrecognized message ${snippet(text)}`);
  }

  private onGreeting(msg: Record<string, unknown>, text: string): void {
    const qmp = msg.QMP;
    const version = isObject(qmp) && isObject(qmp.version) ? qmp.version : undefined;
    const qemu = version && isObject(version.qemu) ? version.qemu : undefined;
    const { major, minor, micro } = qemu ?? {};
    if (!isObject(qmp) || !version || !isVersionPart(major) || !isVersionPart(minor) || !isVersionPart(micro)) {
      this.violation(`expected a greeting with version.qemu, got ${snippet(text)}`);
      return;
    }
    const pkg = typeof version.package === 'string' ? version.package.trim() : '';
    const caps = Array.isArray(qmp.capabilities) ? qmp.capabilities.filter((c): c is string => typeof c === 'string') : [];
    this.greetingInfo = { version: { major, minor, micro, package: pkg }, capabilities: caps, raw: qmp };
    this.phase = 'open';
    this.greetingWaiter?.resolve();
  }

  private onReply(msg: Record<string, unknown>, text: string): void {
    if (!Object.hasOwn(msg, 'id')) {
      this.violation(`a reply without id ${snippet(text)}`);
      return;
    }
    const id = msg.id;
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p?.out.sent) {
      // A late answer to a command we gave up on: expected, drop it.
      if (typeof id === 'number' && this.abandoned.delete(id)) return;
      this.violation(`a reply for unknown id ${snippet(JSON.stringify(id))}`);
      return;
    }
    let error: QmpCommandError | undefined;
    if (Object.hasOwn(msg, 'error')) {
      const e = msg.error;
      if (!isObject(e) || typeof e.class !== 'string' || typeof e.desc !== 'string') {
        this.violation(`malformed error reply ${snippet(text)}`);
        return;
      }
      error = new QmpCommandError(p.command, e.class, e.desc);
    }
    this.pending.delete(p.out.id);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(msg.return);
  }

  private onEvent(msg: Record<string, unknown>, text: string): void {
    const name = msg.event;
    const data = msg.data ?? {};
    if (typeof name !== 'string' || !isObject(data)) {
      this.violation(`malformed event ${snippet(text)}`);
      return;
    }
    const named = this.listeners.get(name);
    const any = this.listeners.get('*');
    if (!named && !any) return;
    const event: QmpEvent = { event: name, data };
    const ts = msg.timestamp;
    if (isObject(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number') {
      event.timestamp = { seconds: ts.seconds, microseconds: ts.microseconds };
    }
    // Snapshot: handlers may unsubscribe (or subscribe) while we iterate.
    for (const handler of [...(named ?? []), ...(any ?? [])]) {
      if (this.phase === 'ended') return;
      try {
        handler(event);
      } catch (e) {
        try {
          this.onListenerError(e, event);
        } catch {
          // A broken error sink must not take the session down with it.
        }
      }
    }
  }

  // ---- ending ----

  private awaitGreeting(timeoutMs: number): Promise<void> {
    if (this.phase === 'open') return Promise.resolve();
    if (this.phase === 'ended') return Promise.reject(this.endReason);
    return new Promise((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => reject(new QmpTimeoutError('greeting', timeoutMs)), timeoutMs)
        : undefined;
      this.greetingWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private violation(what: string): void {
    this.finish(new QmpProtocolError(what));
  }

  private goneError(what: string): QmpDisconnectedError {
    const reason = this.endReason;
    return new QmpDisconnectedError(`QMP ${what}: session ended${reason ? ` (${reason.message})` : ''}`, reason);
  }

  private finish(reason: QmpError): void {
    if (this.phase === 'ended') return;
    const wasGreeting = this.phase === 'greeting';
    this.phase = 'ended';
    this.endReason = reason;
    this.cancelRetry();
    this.outbox = [];
    this.partial = [];
    this.partialBytes = 0;
    this.abandoned.clear();
    this.listeners.clear();
    this.socket.destroy();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(this.goneError(p.command));
    }
    const watchers = [...this.endWatchers];
    this.endWatchers.clear();
    for (const w of watchers) w(reason);
    if (wasGreeting) this.greetingWaiter?.reject(reason);
    this.resolveClosed(reason);
  }
}

/** True when QEMU is at least major.minor.micro. */
export function versionAtLeast(v: QemuVersion, major: number, minor = 0, micro = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.micro >= micro;
}

function socketFd(socket: Duplex): number | undefined {
  // Node keeps the descriptor on its libuv handle; there is no public getter.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isVersionPart(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

// Peer-controlled text in our messages: quoted (no raw control characters
// reach a log) and short.
function snippet(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

// setTimeout fires at once for delays past 2^31-1 ms, so those are refused.
const MAX_TIMER_MS = 2 ** 31 - 1;

function checkTimeout(name: string, ms: number): number {
  if (typeof ms !== 'number' || !(ms > 0) || (Number.isFinite(ms) && ms > MAX_TIMER_MS)) {
    throw new RangeError(`${name} must be 1..${MAX_TIMER_MS} ms or Infinity, got ${ms}`);
  }
  return ms;
}

function checkCount(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
  return n;
}

function defaultListenerError(error: unknown, event: QmpEvent): void {
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(`QMP ${event.event} handler threw: ${message}`, 'QmpListenerWarning');
}
