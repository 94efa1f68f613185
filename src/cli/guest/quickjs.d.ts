// The parts of QuickJS's `std` and `os` modules (quickjs-libc) the guest FM
// client uses; the static binary (guest/fm-main.c) registers them as qjs:std and qjs:os.
declare module 'qjs:std' {
  interface StdFile {
    puts(s: string): void;
    flush(): void;
    readAsString(): string;
    close(): number;
  }
  /** null when it cannot be opened. */
  export function open(path: string, mode: string): StdFile | null;
  export const out: StdFile;
  export const err: StdFile;
  export function exit(code: number): never;
  export function getenviron(): Record<string, string>;
  export function strerror(errno: number): string;
}

declare module 'qjs:os' {
  export const O_RDWR: number;
  /** An fd, or minus the errno. */
  export function open(path: string, flags: number, mode?: number): number;
  export function close(fd: number): number;
  export function read(fd: number, buf: ArrayBuffer, offset: number, length: number): number;
  export function write(fd: number, buf: ArrayBuffer, offset: number, length: number): number;
  export function stat(path: string): [{ mode: number }, number];
  export function readdir(path: string): [string[], number];
  export function isatty(fd: number): boolean;
  export function ttyGetWinSize(fd: number): [number, number] | null;
  export function setReadHandler(fd: number, fn: (() => void) | null): void;
  export function setWriteHandler(fd: number, fn: (() => void) | null): void;
  export function setTimeout(fn: () => void, ms: number): unknown;
  export function clearTimeout(handle: unknown): void;
}

/** Set by the binary's C main (guest/fm-main.c): connects a Unix stream socket; an fd, or minus the errno. */
declare function cxlmhdConnectUnix(path: string): number;
