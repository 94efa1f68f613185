// The FM-API server: turns one request message into one response message
// (FmApiServer.handle), and serves a byte stream of them (serveChannel). It
// knows the wire and the return-code rules; where capacity comes from is the
// FmBackend's business.
import { Duplex, PassThrough } from 'node:stream';
import {
  type AddRequest,
  COMMAND_BY_OPCODE,
  type DcdInfoResponse,
  type ExtentListRequest,
  type ExtentListResponse,
  type HeadInfoRequest,
  type HeadInfoResponse,
  type IdentifyResponse,
  type MhdInfoRequest,
  type MhdInfoResponse,
  type ReferenceRequest,
  type RegionConfigRequest,
  type RegionConfigResponse,
  type ReleaseRequest,
  type SetRegionConfigRequest,
  type TagListRequest,
  type TagListResponse,
} from './commands.js';
import { FmError } from './errors.js';
import { FrameError, type FrameErrorKind, Framer } from './framer.js';
import { maxRecords } from './layout.js';
import { Category, decodeHeader, encodeMessage, HEADER_SIZE, type MessageHeader, ReturnCode } from './message.js';

type Result<T> = T | Promise<T>;

/** What Identify reports, less the message size, which is the server's to say. */
export type IdentifyInfo = Omit<IdentifyResponse, 'maxMessageSizeLog2'>;

/**
 * The capacity side of the FM-API. Requests arrive decoded and validated;
 * list counts are already clamped to what fits in one response, and a list
 * longer than the request's count is answered as Internal Error. Throw
 * FmError to answer with a return code; anything else is Internal Error.
 * A method left out answers Unsupported.
 */
export interface FmBackend {
  identify?(): Result<IdentifyInfo>;
  mhdInfo?(req: MhdInfoRequest): Result<MhdInfoResponse>;
  headInfo?(req: HeadInfoRequest): Result<HeadInfoResponse>;
  dcdInfo?(): Result<DcdInfoResponse>;
  hostRegionConfig?(req: RegionConfigRequest): Result<RegionConfigResponse>;
  extentList?(req: ExtentListRequest): Result<ExtentListResponse>;
  /** Resolves once the add is initiated (QMP sent), not when the guest accepts it. */
  initiateAdd?(req: AddRequest): Result<void>;
  initiateRelease?(req: ReleaseRequest): Result<void>;
  setRegionConfig?(req: SetRegionConfigRequest): Result<void>;
  addReference?(req: ReferenceRequest): Result<void>;
  removeReference?(req: ReferenceRequest): Result<void>;
  listTags?(req: TagListRequest): Result<TagListResponse>;
}

export interface ServerOptions {
  /** Identify's Maximum Supported Message Size: 2^n bytes, header included, n in 8..20. */
  maxMessageSizeLog2?: number;
  /** Called for every answer that became Internal Error, with what caused it. */
  onInternalError?: (error: unknown, ctx: { tag: number; opcode: number }) => void;
  /**
   * Called when the backend refused a command with an FmError. The wire
   * carries only the return code; this is where its reason can be logged.
   */
  onRefusal?: (error: FmError, ctx: { tag: number; opcode: number }) => void;
}

export const DEFAULT_MAX_MESSAGE_SIZE_LOG2 = 16;

export interface Answer {
  /** The request's header as read (zero-filled where the frame was shorter). */
  request: MessageHeader;
  returnCode: number;
  response: Uint8Array;
}

/** A response message to `h`: same tag and opcode, no payload unless given. */
export function replyTo(h: Pick<MessageHeader, 'tag' | 'opcode'>, returnCode: number, payload?: Uint8Array, vendorStatus = 0): Uint8Array {
  return encodeMessage({ category: Category.Response, tag: h.tag, opcode: h.opcode, returnCode, vendorStatus, payload });
}

export class FmApiServer {
  readonly maxMessageSizeLog2: number;
  readonly maxPayload: number;

  constructor(
    readonly backend: FmBackend,
    private readonly opts: ServerOptions = {},
  ) {
    const n = opts.maxMessageSizeLog2 ?? DEFAULT_MAX_MESSAGE_SIZE_LOG2;
    if (!Number.isInteger(n) || n < 8 || n > 20) throw new RangeError(`maxMessageSizeLog2 ${n} is outside 8..20`);
    this.maxMessageSizeLog2 = n;
    this.maxPayload = 2 ** n - HEADER_SIZE;
  }

  /** The response to one request message. Never rejects. */
  async handle(frame: Uint8Array): Promise<Uint8Array> {
    return (await this.answer(frame)).response;
  }

  async answer(frame: Uint8Array): Promise<Answer> {
    let head = frame;
    if (frame.length < HEADER_SIZE) {
      head = new Uint8Array(HEADER_SIZE);
      head.set(frame);
    }
    const h = decodeHeader(head);
    const reply = (code: number, payload?: Uint8Array, vendorStatus = 0): Answer => ({
      request: h,
      returnCode: code,
      response: replyTo(h, code, payload, vendorStatus),
    });
    const internal = (e: unknown): Answer => {
      try {
        this.opts.onInternalError?.(e, { tag: h.tag, opcode: h.opcode });
      } catch {
        // A failing logger must not take the answer with it.
      }
      return reply(ReturnCode.InternalError);
    };

    if (frame.length < HEADER_SIZE) return reply(ReturnCode.InvalidPayloadLength);
    if (h.category !== Category.Request) return reply(ReturnCode.InvalidInput);
    if (h.payloadLength !== frame.length - HEADER_SIZE || h.payloadLength > this.maxPayload) return reply(ReturnCode.InvalidPayloadLength);
    const entry = COMMAND_BY_OPCODE.get(h.opcode);
    const method = entry ? (this.backend[entry.key] as ((req: unknown) => Result<unknown>) | undefined) : undefined;
    if (!entry || !method) return reply(ReturnCode.Unsupported);
    const { key, spec } = entry;

    let req: Record<string, unknown>;
    try {
      req = spec.request.decode(frame.subarray(HEADER_SIZE)) as Record<string, unknown>;
    } catch (e) {
      return e instanceof FmError ? reply(e.code) : internal(e);
    }
    let cap = Number.POSITIVE_INFINITY;
    if (spec.page) {
      cap = Math.min(req[spec.page.request] as number, maxRecords(spec.response.layout, this.maxPayload));
      req[spec.page.request] = cap;
    }

    let result: unknown;
    try {
      result = await method.call(this.backend, req);
    } catch (e) {
      // Success and Background Started carry payloads a thrown error cannot supply.
      if (e instanceof FmError && e.code > ReturnCode.BackgroundStarted && e.code <= 0xffff) {
        try {
          this.opts.onRefusal?.(e, { tag: h.tag, opcode: h.opcode });
        } catch {
          // A failing logger must not take the answer with it.
        }
        return reply(e.code, undefined, e.vendorStatus & 0xffff);
      }
      return internal(e);
    }
    try {
      if (key === 'identify') result = { ...(result as IdentifyInfo), maxMessageSizeLog2: this.maxMessageSizeLog2 };
      if (spec.page) {
        const list = (result as Record<string, unknown> | undefined)?.[spec.page.response];
        if (Array.isArray(list) && list.length > cap) {
          throw new Error(`backend returned ${list.length} ${spec.page.response} where ${cap} were asked for`);
        }
      }
      const payload = spec.response.encode(result ?? {});
      if (payload.length > this.maxPayload)
        throw new Error(`response of ${payload.length} bytes exceeds the ${this.maxPayload}-byte maximum`);
      return reply(ReturnCode.Success, payload);
    } catch (e) {
      return internal(e);
    }
  }
}

// ---- the channel driver ---------------------------------------------------

export type ChannelEvent =
  | { type: 'answered'; tag: number; opcode: number; returnCode: number }
  /**
   * Buffered input was dropped: the framer refused a header (answered), or a
   * partial message went stale (answered if its header was complete).
   * tag, opcode and payloadLength are there when a header was read.
   */
  | {
      type: 'reset';
      reason: FrameErrorKind | 'stale';
      discarded: number;
      message: string;
      tag?: number;
      opcode?: number;
      payloadLength?: number;
    }
  /** The bound guard said no: the message was answered with the refusal code, not handled. */
  | { type: 'refused'; tag: number; opcode: number; returnCode: number }
  | { type: 'error'; error: Error }
  | { type: 'closed' };

export interface ChannelOptions {
  /** Asked before every message: is this channel still the current lease owner's? */
  isBound?: () => boolean;
  /**
   * The answer to a message on an unbound channel. Unsupported Mailbox ("not
   * supported on the CCI it was issued on") says what happened: this port no
   * longer reaches the FM-API. Busy or Retry Required would invite a retry
   * that can never succeed.
   */
  refusalCode?: ReturnCode;
  onEvent?: (event: ChannelEvent) => void;
  /** Messages waiting beyond this pause reading until the queue drains. */
  maxQueued?: number;
  /**
   * A partial message that gets no more bytes for this long is dropped. A
   * client writes each message whole, so a remnant this old was left by a
   * client that died mid-write; kept, it would swallow the next client's
   * request. 0 disables. Default 1000 ms.
   */
  staleMs?: number;
}

export interface Channel {
  /** Resolves when the channel stops: stream ended, failed or close() was called. */
  readonly done: Promise<void>;
  /** Stops serving. The stream is the caller's: it is left open. */
  close(): void;
}

type Item = { frame: Uint8Array } | { reply: Uint8Array };

export function serveChannel(stream: Duplex, server: FmApiServer, opts: ChannelOptions = {}): Channel {
  const framer = new Framer({ maxPayload: server.maxPayload, expect: Category.Request });
  const refusalCode = opts.refusalCode ?? ReturnCode.UnsupportedMailbox;
  const maxQueued = opts.maxQueued ?? 16;
  const staleMs = opts.staleMs ?? 1000;
  let staleTimer: NodeJS.Timeout | undefined;
  const queue: Item[] = [];
  let running = false;
  let paused = false;
  let closed = false;
  let ending = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });

  const emit = (e: ChannelEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      // The caller's journal failing is not the guest's problem.
    }
  };

  const bound = (): boolean => {
    if (!opts.isBound) return true;
    try {
      return opts.isBound();
    } catch (e) {
      emit({ type: 'error', error: e instanceof Error ? e : new Error(String(e)) });
      return false;
    }
  };

  const writeOut = (bytes: Uint8Array): Promise<void> | undefined => {
    if (closed || stream.destroyed || stream.writableEnded) return undefined;
    if (stream.write(bytes)) return undefined;
    return new Promise<void>((resolve) => {
      const go = () => {
        stream.off('drain', go);
        stream.off('close', go);
        resolve();
      };
      stream.on('drain', go);
      stream.on('close', go);
    });
  };

  const pump = async () => {
    if (running) return;
    running = true;
    try {
      while (queue.length > 0 && !closed) {
        const item = queue.shift()!;
        if (paused && queue.length < maxQueued) {
          paused = false;
          stream.resume();
        }
        let bytes: Uint8Array;
        if ('reply' in item) {
          bytes = item.reply;
        } else {
          const h = decodeHeader(item.frame);
          if (!bound()) {
            bytes = replyTo(h, refusalCode);
            emit({ type: 'refused', tag: h.tag, opcode: h.opcode, returnCode: refusalCode });
          } else {
            const a = await server.answer(item.frame);
            bytes = a.response;
            if (!closed) emit({ type: 'answered', tag: h.tag, opcode: h.opcode, returnCode: a.returnCode });
          }
        }
        const wait = writeOut(bytes);
        if (wait) await wait;
      }
    } finally {
      running = false;
    }
    if (ending && queue.length === 0) close();
  };

  const onData = (chunk: Buffer) => {
    for (const item of framer.push(chunk)) {
      if (item instanceof FrameError) {
        const { header: h } = item;
        // Oversize: the header is sound but the payload is too long. Category: this is not a request at all.
        const code = item.kind === 'oversize' ? ReturnCode.InvalidPayloadLength : ReturnCode.InvalidInput;
        queue.push({ reply: replyTo(h, code) });
        emit({
          type: 'reset',
          reason: item.kind,
          tag: h.tag,
          opcode: h.opcode,
          payloadLength: h.payloadLength,
          discarded: item.discarded,
          message: item.message,
        });
      } else {
        queue.push({ frame: item });
      }
    }
    clearTimeout(staleTimer);
    if (staleMs > 0 && framer.buffered > 0) {
      staleTimer = setTimeout(dropStale, staleMs);
      staleTimer.unref();
    }
    if (queue.length >= maxQueued && !paused) {
      paused = true;
      stream.pause();
    }
    pump().catch((e: unknown) => onError(e instanceof Error ? e : new Error(String(e))));
  };

  const dropStale = () => {
    if (closed) return;
    const h = framer.pendingHeader();
    const discarded = framer.reset();
    if (h) queue.push({ reply: replyTo(h, ReturnCode.InvalidPayloadLength) });
    const message = `dropped a partial message: ${discarded} bytes and no more for ${staleMs} ms`;
    emit(
      h
        ? { type: 'reset', reason: 'stale', discarded, message, tag: h.tag, opcode: h.opcode, payloadLength: h.payloadLength }
        : { type: 'reset', reason: 'stale', discarded, message },
    );
    pump().catch((e: unknown) => onError(e instanceof Error ? e : new Error(String(e))));
  };

  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(staleTimer);
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('close', close);
    queue.length = 0;
    framer.reset();
    emit({ type: 'closed' });
    finish();
  };
  // The peer has sent all it will: answer what is queued, then stop.
  const onEnd = () => {
    ending = true;
    if (!running && queue.length === 0) close();
  };
  // Stays attached after close: an error on a stream nobody listens to would crash the process.
  const onError = (error: Error) => {
    if (closed) return;
    emit({ type: 'error', error });
    close();
  };

  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', close);
  stream.on('error', onError);
  return { done, close };
}

/**
 * A channel inside one process: the client's end of an in-memory stream
 * pair whose other end `serveChannel` serves, so an FM client in the same
 * process (the northbound) speaks to `server` with the same codecs, framing
 * and binding rule as over a socket, without one.
 */
export function inProcessChannel(server: FmApiServer, opts: ChannelOptions = {}): { client: Duplex; channel: Channel } {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const client = Duplex.from({ writable: toServer, readable: toClient });
  const channel = serveChannel(Duplex.from({ writable: toClient, readable: toServer }), server, opts);
  void channel.done.then(() => client.destroy());
  return { client, channel };
}
