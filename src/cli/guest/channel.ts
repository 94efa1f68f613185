// The FM-LD channel on QuickJS: the guest's /dev/vportNpM (found by its
// sysfs name, as fmapi/port.ts does in Node) or a Unix socket, as one
// non-blocking fd behind the few stream methods FmClient uses. The event
// loop is quickjs-libc's: read and write handlers on the fd.
import { EventEmitter } from 'node:events';
import * as os from 'qjs:os';
import * as std from 'qjs:std';
import type { FmChannel } from '../../fmapi/index.js';
import { FMLD_PORT_NAME } from '../../qemu/index.js';
import type { FmIo } from '../fm.js';

const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;
const EAGAIN = 11;
const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 6: 'ENXIO', 13: 'EACCES', 16: 'EBUSY', 111: 'ECONNREFUSED' };

/** An Error worded as Node's for the same failure: "EACCES: permission denied, open '/dev/vport1p1'", "connect ECONNREFUSED /x.sock". */
function sysError(errno: number, syscall: string, path: string): Error {
  const code = ERRNO_NAMES[errno] ?? `E${errno}`;
  const text = syscall === 'connect' ? `connect ${code} ${path}` : `${code}: ${std.strerror(errno).toLowerCase()}, ${syscall} '${path}'`;
  const e = new Error(text) as Error & { code: string };
  e.code = code;
  return e;
}

class FdChannel extends EventEmitter {
  private readonly buf = new ArrayBuffer(64 * 1024);
  private queue: Uint8Array[] = [];
  private closed = false;

  constructor(private readonly fd: number) {
    super();
    os.setReadHandler(fd, () => this.readable());
  }

  write(bytes: Uint8Array): boolean {
    this.queue.push(bytes);
    if (this.queue.length === 1) this.flush();
    return true;
  }

  destroy(): this {
    if (this.closed) return this;
    this.closed = true;
    os.setReadHandler(this.fd, null);
    os.setWriteHandler(this.fd, null);
    os.close(this.fd);
    this.emit('close');
    return this;
  }

  private readable(): void {
    const n = os.read(this.fd, this.buf, 0, this.buf.byteLength);
    if (n === -EAGAIN) return;
    if (n < 0) {
      this.fail(new Error(`read: ${std.strerror(-n)}`));
      return;
    }
    // virtio-serial reads end of file while the host side is disconnected.
    if (n === 0) {
      this.emit('end');
      this.destroy();
      return;
    }
    this.emit('data', new Uint8Array(this.buf.slice(0, n)));
  }

  private flush(): void {
    while (!this.closed && this.queue.length > 0) {
      const head = this.queue[0] as Uint8Array;
      const n = os.write(this.fd, head.buffer as ArrayBuffer, head.byteOffset, head.byteLength);
      if (n === -EAGAIN) {
        os.setWriteHandler(this.fd, () => {
          os.setWriteHandler(this.fd, null);
          this.flush();
        });
        return;
      }
      if (n < 0) {
        this.fail(new Error(`write: ${std.strerror(-n)}`));
        return;
      }
      if (n < head.byteLength) this.queue[0] = head.subarray(n);
      else this.queue.shift();
    }
  }

  private fail(e: Error): void {
    this.emit('error', e);
    this.destroy();
  }
}

/** A small text file; not std.loadFile, which trusts the size stat reports (4096 for any sysfs file) and fails. */
function readText(path: string): string | null {
  const f = std.open(path, 'r');
  if (!f) return null;
  try {
    return f.readAsString();
  } finally {
    f.close();
  }
}

function findPort(sysRoot = '/sys/class/virtio-ports'): string | null {
  const [ports, err] = os.readdir(sysRoot);
  if (err !== 0) return null;
  for (const port of ports.sort()) {
    if (port.startsWith('.')) continue;
    if (readText(`${sysRoot}/${port}/name`)?.trim() === FMLD_PORT_NAME) return `/dev/${port}`;
  }
  return null;
}

async function open(path: string): Promise<FmChannel> {
  const [st, err] = os.stat(path);
  if (err !== 0) throw sysError(err, 'stat', path);
  const type = st.mode & S_IFMT;
  let fd: number;
  if (type === S_IFSOCK) {
    fd = cxlmhdConnectUnix(path);
    if (fd < 0) throw sysError(-fd, 'connect', path);
  } else if (type === S_IFCHR || type === S_IFIFO) {
    fd = os.open(path, os.O_RDWR | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) throw sysError(-fd, 'open', path);
  } else {
    throw new Error(`${path} is neither a socket nor a character device`);
  }
  return new FdChannel(fd) as unknown as FmChannel;
}

export const quickjsFmIo: FmIo = { findPort: () => findPort(), exists: (path) => os.stat(path)[1] === 0, open };
