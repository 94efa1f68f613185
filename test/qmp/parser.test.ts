// The QMP parser on its own: line framing under the size limit and the shape
// rules for greetings, events and replies, fed bytes directly (no socket).
// test/qmp/session.test.ts covers the same rules end to end through a fake QEMU.
import { describe, expect, it } from 'vitest';
import {
  decodeEvent,
  decodeGreeting,
  decodeReplyBody,
  encodeCommand,
  kindOf,
  MessageReader,
  parseLine,
  type QmpMessage,
  replyId,
} from '../../src/qmp/parser.js';

function reader(maxLineBytes = 64): { r: MessageReader; messages: QmpMessage[]; violations: string[] } {
  const messages: QmpMessage[] = [];
  const violations: string[] = [];
  const r = new MessageReader(maxLineBytes, { message: (m) => messages.push(m), violation: (v) => violations.push(v) });
  return { r, messages, violations };
}

function message(text: string): QmpMessage {
  const parsed = parseLine(text);
  if (!parsed?.ok) throw new Error(`test input is not an object: ${text}`);
  return { msg: parsed.value, text };
}

describe('MessageReader', () => {
  it('joins a line split across chunks and splits lines sharing one, skipping blank ones', () => {
    const { r, messages, violations } = reader();
    r.push(Buffer.from('{"a"'));
    r.push(Buffer.from(': 1}\r\n\r\n{"b": 2}\n{"c"'));
    expect(messages.map((m) => m.msg)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(r.buffered).toBe(4);
    r.push(Buffer.from(': 3}\n'));
    expect(messages.map((m) => m.msg)).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
    expect(messages[0]!.text).toBe('{"a": 1}\r');
    expect(r.buffered).toBe(0);
    expect(violations).toEqual([]);
  });

  it('keeps a multi-byte character split between chunks whole', () => {
    const { r, messages } = reader();
    const bytes = Buffer.from('{"name": "é"}\n');
    const cut = bytes.indexOf(0xc3) + 1;
    r.push(bytes.subarray(0, cut));
    r.push(bytes.subarray(cut));
    expect(messages[0]!.msg).toEqual({ name: 'é' });
  });

  it('takes a line of exactly maxLineBytes and refuses one more, without waiting for its end', () => {
    const exact = reader(10);
    exact.r.push(Buffer.from(`{"a":"12"}\n`));
    expect(exact.messages).toHaveLength(1);
    expect(exact.violations).toEqual([]);

    const over = reader(10);
    over.r.push(Buffer.from('{"a":"123"'));
    expect(over.violations).toEqual([]);
    over.r.push(Buffer.from('x'));
    expect(over.violations).toEqual(['a message exceeds 10 bytes']);
    expect(over.r.buffered).toBe(0);
  });

  it('delivers nothing after a violation, even what followed in the same chunk', () => {
    const { r, messages, violations } = reader();
    r.push(Buffer.from('not json\n{"a": 1}\n'));
    r.push(Buffer.from('{"b": 2}\n'));
    expect(messages).toEqual([]);
    expect(violations).toEqual(['invalid JSON "not json"']);
  });

  it('stops at once when a sink stops it mid-chunk', () => {
    const messages: unknown[] = [];
    const r: MessageReader = new MessageReader(64, {
      message: (m) => {
        messages.push(m.msg);
        r.stop();
      },
      violation: () => {},
    });
    r.push(Buffer.from('{"a": 1}\n{"b": 2}\n{"c"'));
    expect(messages).toEqual([{ a: 1 }]);
    expect(r.buffered).toBe(0);
  });

  it('refuses a nonsensical limit', () => {
    expect(() => reader(0)).toThrow(RangeError);
    expect(() => reader(1.5)).toThrow(RangeError);
  });
});

describe('message rules', () => {
  it('accepts only JSON objects, quoting and shortening peer text in the violation', () => {
    expect(parseLine(' \r')).toBeUndefined();
    expect(parseLine('[1]')).toEqual({ ok: false, violation: 'a message is not a JSON object: "[1]"' });
    const hostile = `\u001b[2J${'x'.repeat(200)}`;
    const result = parseLine(hostile);
    expect(result?.ok).toBe(false);
    const violation = result && !result.ok ? result.violation : '';
    expect(violation).not.toContain('\u001b');
    expect(violation).toContain('\\u001b');
    expect(violation.length).toBeLessThan(120);
  });

  it('tells events, replies and greetings apart', () => {
    expect(kindOf({ event: 'X' })).toBe('event');
    expect(kindOf({ return: {}, id: 1 })).toBe('reply');
    expect(kindOf({ error: {}, id: 1 })).toBe('reply');
    expect(kindOf({ QMP: {} })).toBe('greeting');
    expect(kindOf({ hello: 1 })).toBe('unknown');
  });

  it('reads the greeting QEMU 10 sends and refuses one without a numeric version', () => {
    const greeting = decodeGreeting(
      message(
        '{"QMP": {"version": {"qemu": {"micro": 13, "minor": 0, "major": 10}, "package": " Debian 1:10.0.13+ds-1 "}, "capabilities": ["oob", 7]}}',
      ),
    );
    expect(greeting).toMatchObject({
      ok: true,
      value: { version: { major: 10, minor: 0, micro: 13, package: 'Debian 1:10.0.13+ds-1' }, capabilities: ['oob'] },
    });
    const bad = decodeGreeting(message('{"QMP": {"version": {"qemu": {"major": "10", "minor": 0, "micro": 0}}}}'));
    expect(bad.ok).toBe(false);
  });

  it('reads events with and without data and timestamp', () => {
    expect(decodeEvent(message('{"event": "RESUME"}'))).toEqual({ ok: true, value: { event: 'RESUME', data: {} } });
    expect(decodeEvent(message('{"event": "STOP", "data": {"x": 1}, "timestamp": {"seconds": 5, "microseconds": 6}}'))).toEqual({
      ok: true,
      value: { event: 'STOP', data: { x: 1 }, timestamp: { seconds: 5, microseconds: 6 } },
    });
    expect(decodeEvent(message('{"event": 3}')).ok).toBe(false);
    expect(decodeEvent(message('{"event": "X", "data": [1]}')).ok).toBe(false);
  });

  it('reads reply ids and bodies, and refuses a malformed error', () => {
    expect(replyId(message('{"return": {}}')).ok).toBe(false);
    expect(replyId(message('{"return": {}, "id": "x"}'))).toEqual({ ok: true, value: 'x' });
    expect(decodeReplyBody(message('{"return": [1], "id": 1}'))).toEqual({ ok: true, value: { ok: true, value: [1] } });
    expect(decodeReplyBody(message('{"error": {"class": "GenericError", "desc": "no"}, "id": 1}'))).toEqual({
      ok: true,
      value: { ok: false, errorClass: 'GenericError', desc: 'no' },
    });
    expect(decodeReplyBody(message('{"error": "no", "id": 1}')).ok).toBe(false);
  });

  it('encodes a command as one line, arguments only when given', () => {
    expect(encodeCommand('query-name', undefined, 7).toString()).toBe('{"execute":"query-name","id":7}\n');
    expect(encodeCommand('getfd', { fdname: 'a' }, 8).toString()).toBe('{"execute":"getfd","arguments":{"fdname":"a"},"id":8}\n');
    expect(() => encodeCommand('x', { n: 1n }, 9)).toThrow(TypeError);
  });
});
