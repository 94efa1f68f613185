// A pool's POSIX shm objects as the Pool sees them: opened (sized when
// created) and mapped, unmapped and closed, unlinked if present.
import { isNativeError, native } from '../native/index.js';

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

export function unlinkQuietly(name: string): void {
  try {
    native.shmUnlink(name);
  } catch (e) {
    if (!isNativeError(e, 'ENOENT')) throw e;
  }
}
