// Everything the session writes, in order, and SCM_RIGHTS descriptor
// passing. One queue carries every command so that one with descriptors is
// never overtaken by, or interleaved with, another: sendmsg bypasses Node's
// write queue, so it runs only once that queue is empty, and a short or
// refused (EAGAIN) sendmsg is finished or retried before anything behind it.
import type { Duplex } from 'node:stream';
import { isNativeError, native } from '../native/index.js';
import type { Outgoing } from './commands.js';
import { QmpDisconnectedError, type QmpError, QmpFdPassingError } from './errors.js';

/** What sendmsg(SCM_RIGHTS) looks like; the addon's by default. */
export type SendFdsFn = (socketFd: number, bytes: Uint8Array, fds: number[]) => number;

/** What the queue needs from the session that owns it. */
export interface OutboxHost {
  ended(): boolean;
  commandOf(id: number): string | undefined;
  /** One command cannot be sent; the session goes on. */
  fail(id: number, error: QmpError): void;
  /** The peer is gone. */
  disconnect(error: QmpDisconnectedError): void;
}

// sendmsg errors that mean the peer is gone rather than the descriptors bad.
const GONE_CODES = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN', 'ESHUTDOWN']);
const RETRY_MAX_MS = 50;

export class Outbox {
  private queue: Outgoing[] = [];
  private inflightWrites = 0;
  private pumping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 1;

  constructor(
    private readonly socket: Duplex,
    private readonly sendFds: SendFdsFn,
    private readonly host: OutboxHost,
  ) {}

  push(out: Outgoing): void {
    this.queue.push(out);
    this.pump();
  }

  /** Takes back a command none of whose bytes were written (it timed out in the queue). */
  drop(out: Outgoing): void {
    const i = this.queue.indexOf(out);
    if (i >= 0) this.queue.splice(i, 1);
    if (i === 0) {
      // The retry was for this command; what follows may go out now.
      this.cancelRetry();
      this.pump();
    }
  }

  /** The session ended: forgets everything unsent and stops retrying. */
  clear(): void {
    this.cancelRetry();
    this.queue = [];
  }

  private pump(): void {
    if (this.pumping || this.retryTimer !== undefined) return;
    this.pumping = true;
    try {
      while (!this.host.ended()) {
        const out = this.queue[0];
        if (!out) break;
        if (out.fds === undefined) {
          this.queue.shift();
          out.sent = true;
          this.write(out.bytes);
          continue;
        }
        // Our last write's callback pumps again; bytes someone else queued
        // on the socket have no such hook, so poll for those.
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
      if (this.inflightWrites === 0 && this.queue.length > 0) this.pump();
    });
  }

  /** False when pumping must stop (retry scheduled, or session ended). */
  private sendWithFds(out: Outgoing): boolean {
    const command = this.host.commandOf(out.id) ?? 'command';
    const fd = socketFd(this.socket);
    if (fd === undefined) {
      this.queue.shift();
      this.host.fail(out.id, noSocket(command));
      return true;
    }
    let n: number;
    try {
      n = this.sendFds(fd, out.bytes, out.fds!);
    } catch (e) {
      if (isNativeError(e, 'EAGAIN') || isNativeError(e, 'EWOULDBLOCK')) {
        this.retryLater();
        return false;
      }
      if (isNativeError(e) && GONE_CODES.has(e.code)) {
        this.host.disconnect(new QmpDisconnectedError(`QMP connection lost: ${e.message}`, e));
        return false;
      }
      // Nothing was sent (sendmsg on a stream socket fails only before the
      // first byte), so only this command fails.
      this.queue.shift();
      const message = e instanceof Error ? e.message : String(e);
      this.host.fail(out.id, new QmpFdPassingError(`QMP ${command}: cannot pass descriptors: ${message}`, { cause: e }));
      return true;
    }
    this.cancelRetry();
    this.queue.shift();
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
}

/** Why these descriptors cannot go with `command`, or undefined when they can. */
export function checkFds(command: string, fds: readonly number[], socket: Duplex, ended: boolean): QmpFdPassingError | undefined {
  const max = native.constants.MAX_FDS;
  if (!Array.isArray(fds) || fds.length < 1 || fds.length > max || !fds.every((fd) => Number.isInteger(fd) && fd >= 0)) {
    return new QmpFdPassingError(`QMP ${command}: pass 1..${max} descriptors, got ${String(fds)}`);
  }
  if (!ended && socketFd(socket) === undefined) {
    return noSocket(command);
  }
  return undefined;
}

function noSocket(command: string): QmpFdPassingError {
  return new QmpFdPassingError(`QMP ${command}: descriptor passing needs a Unix socket connection`);
}

function socketFd(socket: Duplex): number | undefined {
  // Node keeps the descriptor on its libuv handle; there is no public getter.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
