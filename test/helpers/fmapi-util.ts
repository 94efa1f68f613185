// Test helpers for the FM-API layer: hex literals with comments, a seeded
// PRNG, an in-memory stream pair and a way to collect a stream's messages.
import { Duplex, PassThrough } from 'node:stream';
import { Framer } from '../../src/fmapi/framer.js';
import { Category } from '../../src/fmapi/message.js';

/** "01 02 # comment" → bytes. Whitespace and #-comments are ignored. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) throw new Error(`bad hex literal: ${clean}`);
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/** n zero bytes, for hex literals. */
export function zeros(n: number): string {
  return '00 '.repeat(n);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** mulberry32: small, fast and the same on every run for a given seed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => int(256)),
  };
}

/** Two connected in-memory Duplex ends: what one writes the other reads. */
export function duplexPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

/** Collects whole messages a stream receives, in order. */
export function collect(stream: Duplex, expect: Category = Category.Response) {
  const framer = new Framer({ expect });
  const frames: Uint8Array[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  stream.on('data', (chunk: Buffer) => {
    for (const f of framer.push(chunk)) {
      if (f instanceof Uint8Array) frames.push(f);
      else throw f;
    }
    for (const w of [...waiters]) {
      if (frames.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    frames,
    /** Resolves once `n` messages have arrived in total. */
    until(n: number, timeoutMs = 5000): Promise<Uint8Array[]> {
      if (frames.length >= n) return Promise.resolve(frames);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${frames.length} of ${n} messages arrived`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve(frames);
          },
        });
      });
    },
  };
}
