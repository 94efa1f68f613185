// A pool's POSIX shm objects as the Pool sees them: opened (sized when
// created) and mapped, unmapped and closed, unlinked if present, and the
// ownership rule an existing object must pass before it is trusted.
import { fstatSync } from 'node:fs';
import { isNativeError, native } from '../native/index.js';
import { PoolError } from './errors.js';

export interface Mapped {
  fd: number;
  buf: ArrayBuffer;
}

export function openObject(name: string, flags: number, mode: number, size: number | null, writable: boolean): Mapped {
  const fd = native.shmOpen(name, flags, mode);
  try {
    if (size !== null) native.ftruncate(fd, size);
    const bytes = native.fstatSize(fd);
    const buf = native.mmap(fd, bytes, writable);
    return { fd, buf };
  } catch (e) {
    native.close(fd);
    throw e;
  }
}

export function closeObject(m: Mapped | null): void {
  if (!m) return;
  native.munmap(m.buf);
  native.close(m.fd);
}

/** Whether a shm object of that name exists (whoever owns it). */
export function objectExists(name: string): boolean {
  try {
    native.close(native.shmOpen(name, native.constants.SHM_RDONLY, 0));
    return true;
  } catch (e) {
    if (isNativeError(e, 'ENOENT')) return false;
    throw e;
  }
}

/** True if some process holds the writer lock (flock) on the object: probed by trying it. */
export function objectLocked(name: string): boolean {
  const fd = native.shmOpen(name, native.constants.SHM_RDONLY, 0);
  try {
    native.flock(fd, true, true);
    return false;
  } catch (e) {
    if (isNativeError(e, 'EWOULDBLOCK') || isNativeError(e, 'EAGAIN')) return true;
    throw e;
  } finally {
    native.close(fd);
  }
}

export function unlinkQuietly(name: string): void {
  try {
    native.shmUnlink(name);
  } catch (e) {
    if (!isNativeError(e, 'ENOENT')) throw e;
  }
}

function euid(): number {
  return typeof process.geteuid === 'function' ? process.geteuid() : 0;
}

export interface TrustOptions {
  /** The pool's mode as created (the journal's pool-create); no bit beyond it is accepted. */
  mode: number;
  /** Root may read (status, fsck) a pool another uid serves, never write one. */
  readOnly: boolean;
}

/**
 * /dev/shm is world-writable and empties at reboot while the journal stays:
 * anyone may create a pool's objects first. An object is trusted only if it
 * is a regular file owned by the uid that runs us (root reading another
 * service user's pool excepted) and no more open than the pool's mode, as
 * OpenSSH treats its key files. The refusal says whose it is.
 */
export function checkObject(fd: number, name: string, pool: string, opts: TrustOptions): void {
  const st = fstatSync(fd);
  const me = euid();
  const where = `pool "${pool}": shm object /dev/shm${name}`;
  if (!st.isFile()) throw new PoolError('NOT_OWNED', `${where} is not a regular file; refusing it`);
  if (st.uid !== me && !(opts.readOnly && me === 0)) {
    throw new PoolError(
      'NOT_OWNED',
      `${where} belongs to uid ${st.uid}, not to uid ${me} that runs this; refusing it (someone else created it: remove it, then start again)`,
      { uid: st.uid },
    );
  }
  const extra = st.mode & 0o7777 & ~opts.mode;
  if (extra !== 0) {
    throw new PoolError(
      'NOT_OWNED',
      `${where} (uid ${st.uid}) has mode 0${(st.mode & 0o7777).toString(8)}, more open than the pool's 0${opts.mode.toString(8)}; refusing it (remove it, or chmod it back)`,
      { uid: st.uid, mode: st.mode & 0o7777 },
    );
  }
}

/** shm_open refuses a symbolic link (O_NOFOLLOW, ELOOP): said in words; any other error is returned as it is. */
export function refusedLink(e: unknown, name: string, pool: string): unknown {
  return isNativeError(e, 'ELOOP')
    ? new PoolError('NOT_OWNED', `pool "${pool}": shm object /dev/shm${name} is a symbolic link; refusing it`)
    : e;
}

/** Opens an existing object read-only just to check it (the data object, which QEMU maps, not us); absent is fine. */
export function checkObjectByName(name: string, pool: string, opts: TrustOptions): void {
  let fd: number;
  try {
    fd = native.shmOpen(name, native.constants.SHM_RDONLY, 0);
  } catch (e) {
    if (isNativeError(e, 'ENOENT')) return;
    throw refusedLink(e, name, pool);
  }
  try {
    checkObject(fd, name, pool, opts);
  } finally {
    native.close(fd);
  }
}
