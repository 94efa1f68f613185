// Opening the FM-LD channel from the client's side: a Unix socket path (tests,
// host tools) or the guest's /dev/vportNpM character device, which
// findFmldPort finds by its virtio port name. Node's net.Socket
// refuses a character device fd (libuv calls it a file), and an fs stream
// parks a thread-pool thread in a blocking read that close() cannot cut short,
// so a device is opened O_NONBLOCK and polled: a request/response client
// loses nothing to a few milliseconds of polling.
import { constants, existsSync, close as fsClose, read as fsRead, write as fsWrite, open, readdirSync, readFileSync, stat } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { FMLD_PORT_NAME } from '../qemu/lite.js';

/** The guest's FM-LD port: the /dev/vportNpM whose sysfs name is cxl-mhd.fmld; null when this head has none. */
export function findFmldPort(sysRoot = '/sys/class/virtio-ports'): string | null {
  if (!existsSync(sysRoot)) return null;
  for (const port of readdirSync(sysRoot)) {
    try {
      if (readFileSync(join(sysRoot, port, 'name'), 'utf8').trim() === FMLD_PORT_NAME) return `/dev/${port}`;
    } catch {
      // a port without a name
    }
  }
  return null;
}

const POLL_MIN_MS = 1;
const POLL_MAX_MS = 20;
const READ_BYTES = 64 * 1024;

function isWouldBlock(e: NodeJS.ErrnoException | null): boolean {
  return e?.code === 'EAGAIN' || e?.code === 'EWOULDBLOCK';
}

/**
 * A Duplex over a non-blocking fd. Reads poll with backoff; end of file
 * (virtio-serial reports it while the host side is disconnected) ends the
 * stream. The fd is the stream's: destroy() closes it.
 */
export class FdStream extends Duplex {
  private readTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  private pollMs = POLL_MIN_MS;
  private reading = false;

  constructor(readonly fd: number) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.readOnce();
  }

  private readOnce(): void {
    if (this.destroyed) return;
    const buf = Buffer.allocUnsafe(READ_BYTES);
    fsRead(this.fd, buf, 0, buf.length, null, (err, n) => {
      if (this.destroyed) return;
      if (isWouldBlock(err)) {
        this.readTimer = setTimeout(() => this.readOnce(), this.pollMs);
        this.pollMs = Math.min(this.pollMs * 2, POLL_MAX_MS);
        return;
      }
      if (err) {
        this.destroy(err);
        return;
      }
      this.pollMs = POLL_MIN_MS;
      this.reading = false;
      if (n === 0) {
        this.push(null);
        return;
      }
      if (this.push(buf.subarray(0, n))) this._read();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    let at = 0;
    let waitMs = POLL_MIN_MS;
    const step = () => {
      if (this.destroyed) return done(new Error('stream destroyed'));
      fsWrite(this.fd, chunk, at, chunk.length - at, null, (err, n) => {
        if (isWouldBlock(err)) {
          this.writeTimer = setTimeout(step, waitMs);
          waitMs = Math.min(waitMs * 2, POLL_MAX_MS);
          return;
        }
        if (err) return done(err);
        at += n;
        if (at < chunk.length) return step();
        done();
      });
    };
    step();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    clearTimeout(this.readTimer);
    clearTimeout(this.writeTimer);
    fsClose(this.fd, (closeErr) => cb(err ?? closeErr ?? null));
  }
}

/** Connects to a Unix socket, or opens a character device or FIFO, as one Duplex. */
export async function openPort(path: string): Promise<Duplex> {
  const st = await promisify(stat)(path);
  if (st.isSocket()) {
    return await new Promise<Duplex>((resolve, reject) => {
      const sock = createConnection({ path });
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(sock);
      });
      sock.once('error', reject);
    });
  }
  if (!st.isCharacterDevice() && !st.isFIFO()) throw new Error(`${path} is neither a socket nor a character device`);
  const fd = await promisify(open)(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOCTTY);
  return new FdStream(fd);
}
