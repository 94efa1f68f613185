// FmApiServer and serveChannel against a scripted backend: return-code
// mapping, tag echo, paging limits, in-order answers, resets and the bound
// guard.
import { describe, expect, it } from 'vitest';
import { COMMANDS, Opcode, SelectionPolicy, ZERO_TAG } from '../../src/fmapi/commands.js';
import { FmError } from '../../src/fmapi/errors.js';
import { Category, decodeHeader, encodeMessage, HEADER_SIZE, ReturnCode } from '../../src/fmapi/message.js';
import { type ChannelEvent, FmApiServer, serveChannel } from '../../src/fmapi/server.js';
import { FakeBackend } from '../helpers/fmapi-backend.js';
import { collect, duplexPair, hex, toHex } from '../helpers/fmapi-util.js';

const request = (tag: number, opcode: number, payload?: Uint8Array) => encodeMessage({ category: Category.Request, tag, opcode, payload });

async function ask(server: FmApiServer, tag: number, opcode: number, payload?: Uint8Array) {
  const rsp = await server.handle(request(tag, opcode, payload));
  const h = decodeHeader(rsp);
  expect(h.category).toBe(Category.Response);
  expect(h.tag).toBe(tag);
  expect(h.opcode).toBe(opcode);
  expect(h.payloadLength).toBe(rsp.length - HEADER_SIZE);
  return { h, payload: rsp.subarray(HEADER_SIZE) };
}

describe('FmApiServer.handle', () => {
  it('answers Identify with the golden response, filling in its own message size', async () => {
    const server = new FmApiServer(new FakeBackend(), { maxMessageSizeLog2: 12 });
    const rsp = await server.handle(hex('00 7e 00 01 00 00 00 00 00 00 00 00'));
    expect(toHex(rsp)).toBe(
      toHex(
        hex(`
          01 7e 00 01 00   # response, tag 7e, opcode 0001h
          12 00 00         # 18-byte payload
          00 00 00 00      # success, vendor status 0
          36 1b 93 0d 00 00 00 00
          01 00 00 00 00 00 ed fe   # serial feed000000000001h
          0c               # 2^12-byte messages
          03               # type 3
        `),
      ),
    );
  });

  it('answers every command, echoing tag and opcode', async () => {
    const backend = new FakeBackend();
    const server = new FmApiServer(backend);
    const add = COMMANDS.initiateAdd.request.encode({
      hostId: 1,
      selectionPolicy: SelectionPolicy.Prescriptive,
      region: 0,
      length: 2 ** 21,
      tag: ZERO_TAG,
      extents: [{ startDpa: 2 ** 32, len: 2 ** 21, tag: ZERO_TAG, sharedSeq: 0 }],
    });
    const cases: [number, Uint8Array][] = [
      [Opcode.Identify, hex('')],
      [Opcode.GetMhdInfo, COMMANDS.mhdInfo.request.encode({ startLd: 0, ldMapListLimit: 8 })],
      [Opcode.GetHeadInfo, COMMANDS.headInfo.request.encode({ startHead: 1, numHeads: 2 })],
      [Opcode.GetDcdInfo, hex('')],
      [Opcode.GetHostDcRegionConfig, COMMANDS.hostRegionConfig.request.encode({ hostId: 1, regionCount: 8, startRegion: 0 })],
      [Opcode.InitiateDcAdd, add],
      [Opcode.GetDcRegionExtentLists, COMMANDS.extentList.request.encode({ hostId: 1, extentCount: 10, startIndex: 0 })],
      [
        Opcode.InitiateDcRelease,
        COMMANDS.initiateRelease.request.encode({ ...COMMANDS.initiateAdd.request.decode(add), removalPolicy: 1, forced: false }),
      ],
    ];
    let tag = 200;
    for (const [opcode, payload] of cases) {
      const { h, payload: out } = await ask(server, tag++, opcode, payload);
      expect(h.returnCode, `opcode ${opcode.toString(16)}`).toBe(ReturnCode.Success);
      if (opcode === Opcode.GetHeadInfo) expect(COMMANDS.headInfo.response.decode(out).heads.map((x) => x.port)).toEqual([1, 2]);
      if (opcode === Opcode.GetDcRegionExtentLists) expect(COMMANDS.extentList.response.decode(out).extents).toHaveLength(1);
      if (opcode === Opcode.InitiateDcAdd || opcode === Opcode.InitiateDcRelease) expect(out.length).toBe(0);
    }
    expect(backend.calls.map((c) => c.method)).toEqual([
      'identify',
      'mhdInfo',
      'headInfo',
      'dcdInfo',
      'hostRegionConfig',
      'initiateAdd',
      'extentList',
      'initiateRelease',
    ]);
  });

  it('answers Unsupported for opcodes it does not serve and methods the backend lacks', async () => {
    const server = new FmApiServer({ dcdInfo: new FakeBackend().dcdInfo });
    for (const opcode of [0x0000, 0x0002, 0x4100, 0x5100, 0x5602, 0x5606, 0xffff]) {
      expect((await ask(server, 1, opcode)).h.returnCode).toBe(ReturnCode.Unsupported);
    }
    expect((await ask(server, 2, Opcode.Identify)).h.returnCode).toBe(ReturnCode.Unsupported);
  });

  it('answers Invalid Payload Length for wrong sizes, before asking the backend', async () => {
    const backend = new FakeBackend();
    const server = new FmApiServer(backend);
    expect((await ask(server, 1, Opcode.Identify, hex('00'))).h.returnCode).toBe(ReturnCode.InvalidPayloadLength);
    expect((await ask(server, 2, Opcode.GetMhdInfo, hex('00'))).h.returnCode).toBe(ReturnCode.InvalidPayloadLength);
    expect((await ask(server, 3, Opcode.GetMhdInfo, hex('00 01 02'))).h.returnCode).toBe(ReturnCode.InvalidPayloadLength);
    expect((await ask(server, 4, Opcode.GetHostDcRegionConfig, hex('00 00 01'))).h.returnCode).toBe(ReturnCode.InvalidPayloadLength);
    expect((await ask(server, 5, Opcode.InitiateDcAdd, new Uint8Array(33))).h.returnCode).toBe(ReturnCode.InvalidPayloadLength);
    expect(backend.calls).toEqual([]);
  });

  it('answers Invalid Payload Length when the header and the frame disagree or the frame is too big', async () => {
    const server = new FmApiServer(new FakeBackend(), { maxMessageSizeLog2: 8 });
    const short = request(3, Opcode.GetMhdInfo, hex('00 04')).subarray(0, 13);
    expect(decodeHeader(await server.handle(short)).returnCode).toBe(ReturnCode.InvalidPayloadLength);
    const big = request(4, Opcode.InitiateDcAdd, new Uint8Array(245));
    expect(decodeHeader(await server.handle(big)).returnCode).toBe(ReturnCode.InvalidPayloadLength);
    // Less than a header: answered with what could be read, zeros for the rest.
    const h = decodeHeader(await server.handle(hex('00 33 00 01')));
    expect(h).toMatchObject({ tag: 0x33, opcode: 0x0001, returnCode: ReturnCode.InvalidPayloadLength, category: Category.Response });
    expect(decodeHeader(await server.handle(new Uint8Array(0))).returnCode).toBe(ReturnCode.InvalidPayloadLength);
  });

  it('answers Invalid Input for a message that is not a request', async () => {
    const server = new FmApiServer(new FakeBackend());
    const m = encodeMessage({ category: Category.Response, tag: 5, opcode: 1 });
    expect(decodeHeader(await server.handle(m))).toMatchObject({
      tag: 5,
      returnCode: ReturnCode.InvalidInput,
      category: Category.Response,
    });
  });

  it('answers Invalid Input for bad fields', async () => {
    const backend = new FakeBackend();
    const server = new FmApiServer(backend);
    const add = hex(`01 00 09 00 ${'00 '.repeat(8)} ${'00 '.repeat(16)} 00 00 00 00`);
    expect((await ask(server, 1, Opcode.InitiateDcAdd, add)).h.returnCode).toBe(ReturnCode.InvalidInput);
    add[2] = 2;
    add[3] = 8;
    expect((await ask(server, 2, Opcode.InitiateDcAdd, add)).h.returnCode).toBe(ReturnCode.InvalidInput);
    expect(backend.calls).toEqual([]);
  });

  it('answers with the FmError a backend throws, vendor status included', async () => {
    const backend = new FakeBackend();
    const server = new FmApiServer(backend);
    backend.failNext.set('dcdInfo', new FmError(ReturnCode.ResourcesExhausted, 'no room', { vendorStatus: 0x42 }));
    const { h } = await ask(server, 9, Opcode.GetDcdInfo);
    expect(h.returnCode).toBe(ReturnCode.ResourcesExhausted);
    expect(h.vendorStatus).toBe(0x42);
    backend.failNext.set('dcdInfo', new FmError(ReturnCode.Busy));
    expect((await ask(server, 10, Opcode.GetDcdInfo)).h.returnCode).toBe(ReturnCode.Busy);
  });

  it('answers Internal Error for anything else going wrong, and reports it', async () => {
    const backend = new FakeBackend();
    const seen: unknown[] = [];
    const server = new FmApiServer(backend, { onInternalError: (e) => seen.push(e) });
    backend.failNext.set('identify', new TypeError('boom'));
    expect((await ask(server, 1, Opcode.Identify)).h.returnCode).toBe(ReturnCode.InternalError);
    // A success code cannot be thrown: there would be no payload to go with it.
    backend.failNext.set('identify', new FmError(ReturnCode.Success));
    expect((await ask(server, 2, Opcode.Identify)).h.returnCode).toBe(ReturnCode.InternalError);
    backend.failNext.set('identify', 'a string');
    expect((await ask(server, 3, Opcode.Identify)).h.returnCode).toBe(ReturnCode.InternalError);
    // A response the codec refuses.
    const bad = new FmApiServer({ dcdInfo: () => ({ ...dcdShape(), totalCapacityBytes: 3 }) }, { onInternalError: (e) => seen.push(e) });
    expect((await ask(bad, 4, Opcode.GetDcdInfo)).h.returnCode).toBe(ReturnCode.InternalError);
    // A logger that throws changes nothing.
    const loud = new FmApiServer(
      {
        identify: () => {
          throw new Error('x');
        },
      },
      {
        onInternalError: () => {
          throw new Error('logger down');
        },
      },
    );
    expect((await ask(loud, 5, Opcode.Identify)).h.returnCode).toBe(ReturnCode.InternalError);
    expect(seen).toHaveLength(4);
  });

  it('clamps list counts to one response and refuses backends that return more', async () => {
    const backend = new FakeBackend();
    backend.extents.set(
      0,
      Array.from({ length: 20 }, (_, i) => ({ startDpa: 2 ** 32 + i * 2 ** 21, len: 2 ** 21, tag: ZERO_TAG, sharedSeq: 0 })),
    );
    const server = new FmApiServer(backend, { maxMessageSizeLog2: 8 }); // 244-byte payloads: 5 extents
    const { h, payload } = await ask(
      server,
      1,
      Opcode.GetDcRegionExtentLists,
      COMMANDS.extentList.request.encode({ hostId: 0, extentCount: 0xffff_ffff, startIndex: 0 }),
    );
    expect(h.returnCode).toBe(ReturnCode.Success);
    expect(backend.calls.at(-1)?.req).toMatchObject({ extentCount: 5 });
    expect(COMMANDS.extentList.response.decode(payload)).toMatchObject({ totalExtents: 20, extents: { length: 5 } });

    const greedy = new FmApiServer({ headInfo: async (req) => ({ heads: (await backend.headInfo({ ...req, numHeads: 4 })).heads }) });
    const r = await ask(greedy, 2, Opcode.GetHeadInfo, COMMANDS.headInfo.request.encode({ startHead: 0, numHeads: 2 }));
    expect(r.h.returnCode).toBe(ReturnCode.InternalError);
  });
});

function dcdShape() {
  return {
    numHosts: 1,
    addPolicyMask: 4,
    removalPolicyMask: 2,
    sanitizeMask: 0,
    totalCapacityBytes: 2 ** 28,
    regionBlockSizeMasks: [1n << 21n],
  };
}

describe('serveChannel', () => {
  function setup(backend = new FakeBackend(), opts: Parameters<typeof serveChannel>[2] = {}, serverOpts = {}) {
    const [near, far] = duplexPair();
    const events: ChannelEvent[] = [];
    const server = new FmApiServer(backend, serverOpts);
    const channel = serveChannel(far, server, { ...opts, onEvent: (e) => events.push(e) });
    const rx = collect(near);
    return { near, far, rx, events, channel, backend, server };
  }

  it('answers requests strictly in order, one at a time', async () => {
    const backend = new FakeBackend();
    let active = 0;
    let most = 0;
    const slow: typeof backend.identify = async () => {
      active++;
      most = Math.max(most, active);
      await new Promise((r) => setTimeout(r, (1 + Math.random() * 5) | 0));
      active--;
      return backend.identify();
    };
    const { near, rx } = setup({ ...backend, identify: slow, dcdInfo: () => backend.dcdInfo() } as never);
    const msgs = Array.from({ length: 30 }, (_, i) => request(i, i % 2 ? Opcode.Identify : Opcode.GetDcdInfo));
    near.write(Buffer.concat(msgs));
    const frames = await rx.until(30);
    expect(frames.map((f) => decodeHeader(f).tag)).toEqual(msgs.map((_, i) => i));
    expect(frames.every((f) => decodeHeader(f).returnCode === ReturnCode.Success)).toBe(true);
    expect(most).toBe(1);
  });

  it('reads on after pausing for a full queue', async () => {
    const backend = new FakeBackend();
    backend.delay.set('dcdInfo', 1);
    const { near, rx } = setup(backend, { maxQueued: 2 });
    for (let i = 0; i < 40; i++) near.write(request(i, Opcode.GetDcdInfo));
    expect((await rx.until(40)).map((f) => decodeHeader(f).tag)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('answers an oversize header with Invalid Payload Length, resets, and serves the next chunk', async () => {
    const { near, rx, events } = setup(new FakeBackend(), {}, { maxMessageSizeLog2: 8 });
    near.write(Buffer.concat([request(1, Opcode.GetDcdInfo), hex('00 02 00 04 56 f5 00 00 00 00 00 00'), new Uint8Array(100)]));
    await rx.until(2);
    near.write(request(3, Opcode.Identify));
    const frames = await rx.until(3);
    expect(frames.map((f) => [decodeHeader(f).tag, decodeHeader(f).returnCode])).toEqual([
      [1, ReturnCode.Success],
      [2, ReturnCode.InvalidPayloadLength],
      [3, ReturnCode.Success],
    ]);
    expect(decodeHeader(frames[1]!).opcode).toBe(0x5604);
    expect(events.find((e) => e.type === 'reset')).toEqual({
      type: 'reset',
      reason: 'oversize',
      tag: 2,
      opcode: 0x5604,
      payloadLength: 245,
      discarded: 112,
      message: expect.stringContaining('245'),
    });
  });

  it('answers a message that is not a request with Invalid Input and resets', async () => {
    const { near, rx, events } = setup();
    // A refused header takes the rest of its chunk with it: the next request comes separately.
    near.write(Buffer.concat([encodeMessage({ category: Category.Response, tag: 7, opcode: 0x5600 }), request(99, Opcode.Identify)]));
    await rx.until(1);
    near.write(request(8, Opcode.GetDcdInfo));
    const frames = await rx.until(2);
    expect(frames.map((f) => decodeHeader(f).returnCode)).toEqual([ReturnCode.InvalidInput, ReturnCode.Success]);
    expect(events.some((e) => e.type === 'reset' && e.reason === 'category' && e.tag === 7)).toBe(true);
  });

  it('drops a partial message that goes stale, answering it if its header is in', async () => {
    const { near, rx, events } = setup(new FakeBackend(), { staleMs: 30 });
    near.write(request(1, Opcode.GetMhdInfo, hex('00 04')).subarray(0, 13)); // header + 1 of 2 payload bytes
    await rx.until(1);
    near.write(hex('00 02 00')); // a partial header alone goes unanswered
    await new Promise((r) => setTimeout(r, 80));
    near.write(request(3, Opcode.GetMhdInfo, hex('00 04')));
    const frames = await rx.until(2);
    expect(frames.map((f) => [decodeHeader(f).tag, decodeHeader(f).returnCode])).toEqual([
      [1, ReturnCode.InvalidPayloadLength],
      [3, ReturnCode.Success],
    ]);
    expect(events.filter((e) => e.type === 'reset')).toEqual([
      expect.objectContaining({ reason: 'stale', discarded: 13, tag: 1, opcode: 0x5500, payloadLength: 2 }),
      expect.objectContaining({ reason: 'stale', discarded: 3 }),
    ]);
    expect(events.filter((e) => e.type === 'reset')[1]).not.toHaveProperty('tag');
  });

  it('refuses every message while the channel is not bound to the lease owner', async () => {
    let bound = false;
    const { near, rx, events, backend } = setup(new FakeBackend(), { isBound: () => bound });
    near.write(request(1, Opcode.GetDcdInfo));
    await rx.until(1);
    bound = true;
    near.write(request(2, Opcode.GetDcdInfo));
    await rx.until(2);
    bound = false;
    near.write(request(3, Opcode.Identify));
    const frames = await rx.until(3);
    expect(frames.map((f) => decodeHeader(f).returnCode)).toEqual([
      ReturnCode.UnsupportedMailbox,
      ReturnCode.Success,
      ReturnCode.UnsupportedMailbox,
    ]);
    expect(backend.calls.map((c) => c.method)).toEqual(['dcdInfo']);
    expect(events.filter((e) => e.type === 'refused')).toEqual([
      { type: 'refused', tag: 1, opcode: 0x5600, returnCode: ReturnCode.UnsupportedMailbox },
      { type: 'refused', tag: 3, opcode: 0x0001, returnCode: ReturnCode.UnsupportedMailbox },
    ]);
  });

  it('treats a guard that throws as unbound', async () => {
    const { near, rx, events } = setup(new FakeBackend(), {
      isBound: () => {
        throw new Error('shm gone');
      },
      refusalCode: ReturnCode.Busy,
    });
    near.write(request(1, Opcode.Identify));
    expect(decodeHeader((await rx.until(1))[0]!).returnCode).toBe(ReturnCode.Busy);
    expect(events.map((e) => e.type)).toEqual(['error', 'refused']);
  });

  it('reports answers and ends with the stream', async () => {
    const { near, rx, events, channel } = setup();
    near.write(request(1, Opcode.Identify));
    await rx.until(1);
    near.end();
    await channel.done;
    expect(events).toEqual([{ type: 'answered', tag: 1, opcode: 1, returnCode: 0 }, { type: 'closed' }]);
  });

  it('stops answering after close()', async () => {
    const backend = new FakeBackend();
    backend.delay.set('identify', 20);
    const { near, rx, channel } = setup(backend);
    near.write(Buffer.concat([request(1, Opcode.Identify), request(2, Opcode.Identify)]));
    await new Promise((r) => setTimeout(r, 5));
    channel.close();
    await channel.done;
    await new Promise((r) => setTimeout(r, 60));
    expect(rx.frames).toEqual([]);
    expect(backend.calls).toHaveLength(1);
  });
});
