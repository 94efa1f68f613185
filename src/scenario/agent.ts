// Owns talking to a guest's QEMU guest agent (qemu-ga) over the chardev
// socket QEMU serves for the org.qemu.guest_agent.0 port: the sync
// handshake, guest-exec and guest-exec-status. One request at a time per
// agent, as qemu-ga itself answers them in order.
import { connect, type Socket } from 'node:net';

export interface ExecResult {
  exitCode: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class AgentError extends Error {
  override name = 'AgentError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class GuestAgent {
  private socket: Socket | null = null;
  private buffer = '';
  private waiter: ((line: string | null) => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly path: string) {}

  private async open(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const s = await new Promise<Socket>((resolve, reject) => {
      const sock = connect(this.path);
      sock.once('connect', () => resolve(sock));
      sock.once('error', reject);
    });
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      this.buffer += d;
      this.drain();
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = null;
      // QEMU went away: whoever waits for an answer gets none now, not at its timeout.
      const w = this.waiter;
      this.waiter = null;
      w?.(null);
    });
    this.socket = s;
    this.buffer = '';
    return s;
  }

  private drain(): void {
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl < 0 || this.waiter === null) return;
      // 0xff bytes delimit a guest-sync-delimited answer; they are not JSON.
      const line = this.buffer.slice(0, nl).replace(/\xff/g, '').trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') continue;
      const w = this.waiter;
      this.waiter = null;
      w(line);
    }
  }

  private nextLine(timeoutMs: number): Promise<string | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = null;
        resolve(null);
      }, timeoutMs);
      this.waiter = (line) => {
        clearTimeout(t);
        resolve(line);
      };
      this.drain();
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Waits until the agent answers a guest-sync-delimited with our id. Stale
   * answers (to syncs sent before qemu-ga was up, which QEMU queued) are skipped.
   */
  waitReady(deadline: number, isAlive: () => boolean = () => true): Promise<void> {
    return this.serial(async () => {
      while (!this.closed) {
        if (!isAlive()) throw new AgentError('the guest stopped before its agent answered');
        if (Date.now() > deadline) throw new AgentError('the guest agent did not answer in time');
        let sock: Socket;
        try {
          sock = await this.open();
        } catch {
          await sleep(250);
          continue;
        }
        const id = Math.floor(Math.random() * 2 ** 31);
        sock.write(Buffer.from([0xff]));
        sock.write(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`);
        const until = Date.now() + 2000;
        while (Date.now() < until) {
          const line = await this.nextLine(until - Date.now());
          if (line === null) break;
          try {
            if ((JSON.parse(line) as { return?: unknown }).return === id) return;
          } catch {
            // a partial line from an earlier attempt
          }
        }
      }
      throw new AgentError('the guest agent connection was closed');
    });
  }

  private async call<T>(execute: string, args: object, timeoutMs = 30_000): Promise<T> {
    const sock = await this.open();
    sock.write(`${JSON.stringify({ execute, arguments: args })}\n`);
    const line = await this.nextLine(timeoutMs);
    if (line === null) {
      throw new AgentError(
        this.socket === null
          ? `the guest agent's connection closed during ${execute} (QEMU gone?)`
          : `the guest agent did not answer ${execute} within ${timeoutMs / 1000} s`,
      );
    }
    const r = JSON.parse(line) as { return?: T; error?: { desc?: string } };
    if (r.error) throw new AgentError(`guest agent: ${execute}: ${r.error.desc ?? 'failed'}`);
    return r.return as T;
  }

  /** Runs argv in the guest, collecting stdout/stderr; kills it (SIGKILL) when timeoutMs passes. */
  exec(argv: string[], opts: { env?: Record<string, string>; timeoutMs: number; input?: string }): Promise<ExecResult> {
    return this.serial(async () => {
      const env = Object.entries({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...opts.env }).map(
        ([k, v]) => `${k}=${v}`,
      );
      const { pid } = await this.call<{ pid: number }>('guest-exec', {
        path: argv[0],
        arg: argv.slice(1),
        env,
        'capture-output': true,
        ...(opts.input !== undefined ? { 'input-data': Buffer.from(opts.input).toString('base64') } : {}),
      });
      const deadline = Date.now() + opts.timeoutMs;
      let delay = 20;
      for (;;) {
        const st = await this.call<{
          exited: boolean;
          exitcode?: number;
          signal?: number;
          'out-data'?: string;
          'err-data'?: string;
        }>('guest-exec-status', { pid });
        if (st.exited) {
          return {
            exitCode: st.exitcode ?? null,
            signal: st.signal ?? null,
            stdout: Buffer.from(st['out-data'] ?? '', 'base64').toString('utf8'),
            stderr: Buffer.from(st['err-data'] ?? '', 'base64').toString('utf8'),
            timedOut: false,
          };
        }
        if (Date.now() > deadline) {
          // qemu-ga has no kill: ask the guest's own kill, then collect the reaped child.
          const k = await this.call<{ pid: number }>('guest-exec', { path: '/bin/kill', arg: ['-KILL', String(pid)] });
          await sleep(200);
          const st2 = await this.call<{ exited: boolean; 'out-data'?: string; 'err-data'?: string }>('guest-exec-status', { pid }).catch(
            () => null,
          );
          await this.call('guest-exec-status', { pid: k.pid }).catch(() => null);
          return {
            exitCode: null,
            signal: 9,
            stdout: Buffer.from(st2?.['out-data'] ?? '', 'base64').toString('utf8'),
            stderr: Buffer.from(st2?.['err-data'] ?? '', 'base64').toString('utf8'),
            timedOut: true,
          };
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 250);
      }
    });
  }

  close(): void {
    this.closed = true;
    const w = this.waiter;
    this.waiter = null;
    w?.(null);
    this.socket?.destroy();
    this.socket = null;
  }
}
