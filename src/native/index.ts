// Loads the native addon (native/src) and gives it a typed face. The addon
// does only what Node cannot: POSIX shm + mmap + flock, atomics on shared
// mappings, SO_PEERCRED, socketpair and SCM_RIGHTS.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** Errors thrown by the addon carry the errno name, as Node's own do. */
/** What the block bitmap holds: blocks per head (and of them shared), free and referenced blocks. */
export interface BlockUsage {
  perHead: number[];
  sharedPerHead: number[];
  free: number;
  referenced: number;
}

export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export interface Addon {
  shmOpen(name: string, flags: number, mode: number): number;
  shmUnlink(name: string): void;
  ftruncate(fd: number, size: number): void;
  fstatSize(fd: number): number;
  flock(fd: number, exclusive: boolean, nonblock: boolean): void;
  close(fd: number): void;
  mmap(fd: number, length: number, writable: boolean): ArrayBuffer;
  /** Unmaps now and detaches the buffer; false if it was already unmapped. */
  munmap(buffer: ArrayBuffer): boolean;
  load32(buffer: ArrayBuffer, offset: number): number;
  store32(buffer: ArrayBuffer, offset: number, value: number): void;
  /** Returns the value seen: the swap happened iff it equals `expected`. */
  cas32(buffer: ArrayBuffer, offset: number, expected: number, desired: number): number;
  fetchAdd32(buffer: ArrayBuffer, offset: number, value: number): number;
  load64(buffer: ArrayBuffer, offset: number): bigint;
  /** Counts over `count` block words from `offset` (pool/layout.ts), heads ≤ 32: one pass in C. */
  blockUsage(buffer: ArrayBuffer, offset: number, count: number, heads: number): BlockUsage;
  store64(buffer: ArrayBuffer, offset: number, value: bigint): void;
  cas64(buffer: ArrayBuffer, offset: number, expected: bigint, desired: bigint): bigint;
  fetchAdd64(buffer: ArrayBuffer, offset: number, value: bigint): bigint;
  peerCred(fd: number): PeerCred;
  socketPair(): [number, number];
  sendFds(fd: number, data: Uint8Array, fds: number[]): number;
  /** Only the tests' fake QEMU receives descriptors; kept so fd passing is tested end to end. */
  recvFds(fd: number, capacity: number): { data: Buffer; fds: number[] };
  constants: { SHM_CREATE: number; SHM_EXCL: number; SHM_RDONLY: number; MAX_FDS: number };
}

function findAddon(): string {
  // Works both from src/ (vitest) and dist/src/ (the built CLI).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'native', 'build', 'Release', 'cxl_mhd.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cxl-mhd native addon is not built: run `npm ci` (or `make build`) in the project directory');
}

/**
 * The addon, loaded on first use rather than on import: modules that only
 * re-export through an index (the guest-side FM client, `qemu-args`) must
 * run where no addon is built. The first property read swaps the live
 * binding for the loaded addon, so later calls go straight to it.
 */
export let native: Addon = new Proxy({} as Addon, {
  get(_target, key) {
    native = createRequire(import.meta.url)(findAddon()) as Addon;
    return native[key as keyof Addon];
  },
});

export function isNativeError(e: unknown, code?: string): e is NativeError {
  return e instanceof Error && typeof (e as NativeError).code === 'string' && (code === undefined || (e as NativeError).code === code);
}
