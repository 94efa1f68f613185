// The Node FM client as a guest runs it (`CXLMHD_FM_NODE=1 cxl-mhd fm`,
// through guest/cxl-mhd; without it the guest runs the static cxl-mhd-fm,
// test/cli/fm-guest.test.ts) needs no native addon: the built CLI is copied where no addon
// can be found and asked for Identify over a real FM-API socket.
import { execFile } from 'node:child_process';
import { cpSync, symlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { FmApiServer, serveChannel } from '../../src/fmapi/index.js';
import { FakeBackend } from '../helpers/fmapi-backend.js';
import { tempDir } from '../helpers/pool.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('guest-side FM client', () => {
  it('runs `fm identify` from a copy of dist/ with no native addon anywhere above it', async () => {
    const root = tempDir();
    cpSync('dist', join(root, 'dist'), { recursive: true });
    symlinkSync(resolve('node_modules'), join(root, 'node_modules'));
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      serveChannel(s, new FmApiServer(new FakeBackend()), {});
    });
    const path = join(root, 'fm.sock');
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const probe = [
      "import { createRequire } from 'node:module';",
      `const { main } = await import(${JSON.stringify(join(root, 'dist/src/cli/main.js'))});`,
      "const code = await main(['fm', 'identify', '--json', '--port', process.argv[1]]);",
      "const addons = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node'));",
      'console.log(JSON.stringify({ code, addons }));',
    ].join('\n');
    // Asynchronously: the FM-API server that answers lives in this process.
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe, path], { cwd: root });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    const result = JSON.parse(lines.pop() as string) as { code: number; addons: string[] };
    expect(result).toEqual({ code: 0, addons: [] });
    const identify = JSON.parse(lines.join('\n')) as { componentType: number; serialNumber: string };
    expect(identify.componentType).toBe(3);
    expect(identify.serialNumber).toMatch(/^0x[0-9a-f]+$/);
  });
});
