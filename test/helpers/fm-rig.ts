// An FM-API server over a real CapacityManager (real shm pool, stub
// delivery, serial 0x1234) on a Unix socket, and a runner for an FM client
// command line against it: the built `cxl-mhd fm` by default, or any other
// (the guest client, dist/guest/cxl-mhd-fm). Closed after each test.
import { execFile } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach } from 'vitest';
import { FmApiServer } from '../../src/fmapi/index.js';
import { serveChannel } from '../../src/fmapi/server.js';
import { MiB, manager, pool, StubDelivery } from './capacity.js';
import { tempDir } from './pool.js';

export const NODE_FM = [process.execPath, 'dist/src/cli/main.js', 'fm'];

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

class Fine extends StubDelivery {
  override readonly unit = 2 * MiB;
}

export interface FmRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function fmRig(client: string[] = NODE_FM) {
  const p = pool(3);
  const m = manager(p, { 0: new Fine(), 1: new Fine(), 2: new Fine() });
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    serveChannel(s, new FmApiServer(m), {});
  });
  const path = join(tempDir(), 'fm.sock');
  await new Promise<void>((r) => server.listen(path, () => r()));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  const [cmd, ...pre] = client as [string, ...string[]];
  // Asynchronously: the server answering lives in this process.
  const fm = async (...args: string[]): Promise<FmRun> => {
    try {
      const r = await promisify(execFile)(cmd, [...pre, '--port', path, ...args]);
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout, stderr: x.stderr };
    }
  };
  return { p, m, fm, path };
}
