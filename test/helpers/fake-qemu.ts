// A scriptable stand-in for QEMU's end of a QMP connection, for tests: it
// greets, answers qmp_capabilities, runs per-command handlers (value, error,
// delay, no answer), emits events, sends raw bytes, writes a byte at a time
// and hangs up on request. Its output ends lines with \r\n, as QEMU's does.
//
// Two ways to connect:
// - `FakeQemu.dial(path)` dials a Unix socket the test listens on, as QEMU's
//   `-chardev socket,reconnect-ms=..` does, and reads through Node's stream.
//   It cannot see descriptors (libuv reads with plain read(2)).
// - `FakeQemu.pair()` makes a socketpair with the addon and hands the test a
//   net.Socket on one end for the session. The fake's end is wrapped in a
//   net.Socket with `readable: false`: libuv makes it non-blocking and writes
//   through it but never reads from it, so the fake can read *all* its input
//   with recvmsg (native.recvFds) without racing libuv, and receives
//   SCM_RIGHTS descriptors the way QEMU's chardev does. With no readiness
//   notification for a raw fd, it polls (EAGAIN → retry in 1 ms); that costs
//   a little CPU in tests and nothing in correctness.
//
// Descriptors arrive into a stash, as in QEMU: the default getfd handler takes
// them and files them under `fdname`; `takeFd` hands one to the test, which
// then owns it. Everything else the fake received is closed by `close()`.
import { once } from 'node:events';
import net from 'node:net';
import { isNativeError, native } from '../../src/native/index.js';

export const NO_REPLY: unique symbol = Symbol('no reply');

export type FakeReply = { return: unknown } | { error: { class: string; desc: string } } | typeof NO_REPLY;

export function ok(value: unknown = {}): FakeReply {
  return { return: value };
}

export function fail(errorClass: string, desc: string): FakeReply {
  return { error: { class: errorClass, desc } };
}

export interface ReceivedCommand {
  execute: string;
  arguments: Record<string, unknown> | undefined;
  /** Absent when the client sent none. */
  id: unknown;
  hasId: boolean;
  /** Descriptors the handler took from the stash (getfd). */
  fds: number[];
}

export type CommandHandler = (cmd: ReceivedCommand, fake: FakeQemu) => FakeReply | Promise<FakeReply>;

export interface FakeQemuOptions {
  version?: { major: number; minor: number; micro: number };
  package?: string;
  /** false: send no greeting; a string: send these bytes instead. */
  greeting?: false | string;
  /** Write every message a byte at a time. Can be changed later. */
  slowWrites?: boolean;
}

/** Resolvable from outside: lets a test decide when a handler answers. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

const RECV_CHUNK = 64 * 1024;

export class FakeQemu {
  /** Every well-formed command, in arrival order. */
  readonly received: ReceivedCommand[] = [];
  /** Input lines that were not a JSON object with `execute`. */
  readonly garbage: string[] = [];
  /** Resolves when the connection is gone, whichever side ended it. */
  readonly closed: Promise<void>;
  slowWrites: boolean;

  private readonly handlers = new Map<string, CommandHandler>();
  private readonly commandWaiters: Array<{ name: string; nth: number; deferred: Deferred<ReceivedCommand> }> = [];
  private readonly fdsByName = new Map<string, number>();
  private stash: number[] = [];
  private negotiated = false;
  /** A qmp_capabilities arrived: commands behind it count as negotiated, in arrival order, as QEMU handles them. */
  private capabilitiesSent = false;
  private ended = false;
  private resolveClosed!: () => void;
  private writing: Promise<void> = Promise.resolve();
  private partial: Buffer[] = [];
  private paused = false;
  private pollTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly socket: net.Socket,
    /** The fake's raw descriptor when it reads with recvmsg; undefined for stream reads. */
    private readonly rawFd: number | undefined,
    private readonly opts: FakeQemuOptions,
  ) {
    this.slowWrites = opts.slowWrites ?? false;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.on('error', () => this.end());
    socket.on('close', () => this.end());
    if (rawFd === undefined) {
      socket.on('data', (chunk: Buffer) => this.onBytes(chunk, []));
      socket.on('end', () => this.end());
    }
    this.handle('qmp_capabilities', () => ok({}));
    this.handle('getfd', (cmd) => {
      const fdname = cmd.arguments?.fdname;
      const fds = this.takeStash();
      cmd.fds.push(...fds);
      const fd = fds.shift();
      for (const extra of fds) native.close(extra);
      if (fd === undefined) return fail('GenericError', 'No file descriptor supplied via SCM_RIGHTS');
      if (typeof fdname !== 'string') {
        native.close(fd);
        return fail('GenericError', "Parameter 'fdname' is missing");
      }
      const old = this.fdsByName.get(fdname);
      if (old !== undefined) native.close(old);
      this.fdsByName.set(fdname, fd);
      return ok({});
    });
  }

  /** Dials `path` like QEMU's reconnecting chardev; resolves once connected and greeted. */
  static async dial(path: string, opts: FakeQemuOptions = {}): Promise<FakeQemu> {
    const socket = net.createConnection(path);
    await once(socket, 'connect');
    const fake = new FakeQemu(socket, undefined, opts);
    await fake.greet();
    return fake;
  }

  /**
   * A connected pair: `socket` is the backend's end (give it to the session),
   * the fake holds the other and can receive descriptors. The test owns
   * `socket` until a session takes it.
   */
  static pair(opts: FakeQemuOptions = {}): { fake: FakeQemu; socket: net.Socket } {
    const [backendFd, fakeFd] = native.socketPair();
    const socket = new net.Socket({ fd: backendFd, readable: true, writable: true });
    const fakeSocket = new net.Socket({ fd: fakeFd, readable: false, writable: true });
    const fake = new FakeQemu(fakeSocket, fakeFd, opts);
    fake.schedulePoll(0);
    void fake.greet();
    return { fake, socket };
  }

  /** Replaces the handler for `command` (the default answers CommandNotFound). */
  handle(command: string, handler: CommandHandler): this {
    this.handlers.set(command, handler);
    return this;
  }

  /** Resolves with the nth (1-based) `name` command, at once if already received. */
  waitForCommand(name: string, nth = 1): Promise<ReceivedCommand> {
    const seen = this.received.filter((c) => c.execute === name);
    const hit = seen[nth - 1];
    if (hit) return Promise.resolve(hit);
    const deferred = new Deferred<ReceivedCommand>();
    // Rejected if the fake closes first; a test that stopped waiting must not see an unhandled rejection.
    deferred.promise.catch(() => {});
    this.commandWaiters.push({ name, nth, deferred });
    return deferred.promise;
  }

  reply(id: unknown, value: unknown = {}): Promise<void> {
    return this.sendMessage({ return: value, id });
  }

  replyError(id: unknown, errorClass: string, desc: string): Promise<void> {
    return this.sendMessage({ error: { class: errorClass, desc }, id });
  }

  emitEvent(event: string, data?: Record<string, unknown>): Promise<void> {
    const timestamp = { seconds: 1_700_000_000, microseconds: 123_456 };
    return this.sendMessage(data === undefined ? { event, timestamp } : { event, data, timestamp });
  }

  sendMessage(message: unknown): Promise<void> {
    return this.sendRaw(`${JSON.stringify(message)}\r\n`);
  }

  /** Queues bytes after everything written before; resolves once handed to the kernel. */
  sendRaw(bytes: string | Buffer): Promise<void> {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    this.writing = this.writing.then(() => this.writeNow(buf));
    return this.writing;
  }

  /** Stops reading (the session's writes back up in the kernel, then in Node). */
  pauseReading(): void {
    this.paused = true;
    if (this.rawFd === undefined) this.socket.pause();
    else {
      clearTimeout(this.pollTimer);
      this.pollTimer = undefined;
    }
  }

  resumeReading(): void {
    this.paused = false;
    if (this.rawFd === undefined) this.socket.resume();
    else this.schedulePoll(0);
  }

  /** The descriptor getfd filed under `name`; the caller now owns it. */
  takeFd(name: string): number {
    const fd = this.fdsByName.get(name);
    if (fd === undefined) throw new Error(`fake QEMU holds no fd named ${name}`);
    this.fdsByName.delete(name);
    return fd;
  }

  /** Descriptors received and not yet claimed by a handler. */
  takeStash(): number[] {
    const fds = this.stash;
    this.stash = [];
    return fds;
  }

  /** Half-closes: QEMU stops sending but the socket stays open for reading. */
  endOutput(): void {
    this.writing = this.writing.then(() => {
      this.socket.end();
    });
  }

  /** Hangs up at once, as a killed QEMU does. */
  disconnect(): void {
    this.end();
  }

  /** Hangs up and closes every descriptor the test did not take. */
  close(): void {
    this.end();
    for (const fd of [...this.stash, ...this.fdsByName.values()]) native.close(fd);
    this.stash = [];
    this.fdsByName.clear();
  }

  // ---- internals ----

  private greet(): Promise<void> {
    const { greeting } = this.opts;
    if (greeting === false) return Promise.resolve();
    if (typeof greeting === 'string') return this.sendRaw(greeting);
    const v = this.opts.version ?? { major: 10, minor: 0, micro: 13 };
    const pkg = this.opts.package ?? `Debian 1:${v.major}.${v.minor}.${v.micro}+ds-1`;
    // Key order as QEMU prints it.
    return this.sendMessage({
      QMP: { version: { qemu: { micro: v.micro, minor: v.minor, major: v.major }, package: pkg }, capabilities: ['oob'] },
    });
  }

  private async writeNow(buf: Buffer): Promise<void> {
    if (this.slowWrites) {
      for (let i = 0; i < buf.length && !this.ended; i++) {
        await this.writeChunk(buf.subarray(i, i + 1));
        // Let the reader run between bytes so they arrive as separate chunks.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } else {
      await this.writeChunk(buf);
    }
  }

  private writeChunk(buf: Buffer): Promise<void> {
    if (this.ended || this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    // A write error also surfaces as 'error'/'close', which end the fake.
    return new Promise((resolve) => this.socket.write(buf, () => resolve()));
  }

  private schedulePoll(delayMs: number): void {
    if (this.ended || this.paused || this.pollTimer !== undefined) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.poll();
    }, delayMs);
  }

  private poll(): void {
    const fd = this.rawFd!;
    for (let i = 0; i < 64 && !this.ended && !this.paused; i++) {
      let got: { data: Buffer; fds: number[] };
      try {
        got = native.recvFds(fd, RECV_CHUNK);
      } catch (e) {
        if (isNativeError(e, 'EAGAIN')) {
          this.schedulePoll(1);
        } else {
          this.end();
        }
        return;
      }
      if (got.data.length === 0) {
        for (const extra of got.fds) native.close(extra);
        this.end();
        return;
      }
      this.onBytes(got.data, got.fds);
    }
    this.schedulePoll(0);
  }

  private onBytes(chunk: Buffer, fds: number[]): void {
    if (this.ended) {
      for (const fd of fds) native.close(fd);
      return;
    }
    this.stash.push(...fds);
    let start = 0;
    let nl = chunk.indexOf(0x0a);
    while (nl !== -1 && !this.ended) {
      this.partial.push(chunk.subarray(start, nl));
      const line = Buffer.concat(this.partial).toString('utf8');
      this.partial = [];
      this.onLine(line);
      start = nl + 1;
      nl = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.garbage.push(line);
      return;
    }
    if (typeof msg !== 'object' || msg === null || typeof (msg as { execute?: unknown }).execute !== 'string') {
      this.garbage.push(line);
      return;
    }
    const m = msg as { execute: string; arguments?: Record<string, unknown>; id?: unknown };
    const cmd: ReceivedCommand = { execute: m.execute, arguments: m.arguments, id: m.id, hasId: 'id' in m, fds: [] };
    this.received.push(cmd);
    const count = this.received.filter((c) => c.execute === cmd.execute).length;
    for (let i = this.commandWaiters.length - 1; i >= 0; i--) {
      const w = this.commandWaiters[i]!;
      if (w.name === cmd.execute && w.nth === count) {
        this.commandWaiters.splice(i, 1);
        w.deferred.resolve(cmd);
      }
    }
    const afterCapabilities = this.negotiated || this.capabilitiesSent;
    if (cmd.execute === 'qmp_capabilities') this.capabilitiesSent = true;
    void this.dispatch(cmd, afterCapabilities);
  }

  private async dispatch(cmd: ReceivedCommand, afterCapabilities: boolean): Promise<void> {
    let reply: FakeReply;
    if (!afterCapabilities && cmd.execute !== 'qmp_capabilities') {
      reply = fail('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
    } else {
      const handler = this.handlers.get(cmd.execute);
      try {
        reply = handler ? await handler(cmd, this) : fail('CommandNotFound', `The command ${cmd.execute} has not been found`);
      } catch (e) {
        reply = fail('GenericError', e instanceof Error ? e.message : String(e));
      }
      if (cmd.execute === 'qmp_capabilities') {
        if (reply !== NO_REPLY && 'return' in reply) this.negotiated = true;
        else this.capabilitiesSent = this.negotiated;
      }
    }
    if (reply === NO_REPLY || this.ended) return;
    await this.sendMessage(cmd.hasId ? { ...reply, id: cmd.id } : reply);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    // Closes the fake's descriptor; polling has stopped, so no recvmsg can hit a reused number.
    this.socket.destroy();
    for (const w of this.commandWaiters.splice(0)) w.deferred.reject(new Error(`fake QEMU closed before ${w.name}`));
    this.resolveClosed();
  }
}

/** A listening head socket in a temp dir, as the backend would have. */
export class UnixListener {
  private readonly server: net.Server;
  private readonly queue: net.Socket[] = [];
  private readonly waiters: Array<(s: net.Socket) => void> = [];
  private readonly accepted = new Set<net.Socket>();

  private constructor(readonly path: string) {
    this.server = net.createServer((socket) => {
      this.accepted.add(socket);
      socket.on('error', () => {});
      const w = this.waiters.shift();
      if (w) w(socket);
      else this.queue.push(socket);
    });
  }

  static async listen(path: string): Promise<UnixListener> {
    const l = new UnixListener(path);
    l.server.listen(path);
    await once(l.server, 'listening');
    return l;
  }

  /** The next accepted connection. */
  accept(): Promise<net.Socket> {
    const s = this.queue.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    for (const s of this.accepted) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
