// The installed daemon: `make install` into a prefix and into a DESTDIR,
// `npm install -g --prefix` from a fresh copy of the checkout, the installed
// command run from outside the checkout, the systemd unit checked by
// systemd-analyze, and `serve` started exactly as the unit starts it, as an
// unprivileged user, reporting readiness over a real NOTIFY_SOCKET.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const checkout = resolve(import.meta.dirname, '../..');
const LONG = 600_000;

/** The environment of a user's shell: no npm_config_* of the npx that runs vitest. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, ...extra };
}

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? tmpdir(), env: opts.env ?? cleanEnv(), encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, out: `${r.stdout}\n${r.stderr}` };
}

function makeInstall(vars: Record<string, string>, target = 'install') {
  const r = sh('make', ['--no-print-directory', '-C', checkout, target, ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)]);
  expect(r.code, r.out).toBe(0);
  return r;
}

/** Every symlink below `root` resolves inside it: the install does not lean on the checkout. */
function linksOutside(root: string): string[] {
  const bad: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isSymbolicLink()) {
        const target = resolve(dirname(p), readlinkSync(p));
        if (relative(root, target).startsWith('..')) bad.push(`${p} -> ${target}`);
      } else if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return bad;
}

/** pool create → status --json → fsck → destroy with the command found on PATH, run from outside the checkout. */
function poolRoundTrip(binDir: string, tag: string): void {
  const env = cleanEnv({ PATH: `${binDir}:${process.env.PATH}` });
  const cwd = tempDir('cxl-mhd-cwd-');
  const stateDir = tempDir();
  const pool = uniquePoolName(tag);
  const run = (...args: string[]) => sh('cxl-mhd', args, { cwd, env });
  const help = run('--help');
  expect(help.code, help.out).toBe(0);
  expect(help.stdout).toMatch(/Usage: cxl-mhd/);
  expect(help.stdout).toMatch(/serve/);
  const created = run('pool', 'create', '--pool', pool, '--capacity', '256M', '--heads', '2', '--state-dir', stateDir);
  expect(created.code, created.out).toBe(0);
  expect(created.stdout).toMatch(/created pool .*256M, 2 heads/);
  const status = run('status', '--pool', pool, '--state-dir', stateDir, '--json');
  expect(status.code, status.out).toBe(0);
  expect(JSON.parse(status.stdout)).toMatchObject({ pool, capacityBytes: 256 * 2 ** 20, fmldOwner: null });
  expect(run('fsck', '--pool', pool, '--state-dir', stateDir).stdout).toMatch(/clean/);
  const qemuArgs = run('qemu-args', '--pool', pool, '--head', '1', '--run-dir', '/run/cxl-mhd', '--state-dir', stateDir);
  expect(qemuArgs.code, qemuArgs.out).toBe(0);
  expect(qemuArgs.stdout).toContain(`/run/cxl-mhd/${pool}/head1.sock`);
  const destroyed = run('pool', 'destroy', '--pool', pool, '--state-dir', stateDir);
  expect(destroyed.code, destroyed.out).toBe(0);
  expect(existsSync(`/dev/shm/cxl-mhd.${pool}.mem`)).toBe(false);
  const bad = run('pool', 'create', '--pool', 'Bad/Name', '--capacity', '256M', '--heads', '2', '--state-dir', stateDir);
  expect(bad.code).toBe(1);
  expect(bad.stderr.trim().split('\n')).toHaveLength(1);
}

const analyze = sh('sh', ['-c', 'command -v systemd-analyze']).stdout.trim();

describe('make install PREFIX=<tmp>', () => {
  let root: string;
  let prefix: string;
  beforeAll(() => {
    // World-traversable, so the unprivileged user below can run the installed copy.
    // Not tempDir(): that is emptied after each test, and this install serves them all.
    root = mkdtempSync(join(tmpdir(), 'cxl-mhd-install-'));
    chmodSync(root, 0o755);
    prefix = join(root, 'usr');
    // CREATE_USER=no: this test must not add a user to the machine it runs on.
    makeInstall({ PREFIX: prefix, CREATE_USER: 'no' });
  }, LONG);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('puts cxl-mhd on the PATH as a self-contained copy that works outside the checkout', () => {
    const wrapper = readFileSync(join(prefix, 'bin', 'cxl-mhd'), 'utf8');
    expect(wrapper).toContain(`'${process.execPath}' '${prefix}/lib/cxl-mhd/dist/src/cli/main.js'`);
    expect(statSync(join(prefix, 'bin', 'cxl-mhd')).mode & 0o777).toBe(0o755);
    for (const f of [
      'package.json',
      'dist/src/cli/main.js',
      'native/build/Release/cxl_mhd.node',
      'node_modules/commander/package.json',
      'node_modules/pino/package.json',
    ])
      expect(existsSync(join(prefix, 'lib', 'cxl-mhd', f)), f).toBe(true);
    // Production dependencies only.
    for (const dev of ['typescript', 'vitest', '@biomejs', 'playwright-core'])
      expect(existsSync(join(prefix, 'lib', 'cxl-mhd', 'node_modules', dev)), dev).toBe(false);
    expect(linksOutside(prefix)).toEqual([]);
    poolRoundTrip(join(prefix, 'bin'), 'inst');
  });

  const why = analyze ? '' : ' (SKIPPED: systemd-analyze is not installed here; `apt-get install systemd` provides it)';
  it.skipIf(!analyze)(`installs a unit that systemd-analyze verify accepts, and verify really checks it${why}`, () => {
    const unit = join(prefix, 'lib', 'systemd', 'system', 'cxl-mhd@.service');
    const text = readFileSync(unit, 'utf8');
    expect(text).toContain(`ExecStart=${prefix}/bin/cxl-mhd serve --pool %i`);
    expect(text).not.toMatch(/@[A-Z]+@/);
    for (const line of [
      'Type=notify',
      'Restart=on-failure',
      'User=cxl-mhd',
      'RuntimeDirectory=cxl-mhd/%i',
      'StateDirectory=cxl-mhd/%i',
      'EnvironmentFile=/etc/cxl-mhd/%i.conf',
    ])
      expect(text).toContain(`\n${line}\n`);
    const ok = sh(analyze, ['verify', unit]);
    expect(ok.out.trim(), 'systemd-analyze verify printed warnings').toBe('');
    expect(ok.code).toBe(0);
    // The same unit with a missing binary is refused: verify looks at ExecStart for real.
    const broken = join(tempDir(), 'broken@.service');
    execFileSync('sh', ['-c', `sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/cxl-mhd|' '${unit}' > '${broken}'`]);
    const bad = sh(analyze, ['verify', broken]);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/not executable/);
  });

  describe('serve started as the unit starts it', () => {
    let serve: ChildProcess | undefined;
    let listener: ChildProcess | undefined;
    afterAll(() => {
      serve?.kill('SIGKILL');
      listener?.kill('SIGKILL');
    });

    it('runs as an unprivileged user, widens shm and sockets as configured, and sends READY=1 to NOTIFY_SOCKET', async () => {
      const unit = readFileSync(join(prefix, 'lib', 'systemd', 'system', 'cxl-mhd@.service'), 'utf8');
      const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
      expect(exec).toBeDefined();
      // What EnvironmentFile= would give: the example config, sourced by a shell.
      const example = join(prefix, 'share', 'doc', 'cxl-mhd', 'pool.conf.example');
      const serveArgs = sh('sh', ['-c', `set -a; . '${example}'; printf %s "$SERVE_ARGS"`]).stdout;
      expect(serveArgs).toMatch(/--mode 660/);
      const asRoot = process.getuid?.() === 0;
      const uid = asRoot ? 65534 : (process.getuid?.() ?? 0);
      const gid = asRoot ? 65534 : (process.getgid?.() ?? 0);
      // This machine has no cxl-mhd user or group: stand in the user we run as.
      const args = serveArgs
        .replace(/--capacity \S+/, '--capacity 256M')
        .replace(/--socket-group \S+/, `--socket-group ${gid}`)
        .split(/\s+/)
        .filter(Boolean);
      const pool = uniquePoolName('unit');
      const dirs = join(root, 'srv');
      const runDir = join(dirs, 'run');
      const stateDir = join(dirs, 'state');
      // What RuntimeDirectory=cxl-mhd/%i and StateDirectory=cxl-mhd/%i create: root's 0755
      // parents, the instance's own 0700 directory.
      mkdirSync(dirs, { mode: 0o755 });
      for (const [parent, d] of [
        [runDir, join(runDir, pool)],
        [stateDir, join(stateDir, pool)],
      ] as const) {
        mkdirSync(parent, { mode: 0o755 });
        mkdirSync(d, { mode: 0o700 });
        if (asRoot) chownSync(d, uid, gid);
      }
      const argv = (exec as string)
        .split(' ')
        .flatMap((w) =>
          w === '$SERVE_ARGS' ? args : [w.replace('%i', pool).replace('/run/cxl-mhd', runDir).replace('/var/lib/cxl-mhd', stateDir)],
        );
      expect(argv.slice(0, 4)).toEqual([join(prefix, 'bin', 'cxl-mhd'), 'serve', '--pool', pool]);

      // A real notify socket: a unix datagram socket, as systemd's, read by Python.
      const notifyPath = join(dirs, 'notify.sock');
      listener = spawn('/usr/bin/python3', [
        '-c',
        `import socket,os,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); os.chmod(sys.argv[1],0o777)
print("listening",flush=True)
while True: print(s.recv(4096).decode().replace("\\n"," "),flush=True)`,
        notifyPath,
      ]);
      let notes = '';
      listener.stdout?.on('data', (b: Buffer) => {
        notes += b.toString();
      });
      await waitFor(() => notes.includes('listening'), 'the notify listener');

      const wrap = asRoot ? ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'] : [];
      const cmd = [...wrap, ...argv];
      serve = spawn(cmd[0] as string, cmd.slice(1), { cwd: '/', env: cleanEnv({ NOTIFY_SOCKET: notifyPath }) });
      let out = '';
      serve.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
      });
      serve.stderr?.on('data', (b: Buffer) => {
        out += b.toString();
      });
      const exited = new Promise<number | null>((r) => serve?.once('exit', (code) => r(code)));
      await waitFor(() => /READY=1/.test(notes) || serve?.exitCode !== null, 'READY=1');
      expect(serve.exitCode, out).toBeNull();
      expect(out).toMatch(/ready/);
      // setpriv execs, and so does the wrapper: the pid we spawned is node's, the main pid.
      expect(notes).toMatch(new RegExp(`MAINPID=${serve.pid}\\b`));
      expect(notes).toMatch(new RegExp(`STATUS=serving pool ${pool}`));

      // Owned by the service user; --mode 660 and --socket-group as configured.
      const mem = statSync(`/dev/shm/cxl-mhd.${pool}.mem`);
      expect([mem.uid, mem.mode & 0o777]).toEqual([uid, 0o660]);
      const sock = lstatSync(join(runDir, pool, 'head0.sock'));
      expect([sock.isSocket(), sock.uid, sock.gid, sock.mode & 0o777]).toEqual([true, uid, gid, 0o660]);
      expect(statSync(join(runDir, pool)).mode & 0o777).toBe(0o750);
      expect(existsSync(join(stateDir, pool, 'journal.jsonl'))).toBe(true);

      serve.kill('SIGTERM');
      expect(await exited, out).toBe(0);
      const env = cleanEnv({ PATH: `${join(prefix, 'bin')}:${process.env.PATH}` });
      const status = sh('cxl-mhd', ['status', '--pool', pool, '--state-dir', stateDir, '--run-dir', runDir], { env });
      expect(status.code, status.out).toBe(0);
      expect(status.stdout).toMatch(/backend: not running/);
      expect(sh('cxl-mhd', ['pool', 'destroy', '--pool', pool, '--state-dir', stateDir], { env }).code).toBe(0);
    });
  });

  it('make uninstall removes what make install put there', () => {
    makeInstall({ PREFIX: prefix }, 'uninstall');
    const left: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else left.push(relative(prefix, join(d, e.name)));
      }
    };
    walk(prefix);
    expect(left).toEqual([]);
  });
});

describe('make install DESTDIR=<tmp> PREFIX=/usr/local', () => {
  it(
    'stages everything under DESTDIR with paths for the real prefix; sysusers.d makes the service user',
    () => {
      const destdir = tempDir('cxl-mhd-destdir-');
      const hadBin = existsSync('/usr/local/bin/cxl-mhd');
      makeInstall({ DESTDIR: destdir, PREFIX: '/usr/local' });
      expect(existsSync('/usr/local/bin/cxl-mhd')).toBe(hadBin);
      const wrapper = readFileSync(join(destdir, 'usr/local/bin/cxl-mhd'), 'utf8');
      expect(wrapper).toContain("'/usr/local/lib/cxl-mhd/dist/src/cli/main.js'");
      expect(wrapper).not.toContain(destdir);
      const unit = readFileSync(join(destdir, 'usr/local/lib/systemd/system/cxl-mhd@.service'), 'utf8');
      expect(unit).toContain('ExecStart=/usr/local/bin/cxl-mhd serve --pool %i');
      expect(unit).not.toContain(destdir);
      expect(existsSync(join(destdir, 'etc/passwd'))).toBe(false); // a staged install creates no user
      // The staged copy runs (from DESTDIR, before it is moved into place).
      const help = sh(process.execPath, [join(destdir, 'usr/local/lib/cxl-mhd/dist/src/cli/main.js'), '--help']);
      expect(help.code, help.out).toBe(0);

      // The sysusers.d entry creates the user and its group in that root.
      const sysusers = join(destdir, 'usr/local/lib/sysusers.d/cxl-mhd.conf');
      if (sh('sh', ['-c', 'command -v systemd-sysusers']).code === 0) {
        mkdirSync(join(destdir, 'etc'), { recursive: true });
        const r = sh('systemd-sysusers', [`--root=${destdir}`, sysusers]);
        expect(r.code, r.out).toBe(0);
        expect(readFileSync(join(destdir, 'etc/passwd'), 'utf8')).toMatch(
          /^cxl-mhd:x:\d+:\d+:cxl-mhd backend:\/var\/lib\/cxl-mhd:\/usr\/sbin\/nologin$/m,
        );
        expect(readFileSync(join(destdir, 'etc/group'), 'utf8')).toMatch(/^cxl-mhd:x:\d+:$/m);
      } else {
        console.warn('install-root test: systemd-sysusers is not installed; the sysusers.d entry was not exercised');
      }

      makeInstall({ DESTDIR: destdir, PREFIX: '/usr/local' }, 'uninstall');
      expect(existsSync(join(destdir, 'usr/local/bin/cxl-mhd'))).toBe(false);
      expect(existsSync(join(destdir, 'usr/local/lib/cxl-mhd'))).toBe(false);
      expect(existsSync(join(destdir, 'usr/local/lib/systemd/system/cxl-mhd@.service'))).toBe(false);
    },
    LONG,
  );
});

describe('npm install -g --prefix <tmp> from a fresh checkout', () => {
  it(
    'builds the addon and dist in the checkout and links cxl-mhd into the prefix',
    () => {
      // A fresh clone of this working tree: tracked and new files, nothing built, no node_modules.
      const clone = join(tempDir('cxl-mhd-clone-'), 'cxl-mhd');
      const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: checkout, encoding: 'utf8' })
        .split('\0')
        .filter(Boolean);
      for (const f of files) if (existsSync(join(checkout, f))) cpSync(join(checkout, f), join(clone, f), { recursive: true });
      expect(existsSync(join(clone, 'node_modules'))).toBe(false);
      expect(existsSync(join(clone, 'dist'))).toBe(false);
      const prefix = tempDir('cxl-mhd-npm-');
      const r = sh('npm', ['install', '-g', '--no-audit', '--no-fund', '--prefix', prefix, '.'], { cwd: clone });
      expect(r.code, r.out).toBe(0);
      expect(existsSync(join(clone, 'native/build/Release/cxl_mhd.node'))).toBe(true);
      expect(existsSync(join(clone, 'dist/src/cli/main.js'))).toBe(true);
      expect(realpathSync(join(prefix, 'bin', 'cxl-mhd'))).toBe(realpathSync(join(clone, 'dist/src/cli/main.js')));
      poolRoundTrip(join(prefix, 'bin'), 'npmg');
    },
    LONG,
  );
});

async function waitFor(ok: () => boolean, what: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
