// Seeded fuzzing of the server: random and mutated frames into handle(), and
// random chunks into serveChannel. Nothing may throw out, every message gets
// exactly one well-formed answer, and a shadow framer predicts which ones.
// CXL_MHD_FUZZ_FRAMES sets the total frame count (default 55 000, split 7:4
// between the two tests); `make soak` raises it to a million or more.
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type AddRequest, COMMAND_BY_OPCODE, COMMANDS, type CommandName, Opcode, ZERO_TAG } from '../../src/fmapi/commands.js';
import { FmError } from '../../src/fmapi/errors.js';
import { FrameError, Framer } from '../../src/fmapi/framer.js';
import { formatUuid } from '../../src/fmapi/layout.js';
import { Category, decodeHeader, encodeMessage, HEADER_SIZE, isReturnCode, ReturnCode } from '../../src/fmapi/message.js';
import { type ChannelEvent, FmApiServer, serveChannel } from '../../src/fmapi/server.js';
import { FakeBackend } from '../helpers/fmapi-backend.js';
import { prng } from '../helpers/fmapi-util.js';

type Rng = ReturnType<typeof prng>;

const DEFAULT_FRAMES = 55_000;

/** The total frame count: CXL_MHD_FUZZ_FRAMES, a whole number of at least 1 000, or the default. */
function totalFrames(env = process.env.CXL_MHD_FUZZ_FRAMES): number {
  if (env === undefined || env.trim() === '') return DEFAULT_FRAMES;
  const n = Number(env.trim().replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 1_000) throw new Error(`CXL_MHD_FUZZ_FRAMES="${env}" must be a whole number of at least 1000`);
  return n;
}

const TOTAL_FRAMES = totalFrames();
const HANDLE_FRAMES = Math.round((TOTAL_FRAMES * 7) / 11);
const CHANNEL_FRAMES = TOTAL_FRAMES - HANDLE_FRAMES;
/** Outcome floors are tuned for the default counts; only a smaller run lowers them, in proportion. */
const floorScale = Math.min(1, TOTAL_FRAMES / DEFAULT_FRAMES);
/** A hang guard, not a speed check: a million frames take about a minute. */
const timeoutFor = (frames: number) => 120_000 + frames;
/**
 * FakeBackend with bounded memory, so a soak run of a million frames tests the
 * server, not the fake: a host's extent list is dropped before it nears the
 * 512 the fake reports as supported (past that its extentsAvailable would go
 * negative and fail to encode), and the call log is trimmed.
 */
class BoundedBackend extends FakeBackend {
  override async initiateAdd(req: AddRequest): Promise<void> {
    await super.initiateAdd(req);
    if ((this.extents.get(req.hostId)?.length ?? 0) > 256) this.extents.delete(req.hostId);
    if (this.calls.length > 10_000) this.calls.length = 0;
  }
}

const fmt = (n: number) => n.toLocaleString('en-US').replace(/,/g, ' ');
const OPCODES = Object.values(COMMANDS).map((c) => c.opcode);

function randomExtents(r: Rng) {
  return Array.from({ length: r.int(4) }, () => ({
    startDpa: r.int(2 ** 40),
    len: (1 + r.int(8)) * 2 ** 21,
    tag: r.next() < 0.5 ? ZERO_TAG : formatUuid(r.bytes(16)),
    sharedSeq: r.int(0x10000),
  }));
}

/** The tag some adds carry, so references to it can succeed (5606h–5608h). */
const FUZZ_TAG = '5eed0000-0000-4000-8000-000000000001';

/** A valid request of a random command, as a whole message. */
function validRequest(r: Rng): Uint8Array {
  const name = r.pick(Object.keys(COMMANDS) as CommandName[]);
  const values: Record<CommandName, () => unknown> = {
    identify: () => ({}),
    dcdInfo: () => ({}),
    mhdInfo: () => ({ startLd: r.int(256), ldMapListLimit: r.int(256) }),
    headInfo: () => ({ startHead: r.int(256), numHeads: r.int(256) }),
    hostRegionConfig: () => ({ hostId: r.int(8), regionCount: r.int(10), startRegion: r.int(10) }),
    extentList: () => ({ hostId: r.int(8), extentCount: r.int(2 ** 32), startIndex: r.int(50) }),
    initiateAdd: () => ({
      hostId: r.int(8),
      selectionPolicy: r.int(4),
      region: r.int(8),
      length: r.int(2 ** 34),
      tag: r.next() < 0.2 ? FUZZ_TAG : ZERO_TAG,
      extents: randomExtents(r),
    }),
    setRegionConfig: () => ({ region: r.int(8), blockSize: r.next() < 0.5 ? 2 ** 21 : r.int(2 ** 40), sanitizeOnRelease: r.next() < 0.5 }),
    addReference: () => ({ tag: r.next() < 0.5 ? FUZZ_TAG : formatUuid(r.bytes(16)) }),
    removeReference: () => ({ tag: r.next() < 0.5 ? FUZZ_TAG : formatUuid(r.bytes(16)) }),
    listTags: () => ({ startIndex: r.int(4), maxTags: r.int(2 ** 32) }),
    initiateRelease: () => ({
      hostId: r.int(8),
      removalPolicy: r.int(2),
      forced: r.next() < 0.5,
      region: r.int(8),
      length: r.int(2 ** 34),
      tag: formatUuid(r.bytes(16)),
      extents: randomExtents(r),
    }),
  };
  const spec = COMMANDS[name] as { opcode: number; request: { encode(v: unknown): Uint8Array } };
  return encodeMessage({ category: Category.Request, tag: r.int(256), opcode: spec.opcode, payload: spec.request.encode(values[name]()) });
}

function mutate(r: Rng, m: Uint8Array): Uint8Array {
  let out = m.slice();
  for (let k = 1 + r.int(2); k > 0; k--) {
    switch (r.int(7)) {
      case 0:
        for (let i = 1 + r.int(4); i > 0 && out.length > 0; i--) out[r.int(out.length)] = r.int(256);
        break;
      case 1:
        out = out.subarray(0, r.int(out.length + 1));
        break;
      case 2:
        out = new Uint8Array(Buffer.concat([out, r.bytes(1 + r.int(50))]));
        break;
      case 3:
        if (out.length >= 8) out.set(r.bytes(3), 5);
        break;
      case 4:
        if (out.length >= 1) out[0] = r.int(256);
        break;
      case 5:
        if (out.length >= 5) {
          const op = r.next() < 0.7 ? r.pick(OPCODES) : r.int(0x10000);
          out[3] = op & 0xff;
          out[4] = op >> 8;
        }
        break;
      case 6:
        if (out.length >= 32) out.set(r.bytes(4), 28);
        break;
    }
  }
  return out;
}

function randomFrame(r: Rng): Uint8Array {
  const x = r.next();
  if (x < 0.2) return r.bytes(r.int(80));
  if (x < 0.4) return validRequest(r);
  return mutate(r, validRequest(r));
}

/** What handle() must answer, worked out independently of the server. */
function expectedCode(frame: Uint8Array, maxPayload: number): number {
  if (frame.length < HEADER_SIZE) return ReturnCode.InvalidPayloadLength;
  const h = decodeHeader(frame);
  if (h.category !== Category.Request) return ReturnCode.InvalidInput;
  if (h.payloadLength !== frame.length - HEADER_SIZE || h.payloadLength > maxPayload) return ReturnCode.InvalidPayloadLength;
  const entry = COMMAND_BY_OPCODE.get(h.opcode);
  if (!entry) return ReturnCode.Unsupported;
  try {
    entry.spec.request.decode(frame.subarray(HEADER_SIZE));
  } catch (e) {
    if (e instanceof FmError) return e.code;
    throw e;
  }
  return ReturnCode.Success;
}

function checkResponse(rsp: Uint8Array, tag: number, opcode: number): number {
  expect(rsp.length).toBeGreaterThanOrEqual(HEADER_SIZE);
  const h = decodeHeader(rsp);
  expect(h.category).toBe(Category.Response);
  expect(h.tag).toBe(tag);
  expect(h.opcode).toBe(opcode);
  expect(h.payloadLength).toBe(rsp.length - HEADER_SIZE);
  expect(isReturnCode(h.returnCode)).toBe(true);
  if (h.returnCode === ReturnCode.Success) {
    // A success answer must parse with its command's response codec.
    COMMAND_BY_OPCODE.get(opcode)!.spec.response.decode(rsp.subarray(HEADER_SIZE));
  } else {
    expect(h.payloadLength).toBe(0);
  }
  return h.returnCode;
}

/** A stream end whose input the test pushes chunk by chunk, boundaries kept. */
class Feed extends Duplex {
  constructor(private readonly out: (b: Buffer) => void) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.out(chunk);
    cb();
  }
}

describe('fuzz', () => {
  it(
    `handle(): ${fmt(HANDLE_FRAMES)} random and mutated frames, each answered as predicted (seed 0x5eed)`,
    async () => {
      const r = prng(0x5eed);
      const internal: unknown[] = [];
      const server = new FmApiServer(new BoundedBackend(), { onInternalError: (e) => internal.push(e) });
      const tally = new Map<number, number>();
      for (let i = 0; i < HANDLE_FRAMES; i++) {
        const frame = randomFrame(r);
        const head = new Uint8Array(HEADER_SIZE);
        head.set(frame.subarray(0, HEADER_SIZE));
        const rsp = await server.handle(frame);
        const code = checkResponse(rsp, head[1]!, (head[4]! << 8) | head[3]!);
        expect(code, `frame ${i}: ${Buffer.from(frame).toString('hex')}`).toBe(expectedCode(frame, server.maxPayload));
        tally.set(code, (tally.get(code) ?? 0) + 1);
      }
      expect(internal).toEqual([]);
      // The mix reached every interesting outcome.
      for (const c of [ReturnCode.Success, ReturnCode.InvalidInput, ReturnCode.Unsupported, ReturnCode.InvalidPayloadLength]) {
        expect(tally.get(c) ?? 0, `return code ${c}`).toBeGreaterThan(Math.floor(500 * floorScale));
      }
    },
    timeoutFor(HANDLE_FRAMES),
  );

  it(
    `serveChannel: ${fmt(CHANNEL_FRAMES)} frames in random chunks, every message or refused header answered in order (seed 0xfeed)`,
    async () => {
      const r = prng(0xfeed);
      const server = new FmApiServer(new BoundedBackend(), { maxMessageSizeLog2: 10 });
      const shadow = new Framer({ maxPayload: server.maxPayload, expect: Category.Request });
      const rx = new Framer({ expect: Category.Response });
      const answers: Uint8Array[] = [];
      const feed = new Feed((b) => {
        for (const m of rx.push(b)) {
          if (m instanceof FrameError) throw m;
          answers.push(m);
        }
      });
      const events: ChannelEvent[] = [];
      const channel = serveChannel(feed, server, {
        isBound: () => r.next() < 0.9,
        staleMs: 0,
        maxQueued: 8,
        onEvent: (e) => events.push(e),
      });

      const expected: { tag: number; opcode: number; kind: 'frame' | 'refused-header' }[] = [];
      let frames = 0;
      while (frames < CHANNEL_FRAMES) {
        const parts: Uint8Array[] = [];
        if (r.next() < 0.05) {
          parts.push(r.bytes(1 + r.int(300)));
        } else {
          for (let k = 1 + r.int(6); k > 0; k--, frames++) parts.push(r.next() < 0.6 ? validRequest(r) : randomFrame(r));
        }
        const stream = Buffer.concat(parts);
        // Split the bytes at random points: chunk boundaries are where a reset resumes.
        for (let at = 0; at < stream.length; ) {
          const n = r.next() < 0.5 ? stream.length - at : 1 + r.int(stream.length - at);
          const chunk = stream.subarray(at, at + n);
          at += n;
          for (const item of shadow.push(chunk)) {
            const h = item instanceof FrameError ? item.header : decodeHeader(item);
            expected.push({ tag: h.tag, opcode: h.opcode, kind: item instanceof FrameError ? 'refused-header' : 'frame' });
          }
          feed.push(Buffer.from(chunk));
        }
        if (expected.length - answers.length > 256) await new Promise((res) => setImmediate(res));
      }
      // Recovery: refused headers until one resets the framer, then a request must be read fresh.
      const send = (chunk: Uint8Array) => {
        let reset = false;
        for (const item of shadow.push(chunk)) {
          const h = item instanceof FrameError ? item.header : decodeHeader(item);
          expected.push({ tag: h.tag, opcode: h.opcode, kind: item instanceof FrameError ? 'refused-header' : 'frame' });
          reset ||= item instanceof FrameError;
        }
        feed.push(Buffer.from(chunk));
        return reset;
      };
      let tries = 0;
      while (!send(encodeMessage({ category: Category.Response, tag: 1, opcode: 1 }))) expect(++tries).toBeLessThan(100);
      send(encodeMessage({ category: Category.Request, tag: 2, opcode: Opcode.GetDcdInfo }));
      expect(expected.at(-1)).toEqual({ tag: 2, opcode: Opcode.GetDcdInfo, kind: 'frame' });

      const deadline = Date.now() + 15_000;
      while (answers.length < expected.length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      expect(answers.length).toBe(expected.length);
      answers.forEach((a, i) => {
        const code = checkResponse(a, expected[i]!.tag, expected[i]!.opcode);
        if (expected[i]!.kind === 'refused-header') expect([ReturnCode.InvalidInput, ReturnCode.InvalidPayloadLength]).toContain(code);
      });
      const count = (t: ChannelEvent['type']) => events.filter((e) => e.type === t).length;
      expect(count('reset')).toBe(expected.filter((e) => e.kind === 'refused-header').length);
      expect(count('answered') + count('refused')).toBe(expected.filter((e) => e.kind === 'frame').length);
      expect(count('refused')).toBeGreaterThan(Math.floor(100 * floorScale));
      expect(count('reset')).toBeGreaterThan(Math.floor(100 * floorScale));
      expect(count('error') + count('closed')).toBe(0);
      channel.close();
      await channel.done;
    },
    timeoutFor(CHANNEL_FRAMES),
  );
});
