// Node's globals as far as the fm commands and commander use them, on
// QuickJS: `process` (argv, env, exitCode, stdout/stderr), console and
// timers, set on globalThis. The entry (main.ts) imports it first, and the
// bundle's `node:process` is globalThis.process (scripts/build-fm-client.mjs).
import * as os from 'qjs:os';
import * as std from 'qjs:std';

function stream(fd: 1 | 2, file: { puts(s: string): void; flush(): void }) {
  const isTTY = os.isatty(fd);
  return {
    isTTY,
    get columns(): number | undefined {
      return isTTY ? (os.ttyGetWinSize(fd)?.[0] ?? undefined) : undefined;
    },
    write(s: string): boolean {
      file.puts(s);
      file.flush();
      return true;
    },
  };
}

const proc = {
  argv: ['cxl-mhd'] as string[],
  execArgv: [] as string[],
  env: std.getenviron(),
  exitCode: undefined as number | undefined,
  platform: 'linux',
  versions: {},
  stdout: stream(1, std.out),
  stderr: stream(2, std.err),
  exit(code?: number): never {
    std.out.flush();
    std.exit(code ?? 0);
  },
  on(): void {},
};

const g = globalThis as Record<string, unknown>;
g.process = proc;
const line =
  (out: { write(s: string): boolean }) =>
  (...a: unknown[]) => {
    out.write(`${a.map((x) => (typeof x === 'string' ? x : x instanceof Error ? String(x) : JSON.stringify(x))).join(' ')}\n`);
  };
g.console = { log: line(proc.stdout), error: line(proc.stderr), warn: line(proc.stderr) };
// commander's errors call it; QuickJS records the stack when an Error is made.
const E = Error as unknown as { captureStackTrace?: (o: object) => void };
E.captureStackTrace ??= () => undefined;
g.setTimeout = (fn: () => void, ms = 0) => os.setTimeout(fn, ms);
g.clearTimeout = (h: unknown) => {
  if (h !== undefined) os.clearTimeout(h);
};
