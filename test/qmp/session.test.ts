// QmpSession against a fake QEMU: handshake, command/reply matching,
// timeouts, events, everything a broken peer can do, and fd passing.
// No test depends on how long anything takes; timeouts that must fire are
// short, answers that must not race them are sequenced explicitly.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import {
  QmpClosedError,
  QmpCommandError,
  QmpDisconnectedError,
  type QmpEvent,
  QmpFdPassingError,
  QmpProtocolError,
  QmpSession,
  type QmpSessionOptions,
  QmpTimeoutError,
  type SendFdsFn,
  versionAtLeast,
} from '../../src/qmp/index.js';
import { Deferred, FakeQemu, type FakeQemuOptions, type FakeReply, fail, NO_REPLY, ok, UnixListener } from '../helpers/fake-qemu.js';

const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch {
      // Keep cleaning up: one failure must not leak the rest.
    }
  }
});

/** A listening head socket with a fake QEMU dialled into it, as in production. */
async function connectViaSocket(fakeOpts: FakeQemuOptions = {}): Promise<{ fake: FakeQemu; socket: net.Socket }> {
  const dir = mkdtempSync(join(tmpdir(), 'cxl-mhd-qmp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const listener = await UnixListener.listen(join(dir, 'head0.sock'));
  cleanups.push(() => listener.close());
  const accepted = listener.accept();
  const fake = await FakeQemu.dial(listener.path, fakeOpts);
  cleanups.push(() => fake.close());
  const socket = await accepted;
  cleanups.push(() => socket.destroy());
  return { fake, socket };
}

/** A socketpair whose fake end reads with recvmsg and so receives descriptors. */
function connectViaPair(fakeOpts: FakeQemuOptions = {}): { fake: FakeQemu; socket: net.Socket } {
  const { fake, socket } = FakeQemu.pair(fakeOpts);
  cleanups.push(() => fake.close());
  cleanups.push(() => socket.destroy());
  return { fake, socket };
}

async function openSession(
  how: 'socket' | 'pair' = 'socket',
  fakeOpts: FakeQemuOptions = {},
  sessionOpts: QmpSessionOptions = {},
): Promise<{ session: QmpSession; fake: FakeQemu; socket: net.Socket }> {
  const { fake, socket } = how === 'socket' ? await connectViaSocket(fakeOpts) : connectViaPair(fakeOpts);
  const session = await QmpSession.open(socket, sessionOpts);
  cleanups.push(() => session.close());
  return { session, fake, socket };
}

/** Settles a promise into its error, failing if it resolves. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** Wraps an fd the test owns in a stream socket that closes it on cleanup. */
function ownSocket(fd: number): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: true });
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

function readBytes(socket: net.Socket, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.length >= n) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${got.length} of ${n} bytes`)));
  });
}

/** Both directions of a socketpair (one end possibly via QEMU's copy) carry bytes. */
async function expectConnected(a: net.Socket, b: net.Socket): Promise<void> {
  const fromB = readBytes(b, 4);
  a.write('ping');
  expect(await fromB).toBe('ping');
  const fromA = readBytes(a, 4);
  b.write('pong');
  expect(await fromA).toBe('pong');
}

/** An event line of exactly `bytes` bytes before its "\n" (its "\r" counts, as QEMU sends one). */
function eventLineOfLength(bytes: number): string {
  const empty = JSON.stringify({ event: 'BIG', data: { pad: '' } });
  const json = JSON.stringify({ event: 'BIG', data: { pad: 'x'.repeat(bytes - 1 - empty.length) } });
  expect(json.length + 1).toBe(bytes);
  return `${json}\r\n`;
}

describe('handshake', () => {
  it('sends nothing before the greeting, then qmp_capabilities first', async () => {
    const { fake, socket } = await connectViaSocket({ greeting: false });
    const opening = QmpSession.open(socket);
    // Give the session every chance to speak out of turn.
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(fake.received).toEqual([]);
    await fake.sendMessage({ QMP: { version: { qemu: { micro: 1, minor: 2, major: 10 }, package: ' v10.2.1 ' }, capabilities: ['oob'] } });
    const session = await opening;
    cleanups.push(() => session.close());
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities']);
    expect(fake.received[0]!.hasId).toBe(true);
    expect(fake.received[0]!.arguments).toBeUndefined();
    expect(session.version).toEqual({ major: 10, minor: 2, micro: 1, package: 'v10.2.1' });
    expect(session.greeting.capabilities).toEqual(['oob']);
    expect(session.isOpen).toBe(true);
    expect(session.closeReason).toBeUndefined();
  });

  it.each(['socket', 'pair'] as const)('parses the version QEMU announces (%s)', async (how) => {
    const { session } = await openSession(how, { version: { major: 10, minor: 0, micro: 13 } });
    expect(session.version).toEqual({ major: 10, minor: 0, micro: 13, package: 'Debian 1:10.0.13+ds-1' });
    expect(session.greeting.raw).toMatchObject({ version: { qemu: { major: 10, minor: 0, micro: 13 } } });
  });

  it('accepts a greeting without package or capabilities', async () => {
    const { session } = await openSession('socket', {
      greeting: '{"QMP": {"version": {"qemu": {"major": 9, "minor": 1, "micro": 0}}}}\r\n',
    });
    expect(session.version).toEqual({ major: 9, minor: 1, micro: 0, package: '' });
    expect(session.greeting.capabilities).toEqual([]);
  });

  it('compares versions', () => {
    const v = { major: 10, minor: 0, micro: 13, package: '' };
    expect(versionAtLeast(v, 10)).toBe(true);
    expect(versionAtLeast(v, 10, 0, 13)).toBe(true);
    expect(versionAtLeast(v, 10, 0, 14)).toBe(false);
    expect(versionAtLeast(v, 10, 1)).toBe(false);
    expect(versionAtLeast(v, 9, 2)).toBe(true);
    expect(versionAtLeast(v, 11)).toBe(false);
  });

  it('gives up on a silent peer and hangs up', async () => {
    const { fake, socket } = await connectViaSocket({ greeting: false });
    const err = await rejection(QmpSession.open(socket, { greetingTimeoutMs: 30 }));
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect((err as QmpTimeoutError).what).toBe('greeting');
    await fake.closed;
    expect(socket.destroyed).toBe(true);
  });

  it.each([
    ['an empty QMP member', '{"QMP": {}}'],
    ['a string version', '{"QMP": {"version": {"qemu": {"major": "10", "minor": 0, "micro": 0}}}}'],
    ['a negative version', '{"QMP": {"version": {"qemu": {"major": -1, "minor": 0, "micro": 0}}}}'],
    ['a reply', '{"return": {}}'],
    ['an event', '{"event": "STOP"}'],
    ['an array', '[{"QMP": {}}]'],
    ['not JSON', 'QEMU says hi'],
  ])('refuses a greeting that is %s', async (_what, line) => {
    const { fake, socket } = await connectViaSocket({ greeting: `${line}\r\n` });
    const err = await rejection(QmpSession.open(socket));
    expect(err).toBeInstanceOf(QmpProtocolError);
    await fake.closed;
  });

  it('fails when QEMU refuses qmp_capabilities', async () => {
    const { fake, socket } = await connectViaSocket();
    fake.handle('qmp_capabilities', () => fail('GenericError', 'no thanks'));
    const err = await rejection(QmpSession.open(socket));
    expect(err).toBeInstanceOf(QmpCommandError);
    expect((err as QmpCommandError).command).toBe('qmp_capabilities');
    await fake.closed;
  });

  it('fails when QEMU hangs up before greeting', async () => {
    const { fake, socket } = await connectViaSocket({ greeting: false });
    const opening = QmpSession.open(socket);
    fake.disconnect();
    expect(await rejection(opening)).toBeInstanceOf(QmpDisconnectedError);
  });

  it('fails at once on a socket that is already closed', async () => {
    const { socket } = await connectViaSocket();
    socket.destroy();
    expect(await rejection(QmpSession.open(socket))).toBeInstanceOf(QmpDisconnectedError);
  });

  it('refuses nonsensical options', async () => {
    const { socket } = await connectViaSocket();
    expect(await rejection(QmpSession.open(socket, { maxLineBytes: 0 }))).toBeInstanceOf(RangeError);
  });
});

describe('commands', () => {
  it('passes arguments and returns the return value', async () => {
    const { session, fake } = await openSession();
    fake.handle('qom-get', (cmd) => ok(`${cmd.arguments!.path}.${cmd.arguments!.property}`));
    expect(await session.execute<string>('qom-get', { path: '/machine/peripheral/cxl-mem0', property: 'size' })).toBe(
      '/machine/peripheral/cxl-mem0.size',
    );
    expect(fake.received[1]).toMatchObject({ execute: 'qom-get', arguments: { path: '/machine/peripheral/cxl-mem0', property: 'size' } });
  });

  it('matches replies by id when they come back out of order', async () => {
    const { session, fake } = await openSession();
    const gates = [new Deferred<FakeReply>(), new Deferred<FakeReply>(), new Deferred<FakeReply>()];
    fake.handle('q', (cmd) => gates[cmd.arguments!.n as number]!.promise);
    const results = [0, 1, 2].map((n) => session.execute('q', { n }));
    await fake.waitForCommand('q', 3);
    gates[2]!.resolve(ok('c'));
    await expect(results[2]).resolves.toBe('c');
    gates[0]!.resolve(ok('a'));
    gates[1]!.resolve(ok('b'));
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c']);
    const ids = fake.received.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('rejects with the QMP error class and description; the session carries on', async () => {
    const { session, fake } = await openSession();
    fake.handle('device_add', () => fail('GenericError', "Bus 'cxl-rp9' not found"));
    const err = await rejection(session.execute('device_add', { driver: 'cxl-type3', bus: 'cxl-rp9' }));
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err).toMatchObject({ code: 'COMMAND', command: 'device_add', errorClass: 'GenericError', desc: "Bus 'cxl-rp9' not found" });
    expect(err.message).toContain('device_add');
    expect(err.message).toContain("Bus 'cxl-rp9' not found");
    const missing = await rejection(session.execute('no-such-command'));
    expect(missing).toMatchObject({ errorClass: 'CommandNotFound' });
    fake.handle('query-status', () => ok({ status: 'prelaunch', running: false }));
    expect(await session.execute('query-status')).toEqual({ status: 'prelaunch', running: false });
    expect(session.isOpen).toBe(true);
  });

  it('rejects arguments that cannot be sent without harming the session', async () => {
    const { session, fake } = await openSession();
    expect(await rejection(session.execute('x', { n: 1n }))).toBeInstanceOf(TypeError);
    expect(await rejection(session.execute(''))).toBeInstanceOf(TypeError);
    expect(await rejection(session.execute('x', undefined, { timeoutMs: -1 }))).toBeInstanceOf(RangeError);
    fake.handle('ping', () => ok());
    expect(await session.execute('ping')).toEqual({});
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'ping']);
  });
});

describe('timeouts', () => {
  it('times out, stays open, and drops the late reply', async () => {
    const { session, fake } = await openSession();
    fake.handle('device_del', () => NO_REPLY);
    const err = await rejection(session.execute('device_del', { id: 'mem1' }, { timeoutMs: 30 }));
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err).toMatchObject({ code: 'TIMEOUT', what: 'device_del', timeoutMs: 30 });
    expect(session.isOpen).toBe(true);
    const cmd = await fake.waitForCommand('device_del');
    await fake.reply(cmd.id, { late: true });
    // The stream is ordered: this answer comes after the late one was handled.
    fake.handle('query-status', () => ok({ status: 'paused' }));
    expect(await session.execute('query-status')).toEqual({ status: 'paused' });
    expect(session.isOpen).toBe(true);
  });

  it('applies the session default timeout', async () => {
    const { session, fake } = await openSession('socket', {}, { commandTimeoutMs: 30 });
    fake.handle('hang', () => NO_REPLY);
    expect(await rejection(session.execute('hang'))).toBeInstanceOf(QmpTimeoutError);
  });

  it('remembers only the newest maxAbandonedIds timed-out ids', async () => {
    const { session, fake } = await openSession('socket', {}, { maxAbandonedIds: 2 });
    fake.handle('hang', () => NO_REPLY);
    fake.handle('ping', () => ok());
    for (let i = 0; i < 3; i++) {
      expect(await rejection(session.execute('hang', undefined, { timeoutMs: 20 }))).toBeInstanceOf(QmpTimeoutError);
    }
    const [oldest, middle, newest] = await Promise.all([1, 2, 3].map((n) => fake.waitForCommand('hang', n)));
    await fake.reply(newest!.id);
    await fake.reply(middle!.id);
    await session.execute('ping');
    expect(session.isOpen).toBe(true);
    await fake.reply(oldest!.id);
    const reason = await session.closed;
    expect(reason).toBeInstanceOf(QmpProtocolError);
    expect(reason.message).toMatch(/unknown id/);
  });

  it('accepts one late reply per timed-out id, not two', async () => {
    const { session, fake } = await openSession();
    fake.handle('hang', () => NO_REPLY);
    fake.handle('ping', () => ok());
    await rejection(session.execute('hang', undefined, { timeoutMs: 20 }));
    const { id } = await fake.waitForCommand('hang');
    await fake.reply(id);
    await session.execute('ping');
    expect(session.isOpen).toBe(true);
    await fake.reply(id);
    expect((await session.closed).message).toMatch(/unknown id/);
  });
});

describe('events', () => {
  it('delivers events to named and wildcard subscribers until they unsubscribe', async () => {
    const { session, fake } = await openSession();
    const named: QmpEvent[] = [];
    const all: string[] = [];
    const offNamed = session.on('DEVICE_DELETED', (e) => named.push(e));
    const offAll = session.on('*', (e) => all.push(e.event));
    const first = session.waitForEvent('MARK1');
    await fake.emitEvent('DEVICE_DELETED', { device: 'mem1', path: '/machine/peripheral/mem1' });
    await fake.emitEvent('RESUME');
    await fake.emitEvent('MARK1');
    await first;
    expect(named).toEqual([
      {
        event: 'DEVICE_DELETED',
        data: { device: 'mem1', path: '/machine/peripheral/mem1' },
        timestamp: { seconds: 1_700_000_000, microseconds: 123_456 },
      },
    ]);
    expect(all).toEqual(['DEVICE_DELETED', 'RESUME', 'MARK1']);
    offNamed();
    offNamed();
    offAll();
    const second = session.waitForEvent('MARK2');
    await fake.emitEvent('DEVICE_DELETED', { device: 'mem2' });
    await fake.emitEvent('MARK2');
    await second;
    expect(named).toHaveLength(1);
    expect(all).toHaveLength(3);
  });

  it('waitForEvent honours the predicate, times out, and fails when the session ends', async () => {
    const { session, fake } = await openSession();
    const waiting = session.waitForEvent('DEVICE_DELETED', (e) => e.data.device === 'b');
    await fake.emitEvent('DEVICE_DELETED', { device: 'a' });
    await fake.emitEvent('DEVICE_DELETED', { device: 'b' });
    expect((await waiting).data).toEqual({ device: 'b' });

    const timedOut = await rejection(session.waitForEvent('NEVER', undefined, 20));
    expect(timedOut).toBeInstanceOf(QmpTimeoutError);
    expect((timedOut as QmpTimeoutError).what).toBe('event NEVER');

    const throwing = session.waitForEvent('X', () => {
      throw new Error('predicate broke');
    });
    await fake.emitEvent('X');
    expect((await rejection(throwing)).message).toBe('predicate broke');

    const orphaned = rejection(session.waitForEvent('NEVER'));
    fake.disconnect();
    expect(await orphaned).toBeInstanceOf(QmpDisconnectedError);
    expect(await rejection(session.waitForEvent('NEVER'))).toBeInstanceOf(QmpDisconnectedError);
  });

  it('survives a throwing handler and reports it', async () => {
    const reported: unknown[] = [];
    const { session, fake } = await openSession('socket', {}, { onListenerError: (e) => reported.push(e) });
    session.on('STOP', () => {
      throw new Error('handler bug');
    });
    const later: string[] = [];
    session.on('STOP', (e) => later.push(e.event));
    const mark = session.waitForEvent('MARK');
    await fake.emitEvent('STOP');
    await fake.emitEvent('MARK');
    await mark;
    expect(later).toEqual(['STOP']);
    expect(reported).toHaveLength(1);
    expect((reported[0] as Error).message).toBe('handler bug');
    expect(session.isOpen).toBe(true);
  });

  it('keeps nothing of a flood of events nobody listens to', async () => {
    const { session, fake } = await openSession();
    fake.handle('ping', () => ok());
    const line = `${JSON.stringify({ event: 'NOISE', data: { pad: 'x'.repeat(1000) } })}\r\n`;
    const batch = line.repeat(1000);
    for (let i = 0; i < 20; i++) await fake.sendRaw(batch);
    // Replies come after the flood on the same stream, so the flood is consumed.
    await session.execute('ping');
    const seen: string[] = [];
    session.on('*', (e) => seen.push(e.event));
    const mark = session.waitForEvent('MARK');
    await fake.emitEvent('MARK');
    await mark;
    expect(seen).toEqual(['MARK']);
    expect(session.isOpen).toBe(true);
  });
});

describe('a broken or hostile peer ends only its own session', () => {
  const violations: Array<[string, (pendingId: unknown) => string, RegExp]> = [
    ['invalid JSON', () => '{"return": {}, "id": \r\n', /invalid JSON/],
    ['an array', () => '[1, 2]\r\n', /not a JSON object/],
    ['a number', () => '42\r\n', /not a JSON object/],
    ['a string', () => '"hello"\r\n', /not a JSON object/],
    ['null', () => 'null\r\n', /not a JSON object/],
    ['a reply for an unknown id', () => '{"return": {}, "id": 999999}\r\n', /unknown id/],
    ['a reply with an id of the wrong type', (id) => `{"return": {}, "id": "${id}"}\r\n`, /unknown id/],
    ['a reply without id', () => '{"return": {}}\r\n', /without id/],
    ['a malformed error reply', (id) => `{"error": {"class": "GenericError"}, "id": ${id}}\r\n`, /malformed error/],
    ['an unrecognized object', () => '{"hello": "world"}\r\n', /unrecognized/],
    ['a second greeting', () => '{"QMP": {"version": {"qemu": {"major": 10, "minor": 0, "micro": 0}}}}\r\n', /second greeting/],
    ['an event whose name is not a string', () => '{"event": 5}\r\n', /malformed event/],
    ['an event whose data is not an object', () => '{"event": "STOP", "data": [1]}\r\n', /malformed event/],
  ];

  it.each(violations)('%s', async (_what, raw, pattern) => {
    const { session, fake } = await openSession();
    fake.handle('hang', () => NO_REPLY);
    const pending = rejection(session.execute('hang'));
    const cmd = await fake.waitForCommand('hang');
    await fake.sendRaw(raw(cmd.id));
    const reason = await session.closed;
    expect(reason).toBeInstanceOf(QmpProtocolError);
    expect(reason.message).toMatch(pattern);
    expect(session.closeReason).toBe(reason);
    const err = await pending;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect((err as QmpDisconnectedError).reason).toBe(reason);
    await fake.closed;
    expect(await rejection(session.execute('ping'))).toBeInstanceOf(QmpDisconnectedError);
  });

  it('accepts a line of exactly maxLineBytes and ends the session at one more', async () => {
    const { session, fake } = await openSession('socket', {}, { maxLineBytes: 1024 });
    const big = session.waitForEvent('BIG');
    await fake.sendRaw(eventLineOfLength(1024));
    expect((await big).data.pad).toHaveLength(1024 - 1 - JSON.stringify({ event: 'BIG', data: { pad: '' } }).length);
    await fake.sendRaw(eventLineOfLength(1025));
    const reason = await session.closed;
    expect(reason).toBeInstanceOf(QmpProtocolError);
    expect(reason.message).toMatch(/exceeds 1024 bytes/);
  });

  it('ends the session on an oversized line before its end arrives', async () => {
    const { session, fake } = await openSession('socket', {}, { maxLineBytes: 1024 });
    fake.handle('hang', () => NO_REPLY);
    const pending = rejection(session.execute('hang'));
    await fake.waitForCommand('hang');
    // No newline ever: the session must not wait for one.
    for (let i = 0; i < 3; i++) await fake.sendRaw('{"return": "'.padEnd(500, 'x'));
    expect((await session.closed).message).toMatch(/exceeds 1024 bytes/);
    expect(await pending).toBeInstanceOf(QmpDisconnectedError);
    await fake.closed;
  });

  it('ends the session on an oversized line sent a byte at a time', async () => {
    // Room for the greeting (about 130 bytes), not for this.
    const { session, fake } = await openSession('socket', {}, { maxLineBytes: 256 });
    fake.slowWrites = true;
    void fake.sendRaw('x'.repeat(400));
    expect((await session.closed).message).toMatch(/exceeds 256 bytes/);
  });

  it('fails pending commands when QEMU disconnects mid-command', async () => {
    const { session, fake } = await openSession();
    fake.handle('device_add', () => NO_REPLY);
    const pending = rejection(session.execute('device_add', { driver: 'cxl-type3' }));
    await fake.waitForCommand('device_add');
    fake.disconnect();
    const err = await pending;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect(err.message).toContain('device_add');
    const reason = await session.closed;
    expect(reason).toBeInstanceOf(QmpDisconnectedError);
    expect(session.isOpen).toBe(false);
    expect(await rejection(session.execute('cont'))).toBeInstanceOf(QmpDisconnectedError);
  });

  it('ends the session when QEMU half-closes', async () => {
    const { session, fake } = await openSession();
    fake.handle('hang', () => NO_REPLY);
    const pending = rejection(session.execute('hang'));
    await fake.waitForCommand('hang');
    fake.endOutput();
    expect(await session.closed).toBeInstanceOf(QmpDisconnectedError);
    expect(await pending).toBeInstanceOf(QmpDisconnectedError);
    await fake.closed;
  });
});

describe('framing', () => {
  it.each(['socket', 'pair'] as const)('copes with a peer that writes a byte at a time (%s)', async (how) => {
    const { session, fake } = await openSession(how, { slowWrites: true });
    expect(session.version.major).toBe(10);
    fake.handle('query-name', () => ok({ name: 'head0' }));
    const event = session.waitForEvent('RESUME');
    expect(await session.execute('query-name')).toEqual({ name: 'head0' });
    await fake.emitEvent('RESUME');
    expect((await event).event).toBe('RESUME');
  });

  it('splits several messages arriving in one chunk', async () => {
    const { session, fake } = await openSession();
    fake.handle('a', () => NO_REPLY);
    fake.handle('b', () => NO_REPLY);
    const a = session.execute('a');
    const b = session.execute('b');
    const [ca, cb] = [await fake.waitForCommand('a'), await fake.waitForCommand('b')];
    const events: string[] = [];
    session.on('*', (e) => events.push(e.event));
    await fake.sendRaw(
      `{"return": "B", "id": ${cb.id}}\r\n{"event": "E1"}\r\n\r\n{"return": "A", "id": ${ca.id}}\r\n{"event": "E2", "data": {}}\r\n`,
    );
    expect(await Promise.all([a, b])).toEqual(['A', 'B']);
    const e2 = session.waitForEvent('E3');
    await fake.emitEvent('E3');
    await e2;
    expect(events).toEqual(['E1', 'E2', 'E3']);
  });
});

describe('closing', () => {
  it('close() fails pending commands, hangs up, and every later call fails at once', async () => {
    const { session, fake } = await openSession();
    fake.handle('hang', () => NO_REPLY);
    const pending = rejection(session.execute('hang'));
    await fake.waitForCommand('hang');
    session.close();
    session.close();
    const reason = await session.closed;
    expect(reason).toBeInstanceOf(QmpClosedError);
    const err = await pending;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect((err as QmpDisconnectedError).reason).toBe(reason);
    await fake.closed;
    const before = fake.received.length;
    expect(await rejection(session.execute('cont'))).toMatchObject({ code: 'DISCONNECTED', reason });
    expect(await rejection(session.executeWithFds('getfd', { fdname: 'x' }, [0]))).toBeInstanceOf(QmpDisconnectedError);
    expect(await rejection(session.waitForEvent('STOP'))).toBeInstanceOf(QmpDisconnectedError);
    expect(session.on('STOP', () => {})).toBeTypeOf('function');
    expect(fake.received.length).toBe(before);
  });
});

describe('descriptor passing', () => {
  it('hands QEMU a descriptor it can use', async () => {
    const { session, fake } = await openSession('pair');
    const [mine, theirs] = native.socketPair();
    const mySide = ownSocket(mine);
    try {
      expect(await session.executeWithFds('getfd', { fdname: 'cxl-mhd-fmld' }, [theirs])).toEqual({});
    } finally {
      native.close(theirs);
    }
    const getfd = await fake.waitForCommand('getfd');
    expect(getfd.fds).toHaveLength(1);
    await expectConnected(mySide, ownSocket(fake.takeFd('cxl-mhd-fmld')));
  });

  it('keeps the descriptor on its own command among others', async () => {
    const { session, fake } = await openSession('pair');
    fake.handle('query-status', () => ok({ status: 'paused' }));
    fake.handle('query-name', () => ok({}));
    const [mine, theirs] = native.socketPair();
    const mySide = ownSocket(mine);
    try {
      await Promise.all([
        session.execute('query-status'),
        session.executeWithFds('getfd', { fdname: 'f' }, [theirs]),
        session.execute('query-name'),
      ]);
    } finally {
      native.close(theirs);
    }
    expect(fake.received.map((c) => [c.execute, c.fds.length])).toEqual([
      ['qmp_capabilities', 0],
      ['query-status', 0],
      ['getfd', 1],
      ['query-name', 0],
    ]);
    await expectConnected(mySide, ownSocket(fake.takeFd('f')));
  });

  it('waits for earlier writes to drain before sendmsg', async () => {
    const { session, fake, socket } = await openSession('pair');
    fake.handle('blob', () => ok());
    fake.pauseReading();
    // Far more than a socket buffer: Node keeps the rest queued.
    const big = session.execute('blob', { data: 'x'.repeat(4 << 20) });
    expect(socket.writableLength).toBeGreaterThan(0);
    const [mine, theirs] = native.socketPair();
    const mySide = ownSocket(mine);
    const getfd = session.executeWithFds('getfd', { fdname: 'f' }, [theirs]);
    fake.resumeReading();
    try {
      await Promise.all([big, getfd]);
    } finally {
      native.close(theirs);
    }
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'blob', 'getfd']);
    await expectConnected(mySide, ownSocket(fake.takeFd('f')));
  });

  it('finishes a short sendmsg through the stream', async () => {
    const calls: Array<{ sent: number; length: number }> = [];
    const spy: SendFdsFn = (fd, bytes, fds) => {
      const sent = native.sendFds(fd, bytes, fds);
      calls.push({ sent, length: bytes.length });
      return sent;
    };
    const { session, fake } = await openSession('pair', {}, { sendFds: spy });
    fake.handle('ping', () => ok());
    fake.pauseReading();
    const [mine, theirs] = native.socketPair();
    const mySide = ownSocket(mine);
    // Bigger than any default socket buffer, so the kernel takes only part.
    const getfd = session.executeWithFds('getfd', { fdname: 'f', padding: 'x'.repeat(8 << 20) }, [theirs]);
    const after = session.execute('ping');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.sent).toBeGreaterThan(0);
    expect(calls[0]!.sent).toBeLessThan(calls[0]!.length);
    fake.resumeReading();
    try {
      await Promise.all([getfd, after]);
    } finally {
      native.close(theirs);
    }
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'getfd', 'ping']);
    await expectConnected(mySide, ownSocket(fake.takeFd('f')));
  });

  it('retries after EAGAIN without letting later commands overtake', async () => {
    const calls: number[] = [];
    const flaky: SendFdsFn = (fd, bytes, fds) => {
      calls.push(bytes.length);
      if (calls.length === 1)
        throw Object.assign(new Error('sendmsg: Resource temporarily unavailable (EAGAIN)'), { code: 'EAGAIN', errno: -11 });
      // Then a short send of 7 bytes, as a nearly full buffer gives.
      return native.sendFds(fd, bytes.subarray(0, 7), fds);
    };
    const { session, fake } = await openSession('pair', {}, { sendFds: flaky });
    fake.handle('query-name', () => ok({ name: 'h' }));
    const [mine, theirs] = native.socketPair();
    const mySide = ownSocket(mine);
    const getfd = session.executeWithFds('getfd', { fdname: 'f' }, [theirs]);
    const after = session.execute('query-name');
    try {
      await Promise.all([getfd, after]);
    } finally {
      native.close(theirs);
    }
    expect(calls).toHaveLength(2);
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'getfd', 'query-name']);
    await expectConnected(mySide, ownSocket(fake.takeFd('f')));
  });

  it('fails only the command when a descriptor is bad', async () => {
    const { session, fake } = await openSession('pair');
    fake.handle('ping', () => ok());
    const [a, b] = native.socketPair();
    native.close(a);
    native.close(b);
    // `b` was just closed, so sendmsg finds no such descriptor.
    const err = await rejection(session.executeWithFds('getfd', { fdname: 'f' }, [b]));
    expect(err).toBeInstanceOf(QmpFdPassingError);
    expect(err.message).toContain('getfd');
    expect((err.cause as { code?: string }).code).toBe('EBADF');
    expect(await rejection(session.executeWithFds('getfd', { fdname: 'f' }, []))).toBeInstanceOf(QmpFdPassingError);
    expect(await rejection(session.executeWithFds('getfd', { fdname: 'f' }, [-1]))).toBeInstanceOf(QmpFdPassingError);
    expect(await session.execute('ping')).toEqual({});
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'ping']);
  });

  it('times out a command still queued behind a descriptor send without sending it', async () => {
    let attempts = 0;
    const stuck: SendFdsFn = () => {
      attempts++;
      throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
    };
    const { session, fake } = await openSession('pair', {}, { sendFds: stuck });
    fake.handle('ping', () => ok());
    const [a, b] = native.socketPair();
    cleanups.push(() => {
      native.close(a);
      native.close(b);
    });
    const err = await rejection(session.executeWithFds('getfd', { fdname: 'f' }, [b], { timeoutMs: 30 }));
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(attempts).toBeGreaterThan(0);
    // Nothing of it went out, so the stream is clean for the next command.
    expect(await session.execute('ping')).toEqual({});
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'ping']);
  });

  it('works over any Duplex, but passes descriptors only over a socket', async () => {
    const toSession = new PassThrough();
    const fromSession = new PassThrough();
    const duplex = Duplex.from({ readable: toSession, writable: fromSession });
    cleanups.push(() => duplex.destroy());
    fromSession.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const cmd = JSON.parse(line) as { execute: string; id: number };
        toSession.write(`${JSON.stringify({ return: { echo: cmd.execute }, id: cmd.id })}\r\n`);
      }
    });
    toSession.write('{"QMP": {"version": {"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": ""}, "capabilities": []}}\r\n');
    const session = await QmpSession.open(duplex);
    cleanups.push(() => session.close());
    expect(await session.execute('query-status')).toEqual({ echo: 'query-status' });
    expect(await rejection(session.executeWithFds('getfd', { fdname: 'f' }, [0]))).toBeInstanceOf(QmpFdPassingError);
    expect(session.isOpen).toBe(true);
  });
});
