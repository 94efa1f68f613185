// A real `cxl-mhd serve --http` with three real paused QEMU heads for the
// northbound tests: the pool's dirs sit under XDG_RUNTIME_DIR and
// XDG_STATE_HOME so the commands of docs/redfish.md (which use the default
// dirs) run verbatim, a `cxl-mhd` on PATH, and a users file made with
// `cxl-mhd http-passwd`.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempDir, uniquePoolName } from './pool.js';
import { type BackendProcess, eventually, type HeadVm, startBackend, startHead, status, type TestPool } from './qemu.js';

export const RF_USER = 'operator';
export const RF_PASS = 'correct horse';

export interface NorthboundRig {
  pool: TestPool;
  backend: BackendProcess;
  vms: HeadVm[];
  /** host:port of the service */
  rf: string;
  url: string;
  env: NodeJS.ProcessEnv;
  basic: string;
  /** The users file serve was given. */
  users: string;
}

export function docBlocks(): Map<string, string> {
  const md = readFileSync('docs/redfish.md', 'utf8');
  const out = new Map<string, string>();
  for (const m of md.matchAll(/```sh test:([a-z-]+)\n([\s\S]*?)```/g)) out.set(m[1] as string, m[2] as string);
  return out;
}

export function sh(script: string, env: NodeJS.ProcessEnv): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', script], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function startRig(
  tag = 'rf',
  opts: { serveArgs?: (base: string) => string[]; extraUsers?: string; port?: number } = {},
): Promise<NorthboundRig> {
  const base = tempDir('cxl-mhd-rf-');
  const xdgRun = join(base, 'xdg-run');
  const xdgState = join(base, 'xdg-state');
  const logDir = join(base, 'logs');
  mkdirSync(logDir, { recursive: true });
  const pool: TestPool = {
    name: uniquePoolName(tag),
    runDir: join(xdgRun, 'cxl-mhd'),
    stateDir: join(xdgState, 'cxl-mhd'),
    logDir,
    dirArgs: ['--run-dir', join(xdgRun, 'cxl-mhd'), '--state-dir', join(xdgState, 'cxl-mhd')],
  };
  const bin = join(base, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'cxl-mhd'), `#!/bin/sh\nexec "${process.execPath}" "${resolve('dist/src/cli/main.js')}" "$@"\n`, { mode: 0o755 });
  const env = {
    ...process.env,
    PATH: `${bin}:/usr/bin:/bin`,
    XDG_RUNTIME_DIR: xdgRun,
    XDG_STATE_HOME: xdgState,
    POOL: pool.name,
    RF_USER,
    RF_PASS,
  };
  const hashed = spawnSync(join(bin, 'cxl-mhd'), ['http-passwd', RF_USER], { input: `${RF_PASS}\n`, encoding: 'utf8', env });
  if (hashed.status !== 0) throw new Error(`http-passwd failed: ${hashed.stderr}`);
  const users = join(base, 'users');
  writeFileSync(users, `# made by cxl-mhd http-passwd\n${hashed.stdout}${opts.extraUsers ?? ''}`, { mode: 0o600 });
  chmodSync(users, 0o600);
  const backend = await startBackend(pool, [
    '--capacity',
    '2G',
    '--heads',
    '3',
    '--http',
    `127.0.0.1:${opts.port ?? 0}`,
    '--http-users',
    users,
    ...(opts.serveArgs?.(base) ?? []),
  ]);
  const vms: HeadVm[] = [];
  const shapes = [{ static: '256M@0' }, { static: '256M@0', sparePorts: 2 }, { delivery: 'dcd' as const }];
  for (const [h, shape] of shapes.entries()) {
    vms.push(await startHead(pool, h, shape));
    await eventually(() => status(pool).heads[h]?.attached, `head ${h} attached`);
  }
  const rec = JSON.parse(readFileSync(join(pool.runDir, pool.name, 'http.json'), 'utf8')) as { url: string };
  const rf = rec.url.replace(/^https?:\/\//, '');
  return {
    pool,
    backend,
    vms,
    rf,
    url: rec.url,
    env: { ...env, RF: rf },
    basic: `Basic ${Buffer.from(`${RF_USER}:${RF_PASS}`).toString('base64')}`,
    users,
  };
}

export async function ldDevices(vm: HeadVm): Promise<{ id: string; offset: number; size: number }[]> {
  const list = await vm.monitor.execute<{ name: string }[]>('qom-list', { path: '/machine/peripheral' });
  const out = [];
  for (const p of list.filter((x) => x.name.startsWith('cxl-mhd-ld-'))) {
    const backend = await vm.monitor.execute<string>('qom-get', { path: `/machine/peripheral/${p.name}`, property: 'volatile-memdev' });
    const get = (property: string) => vm.monitor.execute<unknown>('qom-get', { path: backend, property });
    out.push({ id: p.name, offset: Number(await get('offset')), size: Number(await get('size')) });
  }
  return out;
}
