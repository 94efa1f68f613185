// One QMP conversation with one QEMU, over a connection the backend accepted:
// QEMU dials the head socket and is the QMP *server* on it. Owns the session's
// life: the greeting + qmp_capabilities handshake, event fan-out to
// subscribers, and ending (why, and failing everything still waiting). It ties
// together parts that each own one job: parser.ts what QEMU sends, commands.ts
// which reply answers which command, outbox.ts what we send and descriptor
// passing.
//
// Whatever the peer sends, the worst outcome is that this session ends
// (`closed` resolves with the reason); nothing it receives throws out of the
// process, and nothing it sends is buffered beyond fixed limits.
import type { Duplex } from 'node:stream';
import { native } from '../native/index.js';
import { CommandTable, checkTimeout, DEFAULT_MAX_ABANDONED, DEFAULT_TIMEOUT_MS, type Outgoing } from './commands.js';
import { QmpClosedError, QmpDisconnectedError, type QmpError, QmpProtocolError, QmpTimeoutError } from './errors.js';
import { checkFds, Outbox, type SendFdsFn } from './outbox.js';
import {
  DEFAULT_MAX_LINE_BYTES,
  decodeEvent,
  decodeGreeting,
  encodeCommand,
  kindOf,
  MessageReader,
  type QemuVersion,
  type QmpEvent,
  type QmpGreeting,
  type QmpMessage,
  snippet,
} from './parser.js';

export type QmpEventHandler = (event: QmpEvent) => void;

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
  /**
   * Resolve once qmp_capabilities is sent, not answered: commands the caller
   * sends next follow it in the same round trip (QEMU answers in order).
   * Its answer is then `negotiated`; the caller closes the session if that rejects.
   */
  pipelineCapabilities?: boolean;
}

export interface ExecuteOptions {
  /** Overrides the session's commandTimeoutMs for this command. */
  timeoutMs?: number;
}

type Phase = 'greeting' | 'open' | 'ended';

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
  private readonly onListenerError: (error: unknown, event: QmpEvent) => void;
  private readonly reader: MessageReader;
  private readonly commands: CommandTable;
  private readonly outbox: Outbox;
  private readonly listeners = new Map<string, Set<QmpEventHandler>>();
  private readonly endWatchers = new Set<(reason: QmpError) => void>();

  private constructor(
    private readonly socket: Duplex,
    opts: QmpSessionOptions,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.commandTimeoutMs = checkTimeout('commandTimeoutMs', opts.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.reader = new MessageReader(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, {
      message: (m) => this.onMessage(m),
      violation: (what) => this.violation(what),
    });
    this.commands = new CommandTable(opts.maxAbandonedIds ?? DEFAULT_MAX_ABANDONED, (out) => this.outbox.drop(out));
    this.onListenerError = opts.onListenerError ?? defaultListenerError;
    this.outbox = new Outbox(socket, opts.sendFds ?? native.sendFds, {
      ended: () => this.phase === 'ended',
      commandOf: (id) => this.commands.commandOf(id),
      fail: (id, error) => this.commands.fail(id, error),
      disconnect: (error) => this.finish(error),
    });
    // Always listening for 'error': an unhandled one would crash the process.
    socket.on('error', (err: Error) => this.finish(new QmpDisconnectedError(`QMP connection failed: ${err.message}`, err)));
    socket.on('end', () => this.finish(new QmpDisconnectedError('QEMU closed the QMP connection')));
    socket.on('close', () => this.finish(new QmpDisconnectedError('QMP connection closed')));
    socket.on('data', (chunk: Buffer | string) => this.reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
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
      session.negotiated = session.execute('qmp_capabilities').then(() => undefined);
      if (opts.pipelineCapabilities) {
        session.negotiated.catch(() => undefined);
        return session;
      }
      await session.negotiated;
      return session;
    } catch (e) {
      session.close();
      if (e instanceof QmpDisconnectedError && e.reason instanceof QmpProtocolError) throw e.reason;
      throw e;
    }
  }

  /** qmp_capabilities answered (open() waits for it unless pipelineCapabilities). */
  negotiated: Promise<void> = Promise.resolve();

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
    const invalid = checkFds(command, fds, this.socket, this.phase === 'ended');
    if (invalid) return Promise.reject(invalid);
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
    const id = this.commands.nextId();
    try {
      if (typeof command !== 'string' || command === '') throw new TypeError('QMP command name must be a non-empty string');
      timeoutMs = checkTimeout('timeoutMs', opts.timeoutMs ?? this.commandTimeoutMs);
      bytes = encodeCommand(command, args, id);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const out: Outgoing = { id, bytes, fds, sent: false };
      this.commands.add(command, out, timeoutMs, resolve, reject);
      this.outbox.push(out);
    });
  }

  // ---- receiving ----

  private onMessage(m: QmpMessage): void {
    if (this.phase === 'greeting') {
      this.onGreeting(m);
      return;
    }
    switch (kindOf(m.msg)) {
      case 'event':
        this.onEvent(m);
        return;
      case 'reply': {
        const violation = this.commands.reply(m);
        if (violation !== undefined) this.violation(violation);
        return;
      }
      case 'greeting':
        this.violation('a second greeting');
        return;
      default:
        this.violation(`unrecognized message ${snippet(m.text)}`);
    }
  }

  private onGreeting(m: QmpMessage): void {
    const greeting = decodeGreeting(m);
    if (!greeting.ok) {
      this.violation(greeting.violation);
      return;
    }
    this.greetingInfo = greeting.value;
    this.phase = 'open';
    this.greetingWaiter?.resolve();
  }

  private onEvent(m: QmpMessage): void {
    const decoded = decodeEvent(m);
    if (!decoded.ok) {
      this.violation(decoded.violation);
      return;
    }
    const event = decoded.value;
    const named = this.listeners.get(event.event);
    const any = this.listeners.get('*');
    if (!named && !any) return;
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
    this.outbox.clear();
    this.reader.stop();
    this.listeners.clear();
    this.socket.destroy();
    this.commands.failAll((command) => this.goneError(command));
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

function defaultListenerError(error: unknown, event: QmpEvent): void {
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(`QMP ${event.event} handler threw: ${message}`, 'QmpListenerWarning');
}
