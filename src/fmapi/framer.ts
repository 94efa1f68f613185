// Cuts a byte stream into CCI messages. The FM-LD channel has no framing of
// its own: messages are back to back and the header's length is the only
// boundary, so a header that cannot be trusted leaves nothing to resync on
// but the chunk boundary — the framer then drops everything it holds.
import { Category, decodeHeader, HEADER_SIZE, MAX_PAYLOAD_FIELD, type MessageHeader } from './message.js';

export type FrameErrorKind = 'oversize' | 'category';

/** A header the framer refused. It has already reset; `discarded` counts the bytes it dropped. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly kind: FrameErrorKind,
    readonly header: MessageHeader,
    readonly discarded: number,
    message: string,
  ) {
    super(message);
  }
}

export interface FramerOptions {
  /** Largest payload accepted; a header announcing more is a FrameError. */
  maxPayload?: number;
  /** The category every message must have (requests on a server, responses on a client). */
  expect?: Category;
}

export class Framer {
  readonly maxPayload: number;
  readonly expect: Category | undefined;
  private head = new Uint8Array(HEADER_SIZE);
  private headFill = 0;
  /** The message being filled once its header is known. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;

  constructor(opts: FramerOptions = {}) {
    const max = opts.maxPayload ?? MAX_PAYLOAD_FIELD;
    if (!Number.isInteger(max) || max < 0 || max > MAX_PAYLOAD_FIELD)
      throw new RangeError(`maxPayload ${max} is outside 0..${MAX_PAYLOAD_FIELD}`);
    this.maxPayload = max;
    this.expect = opts.expect;
  }

  /** Bytes held toward the next message. */
  get buffered(): number {
    return this.body ? this.bodyFill : this.headFill;
  }

  /**
   * Whole messages completed by this chunk, in order. A refused header ends
   * the list with its FrameError; the rest of the chunk is discarded with it.
   */
  push(chunk: Uint8Array): (Uint8Array | FrameError)[] {
    const out: (Uint8Array | FrameError)[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (!this.body) {
        const take = Math.min(HEADER_SIZE - this.headFill, chunk.length - at);
        this.head.set(chunk.subarray(at, at + take), this.headFill);
        this.headFill += take;
        at += take;
        if (this.headFill < HEADER_SIZE) break;
        const header = decodeHeader(this.head);
        const refusal = this.refuse(header);
        if (refusal) {
          const discarded = HEADER_SIZE + (chunk.length - at);
          this.reset();
          out.push(new FrameError(refusal.kind, header, discarded, refusal.message));
          return out;
        }
        this.body = new Uint8Array(HEADER_SIZE + header.payloadLength);
        this.body.set(this.head);
        this.bodyFill = HEADER_SIZE;
        this.headFill = 0;
      }
      const take = Math.min(this.body.length - this.bodyFill, chunk.length - at);
      this.body.set(chunk.subarray(at, at + take), this.bodyFill);
      this.bodyFill += take;
      at += take;
      if (this.bodyFill === this.body.length) {
        out.push(this.body);
        this.body = null;
        this.bodyFill = 0;
      }
    }
    return out;
  }

  /** The header of the message being filled, once all 12 bytes of it are in. */
  pendingHeader(): MessageHeader | null {
    return this.body ? decodeHeader(this.body) : null;
  }

  /** Drops the partial message; returns how many bytes that was. */
  reset(): number {
    const dropped = this.buffered;
    this.body = null;
    this.bodyFill = 0;
    this.headFill = 0;
    return dropped;
  }

  private refuse(h: MessageHeader): { kind: FrameErrorKind; message: string } | null {
    if (this.expect !== undefined && h.category !== this.expect) {
      return { kind: 'category', message: `message category ${h.category} where ${Category[this.expect].toLowerCase()}s are expected` };
    }
    if (h.payloadLength > this.maxPayload) {
      return { kind: 'oversize', message: `payload length ${h.payloadLength} exceeds the maximum of ${this.maxPayload}` };
    }
    return null;
  }
}
