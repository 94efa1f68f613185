// The addon's JS surface: types, errno errors, mapping lifetime, atomics,
// peer credentials and fd passing, through the same calls the pool uses.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isNativeError, native } from '../../src/native/index.js';

const { SHM_CREATE, SHM_EXCL, SHM_RDONLY } = native.constants;
const names: string[] = [];
const fds: number[] = [];
function shmName(): string {
  const n = `/cxl-mhd-native-test-${process.pid}-${names.length}`;
  names.push(n);
  return n;
}
afterEach(() => {
  for (const fd of fds.splice(0)) {
    try {
      native.close(fd);
    } catch {}
  }
  for (const n of names.splice(0)) {
    try {
      native.shmUnlink(n);
    } catch {}
  }
});

describe('shm', () => {
  it('creates 0600 regardless of umask, sizes, maps and shares bytes between mappings', () => {
    const name = shmName();
    const old = process.umask(0o077);
    const fd = native.shmOpen(name, SHM_CREATE | SHM_EXCL, 0o640);
    process.umask(old);
    fds.push(fd);
    native.ftruncate(fd, 8192);
    expect(native.fstatSize(fd)).toBe(8192);
    const { mode } = statSync(`/dev/shm${name}`);
    expect(mode & 0o777).toBe(0o640);
    const a = native.mmap(fd, 8192, true);
    const fd2 = native.shmOpen(name, SHM_RDONLY, 0);
    fds.push(fd2);
    const b = native.mmap(fd2, 8192, false);
    new Uint8Array(a)[4000] = 77;
    expect(new Uint8Array(b)[4000]).toBe(77);
    expect(native.munmap(a)).toBe(true);
    expect(a.byteLength).toBe(0);
    expect(native.munmap(a)).toBe(false);
    expect(native.munmap(b)).toBe(true);
  });

  it('reports errno names', () => {
    const name = shmName();
    fds.push(native.shmOpen(name, SHM_CREATE | SHM_EXCL, 0o600));
    let err: unknown;
    try {
      native.shmOpen(name, SHM_CREATE | SHM_EXCL, 0o600);
    } catch (e) {
      err = e;
    }
    expect(isNativeError(err, 'EEXIST')).toBe(true);
    expect((err as Error).message).toMatch(/shm_open .*EEXIST/);
    expect(() => native.shmOpen('/cxl-mhd-does-not-exist', 0, 0)).toThrow(/ENOENT/);
    expect(() => native.close(-1)).toThrow(/EBADF/);
    expect(() => native.shmOpen(42 as unknown as string, 0, 0)).toThrow(TypeError);
  });

  it('flock excludes a second description until the holder closes and unmaps', () => {
    const name = shmName();
    const fd = native.shmOpen(name, SHM_CREATE | SHM_EXCL, 0o600);
    native.ftruncate(fd, 4096);
    const map = native.mmap(fd, 4096, true);
    const fd2 = native.shmOpen(name, 0, 0);
    fds.push(fd2);
    native.flock(fd, true, true);
    expect(() => native.flock(fd2, true, true)).toThrow(/EWOULDBLOCK|EAGAIN/);
    native.munmap(map);
    native.close(fd);
    native.flock(fd2, true, true);
  });

  it('unmaps on garbage collection', () => {
    // In a child with --expose-gc: 64 mappings dropped, then collected; the
    // kernel's map list must shrink, proving the finalizer runs munmap.
    const name = shmName();
    const script = `
      const { createRequire } = require('node:module');
      const addon = require(${JSON.stringify(join(process.cwd(), 'native/build/Release/cxl_mhd.node'))});
      const fd = addon.shmOpen(${JSON.stringify(name)}, addon.constants.SHM_CREATE, 0o600);
      addon.ftruncate(fd, 1 << 20);
      const count = () => require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes(${JSON.stringify(name)})).length;
      (() => { for (let i = 0; i < 64; i++) new Uint8Array(addon.mmap(fd, 1 << 20, true))[0] = i; })();
      const before = count();
      return new Promise((r) => setTimeout(r, 10)).then(() => { gc(); gc(); return new Promise((r) => setImmediate(r)); })
        .then(() => { console.log(JSON.stringify({ before, after: count() })); });
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', `(async () => { ${script} })()`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    expect(before).toBe(64);
    expect(after).toBeLessThan(before);
  });
});

describe('atomics', () => {
  it('32- and 64-bit CAS, fetch-add, load/store with bounds and alignment checks', () => {
    const buf = new ArrayBuffer(64);
    expect(native.cas32(buf, 4, 0, 5)).toBe(0);
    expect(native.cas32(buf, 4, 0, 9)).toBe(5);
    expect(native.load32(buf, 4)).toBe(5);
    expect(native.fetchAdd32(buf, 4, 0xfffffffc)).toBe(5);
    // 32-bit wraparound: 5 + 0xfffffffc = 1 (mod 2^32).
    expect(native.fetchAdd32(buf, 4, 2)).toBe(1);
    expect(native.load32(buf, 4)).toBe(3);
    native.store32(buf, 8, 0xffffffff);
    expect(native.load32(buf, 8)).toBe(0xffffffff);
    expect(native.cas64(buf, 16, 0n, (1n << 63n) | 1n)).toBe(0n);
    expect(native.load64(buf, 16)).toBe((1n << 63n) | 1n);
    expect(native.fetchAdd64(buf, 16, (1n << 63n) + 2n)).toBe((1n << 63n) | 1n);
    // 64-bit wraparound: the top bit carries out.
    expect(native.fetchAdd64(buf, 16, 1n)).toBe(3n);
    expect(native.load64(buf, 16)).toBe(4n);
    native.store64(buf, 24, 123n);
    expect(native.load64(buf, 24)).toBe(123n);
    expect(() => native.load32(buf, 2)).toThrow(/aligned/);
    expect(() => native.load64(buf, 60)).toThrow(/aligned/);
    expect(() => native.load64(buf, 64)).toThrow(/outside/);
    expect(() => native.load32(buf, -4)).toThrow(RangeError);
    expect(() => native.store64(buf, 0, 1 as unknown as bigint)).toThrow(TypeError);
    expect(() => native.store64(buf, 0, -1n)).toThrow(RangeError);
  });

  it('works on a shared mapping and refuses an unmapped one', () => {
    const name = shmName();
    const fd = native.shmOpen(name, SHM_CREATE | SHM_EXCL, 0o600);
    fds.push(fd);
    native.ftruncate(fd, 4096);
    const a = native.mmap(fd, 4096, true);
    const b = native.mmap(fd, 4096, true);
    native.fetchAdd64(a, 8, 10n);
    expect(native.load64(b, 8)).toBe(10n);
    native.munmap(a);
    expect(() => native.load64(a, 8)).toThrow(/outside the mapping/);
    native.munmap(b);
  });
});

describe('sockets', () => {
  it('peerCred names the connecting process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxl-mhd-native-'));
    const path = join(dir, 's.sock');
    const server = createServer();
    try {
      const accepted = new Promise<import('node:net').Socket>((resolve) => server.once('connection', resolve));
      await new Promise<void>((r) => server.listen(path, r));
      const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)}).on('data', () => process.exit(0))`]);
      const sock = await accepted;
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      const cred = native.peerCred(fd);
      expect(cred.pid).toBe(child.pid);
      expect(cred.uid).toBe(process.getuid?.());
      sock.write('x');
      await new Promise((r) => child.once('exit', r));
      sock.destroy();
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('socketPair + sendFds/recvFds pass a working descriptor', () => {
    const [a, b] = native.socketPair();
    const [c, d] = native.socketPair();
    fds.push(a, b, c, d);
    expect(native.sendFds(a, Buffer.from('fd!'), [c])).toBe(3);
    const got = native.recvFds(b, 16);
    expect(got.data.toString()).toBe('fd!');
    expect(got.fds).toHaveLength(1);
    const passed = got.fds[0]!;
    fds.push(passed);
    // Writing into the passed copy of c arrives at d.
    expect(native.sendFds(passed, Buffer.from('via'), [])).toBe(3);
    expect(native.recvFds(d, 16).data.toString()).toBe('via');
    expect(() => native.sendFds(a, new Uint8Array(0), [])).toThrow(/EINVAL/);
    expect(() => native.sendFds(a, Buffer.from('x'), new Array(17).fill(c))).toThrow(RangeError);
  });
});
