// What QEMU sends, taken apart: cuts the byte stream into lines under a fixed
// size limit, parses each line as one JSON object, and checks the shape of
// the greeting, of events and of replies. Owns every rule a hostile peer can
// break; a broken rule is reported as one short line for a QmpProtocolError,
// never thrown, and peer text in it is quoted and cut short.

// query-qmp-schema, the largest reply QEMU 10 gives, is a few hundred KiB.
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

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

/** One JSON object QEMU sent, with its line's text for error messages. */
export interface QmpMessage {
  msg: Record<string, unknown>;
  text: string;
}

/** A decoded value, or what rule the peer broke. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; violation: string };

export interface MessageSink {
  message(m: QmpMessage): void;
  violation(what: string): void;
}

/**
 * Turns chunks into QmpMessages. Holds at most `maxLineBytes` of an
 * unfinished line; a longer line is a violation as soon as it is seen, not
 * when its end arrives. After a violation, or once `stop()` was called
 * (also from inside a sink callback), nothing more is delivered.
 */
export class MessageReader {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private stopped = false;

  constructor(
    readonly maxLineBytes: number,
    private readonly sink: MessageSink,
  ) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (!this.stopped) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) {
        const rest = chunk.length - start;
        if (this.partialBytes + rest > this.maxLineBytes) {
          this.fail(`a message exceeds ${this.maxLineBytes} bytes`);
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
        this.fail(`a message exceeds ${this.maxLineBytes} bytes`);
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
      this.line(line.toString('utf8'));
    }
  }

  /** Drops any unfinished line and delivers nothing more. Idempotent. */
  stop(): void {
    this.stopped = true;
    this.partial = [];
    this.partialBytes = 0;
  }

  /** Bytes of an unfinished line held now. */
  get buffered(): number {
    return this.partialBytes;
  }

  private line(text: string): void {
    const parsed = parseLine(text);
    if (parsed === undefined) return;
    if (parsed.ok) this.sink.message({ msg: parsed.value, text });
    else this.fail(parsed.violation);
  }

  private fail(what: string): void {
    this.stop();
    this.sink.violation(what);
  }
}

/** One line as a JSON object; undefined for a blank line, which QMP allows. */
export function parseLine(text: string): Decoded<Record<string, unknown>> | undefined {
  // QEMU ends lines with \r\n; JSON.parse takes the \r as whitespace.
  if (text.trim() === '') return undefined;
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return bad(`invalid JSON ${snippet(text)}`);
  }
  if (!isObject(msg)) return bad(`a message is not a JSON object: ${snippet(text)}`);
  return { ok: true, value: msg };
}

export type MessageKind = 'event' | 'reply' | 'greeting' | 'unknown';

/** What an object received after the greeting is; the caller decides what each kind means now. */
export function kindOf(msg: Record<string, unknown>): MessageKind {
  if (Object.hasOwn(msg, 'event')) return 'event';
  if (Object.hasOwn(msg, 'return') || Object.hasOwn(msg, 'error')) return 'reply';
  if (Object.hasOwn(msg, 'QMP')) return 'greeting';
  return 'unknown';
}

export function decodeGreeting({ msg, text }: QmpMessage): Decoded<QmpGreeting> {
  const qmp = msg.QMP;
  const version = isObject(qmp) && isObject(qmp.version) ? qmp.version : undefined;
  const qemu = version && isObject(version.qemu) ? version.qemu : undefined;
  const { major, minor, micro } = qemu ?? {};
  if (!isObject(qmp) || !version || !isVersionPart(major) || !isVersionPart(minor) || !isVersionPart(micro)) {
    return bad(`expected a greeting with version.qemu, got ${snippet(text)}`);
  }
  const pkg = typeof version.package === 'string' ? version.package.trim() : '';
  const caps = Array.isArray(qmp.capabilities) ? qmp.capabilities.filter((c): c is string => typeof c === 'string') : [];
  return { ok: true, value: { version: { major, minor, micro, package: pkg }, capabilities: caps, raw: qmp } };
}

export function decodeEvent({ msg, text }: QmpMessage): Decoded<QmpEvent> {
  const name = msg.event;
  const data = msg.data ?? {};
  if (typeof name !== 'string' || !isObject(data)) return bad(`malformed event ${snippet(text)}`);
  const event: QmpEvent = { event: name, data };
  const ts = msg.timestamp;
  if (isObject(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number') {
    event.timestamp = { seconds: ts.seconds, microseconds: ts.microseconds };
  }
  return { ok: true, value: event };
}

/** A reply's outcome: the `return` value, or QEMU's error class and description. */
export type ReplyBody = { ok: true; value: unknown } | { ok: false; errorClass: string; desc: string };

/** The id of a reply, unchecked against any command: that is the caller's table. */
export function replyId({ msg, text }: QmpMessage): Decoded<unknown> {
  if (!Object.hasOwn(msg, 'id')) return bad(`a reply without id ${snippet(text)}`);
  return { ok: true, value: msg.id };
}

export function decodeReplyBody({ msg, text }: QmpMessage): Decoded<ReplyBody> {
  if (!Object.hasOwn(msg, 'error')) return { ok: true, value: { ok: true, value: msg.return } };
  const e = msg.error;
  if (!isObject(e) || typeof e.class !== 'string' || typeof e.desc !== 'string') {
    return bad(`malformed error reply ${snippet(text)}`);
  }
  return { ok: true, value: { ok: false, errorClass: e.class, desc: e.desc } };
}

/** Encodes one command line as QEMU reads it. Throws TypeError for arguments JSON cannot carry. */
export function encodeCommand(command: string, args: Record<string, unknown> | undefined, id: number): Buffer {
  const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
  return Buffer.from(`${JSON.stringify(message)}\n`);
}

// Peer-controlled text in our messages: quoted (no raw control characters
// reach a log) and short.
export function snippet(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function bad(violation: string): { ok: false; violation: string } {
  return { ok: false, violation };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isVersionPart(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}
