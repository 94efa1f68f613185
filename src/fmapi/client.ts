// The FM-API client: one method per command over any byte stream — a Unix
// socket in tests, the guest's FM-LD virtio-serial port in production (see
// port.ts). Requests may overlap; each gets its own tag and its response is
// matched by tag and opcode. With all 256 tags out, the next request waits
// for one to come back.
import type { Duplex } from 'node:stream';
import type { CodedError } from '../errors/index.js';
import {
  type AddRequest,
  COMMANDS,
  type CommandName,
  type DcdInfoResponse,
  type Extent,
  type ExtentListResponse,
  type HeadInfoResponse,
  type IdentifyResponse,
  type MhdInfoResponse,
  type RegionConfigResponse,
  RemovalPolicy,
  type RequestOf,
  type ResponseOf,
  SelectionPolicy,
  type TagInfo,
  type TagListResponse,
  ZERO_TAG,
} from './commands.js';
import { FmError } from './errors.js';
import { FrameError, Framer } from './framer.js';
import { Category, decodeHeader, encodeMessage, HEADER_SIZE, opcodeHex, ReturnCode } from './message.js';

export type ClientErrorKind = 'timeout' | 'closed' | 'protocol';

/** Trouble with the channel itself, as opposed to a command's return code (FmError). */
export class FmClientError extends Error implements CodedError {
  override readonly name = 'FmClientError';
  readonly errorCode = 'CXLMHD_ERR_FM_CHANNEL';
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What the client needs of its byte stream: a Duplex in Node, and what the
 * guest FM client (src/cli/fm-guest.ts, on QuickJS) builds over a file descriptor.
 */
export type FmChannel = Pick<Duplex, 'on' | 'off' | 'write' | 'destroy'>;

export interface ClientOptions {
  /** Per request; 0 waits forever. */
  timeoutMs?: number;
  /** A response no request is waiting for (late after a timeout, or garbage). */
  onStray?: (frame: Uint8Array) => void;
}

export interface RawResponse {
  returnCode: number;
  vendorStatus: number;
  background: boolean;
  payload: Uint8Array;
}

export interface ExtentInput {
  startDpa: number;
  len: number;
  tag?: string;
  sharedSeq?: number;
}

export interface AddOptions {
  host: number;
  region?: number;
  /** Prescriptive unless told: the only policy QEMU implements. */
  selectionPolicy?: SelectionPolicy;
  extents?: ExtentInput[];
  /** Defaults to the sum of the extents' lengths. */
  length?: number;
  tag?: string;
}

export interface ReleaseOptions {
  host: number;
  region?: number;
  removalPolicy?: RemovalPolicy;
  forced?: boolean;
  extents?: ExtentInput[];
  length?: number;
  tag?: string;
}

interface Pending {
  opcode: number;
  resolve: (r: RawResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const TAGS = 256;
const U32_MAX = 0xffff_ffff;

function toExtents(list: ExtentInput[] | undefined): Extent[] {
  return (list ?? []).map((e) => ({ startDpa: e.startDpa, len: e.len, tag: e.tag ?? ZERO_TAG, sharedSeq: e.sharedSeq ?? 0 }));
}

export class FmClient {
  private readonly framer = new Framer({ expect: Category.Response });
  private readonly pending = new Map<number, Pending>();
  private nextTag = 0;
  private readonly tagWaiters: { go: () => void; fail: (e: Error) => void }[] = [];
  private closedBy: FmClientError | null = null;
  private readonly timeoutMs: number;

  constructor(
    readonly stream: FmChannel,
    private readonly opts: ClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  identify(): Promise<IdentifyResponse> {
    return this.call('identify', {});
  }

  mhdInfo(opts: { startLd?: number; limit?: number } = {}): Promise<MhdInfoResponse> {
    return this.call('mhdInfo', { startLd: opts.startLd ?? 0, ldMapListLimit: opts.limit ?? 255 });
  }

  headInfo(opts: { start?: number; count?: number } = {}): Promise<HeadInfoResponse> {
    return this.call('headInfo', { startHead: opts.start ?? 0, numHeads: opts.count ?? 255 });
  }

  dcdInfo(): Promise<DcdInfoResponse> {
    return this.call('dcdInfo', {});
  }

  regionConfig(host: number, opts: { start?: number; count?: number } = {}): Promise<RegionConfigResponse> {
    return this.call('hostRegionConfig', { hostId: host, startRegion: opts.start ?? 0, regionCount: opts.count ?? 8 });
  }

  /** One page of the host's extents; the server returns as many as fit unless `count` says fewer. */
  extents(host: number, opts: { start?: number; count?: number } = {}): Promise<ExtentListResponse> {
    return this.call('extentList', { hostId: host, startIndex: opts.start ?? 0, extentCount: opts.count ?? U32_MAX });
  }

  /** Every extent, paging as needed; starts over if the list changes under it. */
  async allExtents(host: number, attempts = 8): Promise<{ generation: number; extents: Extent[] }> {
    const r = await pageAll(
      async (start) => {
        const p = await this.extents(host, { start });
        return { generation: p.generation, total: p.totalExtents, items: p.extents };
      },
      `the extent list of host ${host}`,
      attempts,
    );
    return { generation: r.generation, extents: r.items };
  }

  /** 5608h, one page. */
  tags(opts: { start?: number; count?: number } = {}): Promise<TagListResponse> {
    return this.call('listTags', { startIndex: opts.start ?? 0, maxTags: opts.count ?? U32_MAX });
  }

  /** Every tag (5608h), paging as needed; starts over if the list changes under it. */
  async allTags(attempts = 8): Promise<{ generation: number; tags: TagInfo[] }> {
    const r = await pageAll(
      async (start) => {
        const p = await this.tags({ start });
        return { generation: p.generation, total: p.totalTags, items: p.tags };
      },
      'the tag list',
      attempts,
    );
    return { generation: r.generation, tags: r.items };
  }

  async add(o: AddOptions): Promise<void> {
    const extents = toExtents(o.extents);
    const req: AddRequest = {
      hostId: o.host,
      selectionPolicy: o.selectionPolicy ?? SelectionPolicy.Prescriptive,
      region: o.region ?? 0,
      length: o.length ?? extents.reduce((sum, e) => sum + e.len, 0),
      tag: o.tag ?? ZERO_TAG,
      extents,
    };
    await this.call('initiateAdd', req);
  }

  async release(o: ReleaseOptions): Promise<void> {
    const extents = toExtents(o.extents);
    await this.call('initiateRelease', {
      hostId: o.host,
      removalPolicy: o.removalPolicy ?? RemovalPolicy.Prescriptive,
      forced: o.forced ?? false,
      region: o.region ?? 0,
      length: o.length ?? extents.reduce((sum, e) => sum + e.len, 0),
      tag: o.tag ?? ZERO_TAG,
      extents,
    });
  }

  /** A command by name: encodes, sends, raises FmError for a non-success return code, decodes. */
  async call<K extends CommandName>(name: K, req: RequestOf<K>): Promise<ResponseOf<K>> {
    const spec = COMMANDS[name];
    const payload = spec.request.encode(req);
    const rsp = await this.send(spec.opcode, payload);
    if (rsp.returnCode !== ReturnCode.Success) {
      throw new FmError(rsp.returnCode, undefined, { opcode: spec.opcode, vendorStatus: rsp.vendorStatus });
    }
    try {
      return spec.response.decode(rsp.payload);
    } catch (e) {
      throw new FmClientError('protocol', `${spec.name} response does not parse: ${(e as Error).message}`);
    }
  }

  /** One raw request; resolves with whatever return code comes back. */
  async send(opcode: number, payload: Uint8Array = new Uint8Array(0)): Promise<RawResponse> {
    let tag = this.allocateTag();
    while (tag === undefined) {
      if (this.closedBy) throw this.closedBy;
      await new Promise<void>((go, fail) => this.tagWaiters.push({ go, fail }));
      tag = this.allocateTag();
    }
    if (this.closedBy) throw this.closedBy;
    const t = tag;
    const bytes = encodeMessage({ category: Category.Request, tag: t, opcode, payload });
    return new Promise<RawResponse>((resolve, reject) => {
      const p: Pending = { opcode, resolve, reject, timer: undefined };
      if (this.timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.settle(t);
          reject(new FmClientError('timeout', `no response to ${opcodeHex(opcode)} (tag ${t}) within ${this.timeoutMs} ms`));
        }, this.timeoutMs);
      }
      this.pending.set(t, p);
      this.stream.write(bytes);
    });
  }

  /** Fails whatever is waiting and closes the stream. */
  close(): void {
    this.shutdown(new FmClientError('closed', 'the client was closed'));
    this.stream.destroy();
  }

  /** Frees a tag and hands it to a request waiting for one. */
  private settle(tag: number): void {
    this.pending.delete(tag);
    this.tagWaiters.shift()?.go();
  }

  private allocateTag(): number | undefined {
    for (let i = 0; i < TAGS; i++) {
      const tag = (this.nextTag + i) % TAGS;
      if (!this.pending.has(tag)) {
        this.nextTag = (tag + 1) % TAGS;
        return tag;
      }
    }
    return undefined;
  }

  private readonly onData = (chunk: Uint8Array) => {
    for (const item of this.framer.push(chunk)) {
      if (item instanceof FrameError) {
        // A request or an impossible length from the server: nothing after it can be trusted.
        this.failAll(new FmClientError('protocol', `the server sent an unreadable message: ${item.message}`));
        continue;
      }
      const h = decodeHeader(item);
      const p = this.pending.get(h.tag);
      if (!p || p.opcode !== h.opcode) {
        this.opts.onStray?.(item);
        continue;
      }
      clearTimeout(p.timer);
      this.settle(h.tag);
      p.resolve({ returnCode: h.returnCode, vendorStatus: h.vendorStatus, background: h.background, payload: item.subarray(HEADER_SIZE) });
    }
  };

  private readonly onEnd = () => {
    this.shutdown(new FmClientError('closed', 'the FM-API channel closed'));
  };

  private readonly onError = (e: Error) => {
    this.shutdown(new FmClientError('closed', `the FM-API channel failed: ${e.message}`));
  };

  private shutdown(reason: FmClientError): void {
    if (this.closedBy) return;
    this.closedBy = reason;
    this.stream.off('data', this.onData);
    this.failAll(reason);
  }

  private failAll(reason: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    this.pending.clear();
    for (const w of this.tagWaiters.splice(0)) w.fail(reason);
  }
}

/** Pages through a generation-numbered list until it is whole, starting over when the generation moves. */
async function pageAll<T>(
  fetch: (start: number) => Promise<{ generation: number; total: number; items: T[] }>,
  what: string,
  attempts: number,
): Promise<{ generation: number; items: T[] }> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const first = await fetch(0);
    const items = [...first.items];
    let stale = false;
    while (items.length < first.total) {
      const page = await fetch(items.length);
      if (page.generation !== first.generation || page.total !== first.total) {
        stale = true;
        break;
      }
      if (page.items.length === 0) throw new FmClientError('protocol', `${what} stopped at ${items.length} of ${first.total}`);
      items.push(...page.items);
    }
    if (!stale) return { generation: first.generation, items };
  }
  throw new FmClientError('protocol', `${what} kept changing over ${attempts} attempts`);
}
