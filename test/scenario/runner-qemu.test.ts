// `cxl-mhd run` with real QEMU and guests, as a CI job runs it (the built
// CLI in a child process): the `kernel:` example with the Debian kernel and
// its module tree passed as if they were the user's, with a backend restart
// and a killed head, plus an expectation that fails on purpose (exit 1, the
// JUnit file names exactly that step, with its output); and Ctrl-C in the
// middle of a step, after which no QEMU, socket or shm object is left.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findTrixieRoot } from '../../src/qemu/binary.js';
import { tempDir } from '../helpers/pool.js';

const CLI = join('dist', 'src', 'cli', 'main.js');
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function debianKernel(): { kernel: string; modules: string } {
  const root = findTrixieRoot();
  if (root === null) throw new Error('no trixie root: run `make setup`');
  const version = readdirSync(join(root, 'lib', 'modules'))
    .sort()
    .pop() as string;
  return { kernel: join(root, 'boot', `vmlinuz-${version}`), modules: join(root, 'lib', 'modules', version) };
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string; done: Promise<number | null> } {
  let out = '';
  const child = spawn(process.execPath, [CLI, 'run', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, done };
}

/** Processes whose command line mentions `needle` (QEMU names the pool in its arguments). */
function processesWith(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function testcases(xml: string): { name: string; body: string }[] {
  return [...xml.matchAll(/<testcase [^>]*name="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map((m) => ({
    name: m[1] ?? '',
    body: m[2] ?? '',
  }));
}

describe('cxl-mhd run with real guests', () => {
  it("boots the user's kernel with its modules; a failing expectation fails exactly that step, in the exit status and the JUnit file", async () => {
    const { kernel, modules } = debianKernel();
    const dir = tempDir('cxl-mhd-scn-');
    const file = join(dir, 'kernel.yaml');
    writeFileSync(
      file,
      `${readFileSync(join('examples', 'ci', 'kernel.yaml'), 'utf8')}
  - name: the user's whole module index came along (not the project's subset)
    guest: 0
    run: wc -l < /lib/modules/$(uname -r)/modules.dep
    expect: /^[0-9]{4,}$/m

  - name: this expectation fails on purpose
    guest: 0
    run: |
      echo "memdevs here: $(ls /sys/bus/cxl/devices | grep '^mem' | tr '\\n' ' ')"
      echo "a word on stderr" >&2
    expect: mem7

  - name: never runs
    host: "true"
`,
    );
    const junit = join(dir, 'results.xml');
    const run = runCli([file, '--junit', junit], { KERNEL: kernel, MODULES: modules });
    const code = await run.done;
    const out = run.output();
    const pool = /pool (run-\d+):/.exec(out)?.[1];
    try {
      expect(code).toBe(1);
      expect(out).toMatch(/^FAIL 11 - this expectation fails on purpose: stdout does not contain mem7/m);
      expect(out).toMatch(/^skip 12 - never runs: not run: an earlier step failed$/m);
      expect(out).toMatch(/12 steps: 10 passed, 1 failed, 1 skipped/);
      const xml = readFileSync(junit, 'utf8');
      expect(xml).toMatch(/<testsuite name="your-kernel" tests="12" failures="1" errors="0" skipped="1"/);
      const cases = testcases(xml);
      expect(cases.map((c) => c.name)).toHaveLength(12);
      const failed = cases.filter((c) => c.body.includes('<failure'));
      expect(failed.map((c) => c.name)).toEqual(['11 this expectation fails on purpose']);
      const body = failed[0]?.body ?? '';
      expect(body).toContain('<failure message="stdout does not contain mem7" type="run">');
      expect(body).toMatch(/<system-out>memdevs here: mem0 [^<]*<\/system-out>/);
      expect(body).toMatch(/<system-err>a word on stderr\n\n--- head 0 console \(last lines\)\n[\s\S]*CXLMHD-READY/);
      expect(cases.filter((c) => c.body.includes('<skipped')).map((c) => c.name)).toEqual(['12 never runs']);
      // The kernel and modules were the ones given, and the run cleaned up after itself.
      expect(out).toContain(`booting ${kernel}`);
      expect(pool).toBeDefined();
      expect(processesWith(pool as string)).toEqual([]);
      expect(readdirSync('/dev/shm').filter((f) => f.includes(pool as string))).toEqual([]);
      // A failed run keeps its consoles, but no sockets or run dirs.
      const kept = /consoles and logs: (\S+)/.exec(out)?.[1] as string;
      expect(readdirSync(kept).sort()).toEqual(expect.arrayContaining(['backend.log', 'head0-console.log', 'head1-console.log']));
      expect(readdirSync(kept).filter((f) => f.endsWith('.sock') || f.startsWith('xdg-'))).toEqual([]);
      rmSync(kept, { recursive: true, force: true });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- cxl-mhd run said:\n${out}`);
    }
  }, 1_200_000);

  it('Ctrl-C in the middle of a step leaves no QEMU, socket or shm object', async () => {
    const dir = tempDir('cxl-mhd-scn-');
    const file = join(dir, 'sleep.yaml');
    writeFileSync(
      file,
      `pool: { capacity: 1G, heads: 1 }
heads: [{ id: 0, static: 256M@0 }]
steps:
  - name: a long step
    guest: 0
    run: sleep 600
    timeout: 20m
`,
    );
    const run = runCli([file, '--junit', join(dir, 'j.xml')]);
    const deadline = Date.now() + 900_000;
    while (!run.output().includes('guest agent answers') && run.child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 3000));
    const out0 = run.output();
    const pool = /pool (run-\d+):/.exec(out0)?.[1] as string;
    const qemuPid = Number(/QEMU started \(pid (\d+)\)/.exec(out0)?.[1]);
    const work = /consoles in (\S+)/.exec(out0)?.[1] as string;
    try {
      expect(out0).toContain('guest agent answers');
      expect(processesWith(pool)).toContain(qemuPid);
      expect(readdirSync('/dev/shm').filter((f) => f.includes(pool)).length).toBeGreaterThan(0);
      run.child.kill('SIGINT');
      expect(await run.done).toBe(130);
      const out = run.output();
      expect(out).toContain('SIGINT: stopping the heads and cleaning up');
      expect(out).toMatch(/1 steps: 0 passed, 0 failed, 1 skipped .*\(interrupted\)/);
      expect(existsSync(`/proc/${qemuPid}`)).toBe(false);
      expect(processesWith(pool)).toEqual([]);
      expect(readdirSync('/dev/shm').filter((f) => f.includes(pool))).toEqual([]);
      expect(readdirSync(work).filter((f) => f.endsWith('.sock') || f.startsWith('xdg-'))).toEqual([]);
      expect(readFileSync(join(dir, 'j.xml'), 'utf8')).toContain('<error message="interrupted (SIGINT/SIGTERM)" type="interrupted">');
      rmSync(work, { recursive: true, force: true });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- cxl-mhd run said:\n${run.output()}`);
    }
  }, 1_200_000);
});

describe('cxl-mhd run with a distribution disk', () => {
  it("boots a Debian disk (systemd, the distribution's own qemu-guest-agent) with the kernel and initramfs passed in", async () => {
    const { kernel } = debianKernel();
    const root = findTrixieRoot() as string;
    const initrd = join(root, 'boot', kernel.split('/').pop()?.replace('vmlinuz', 'initrd.img') as string);
    const dir = tempDir('cxl-mhd-disk-');
    // The trixie root as an ext4 image (mke2fs -d: no mount, no loop device).
    const disk = join(dir, 'debian.img');
    const mk = spawnSync('mke2fs', ['-q', '-t', 'ext4', '-d', root, '-L', 'root', '-F', disk, '1536M'], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`mke2fs: ${mk.stderr}`);
    const file = join(dir, 'disk.yaml');
    writeFileSync(
      file,
      `name: debian-disk
pool: { capacity: 1G, heads: 1 }
guest:
  kernel: ${kernel}
  initrd: ${initrd}
  disk: debian.img
  append: root=/dev/vda rw init=/usr/lib/systemd/systemd systemd.firstboot=off
  memory: 1G
heads: [{ id: 0, static: 256M@0 }]
steps:
  - name: the distribution's agent answers from systemd's service
    guest: 0
    run: systemctl is-active qemu-guest-agent; cat /etc/debian_version
    expect: /^active\\n13\\./
  - name: the distribution's cxl(1) sees the memdev
    guest: 0
    run: cxl list -M
    expect: /"memdev":"mem0"/
    retry: 60s
`,
    );
    const run = runCli([file, '--tap']);
    const code = await run.done;
    const out = run.output();
    try {
      expect(code).toBe(0);
      expect(out).toMatch(/^1\.\.2$/m);
      expect(out).toMatch(/^ok 1 - the distribution's agent answers/m);
      expect(out).toMatch(/^ok 2 - the distribution's cxl\(1\) sees the memdev/m);
      expect(out).toContain(`booting disk`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- cxl-mhd run said:\n${out}`);
    } finally {
      const kept = /consoles and logs: (\S+)/.exec(out)?.[1];
      if (kept) rmSync(kept, { recursive: true, force: true });
    }
  }, 1_800_000);
});
