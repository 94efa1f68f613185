// The scenario runner without guests: the loader's one-line errors at the
// right line and column, a fuzz of mutated files (one clear line each, never
// a stack trace), refusal before any QEMU starts, the reports, the pattern
// the host writes (byte-identical to the guests' daxpoke), the modules
// overlay, and the QEMU command line a head gets.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { findTrixieRoot } from '../../src/qemu/binary.js';
import {
  checkSchema,
  cpioNewc,
  initrdWithModules,
  junitXml,
  loadScenario,
  moduleFiles,
  parseScenario,
  passed,
  patternBytes,
  type QemuCondition,
  qemuConditionHolds,
  type RunReport,
  ScenarioFileError,
  type StepResult,
  tapLines,
  vmArgv,
} from '../../src/scenario/index.js';
import { cleanupPools, tempDir } from '../helpers/pool.js';

afterEach(cleanupPools);

const CLI = join('dist', 'src', 'cli', 'main.js');
const EXAMPLE = join('examples', 'ci', 'three-heads.yaml');
const example = readFileSync(EXAMPLE, 'utf8');

/** The error lines a text produces, or [] when it loads. */
function errorsOf(text: string, file = 'x.yaml'): string[] {
  try {
    parseScenario(text, file, {});
    return [];
  } catch (e) {
    if (e instanceof ScenarioFileError) return e.lines;
    throw e;
  }
}

const minimal = `pool: { capacity: 1G, heads: 2 }
heads:
  - { id: 0, static: 256M@0 }
steps:
  - name: hello
    guest: 0
    run: echo hi
    expect: hi
`;

describe('scenario files', () => {
  it('loads the examples, and the published schema accepts every example', () => {
    const s = loadScenario(EXAMPLE);
    expect(s.heads.map((h) => h.id)).toEqual([0, 1, 2]);
    expect(s.steps.map((x) => x.kind)).toContain('fm');
    expect(s.steps.find((x) => x.kind === 'read')?.pattern).toMatchObject({
      guests: [1, 2],
      memdev: 'mem0',
      size: 2 * 2 ** 20,
      seed: 0x5eed1n,
    });
    for (const f of readdirSync(join('examples', 'ci')).filter((n) => n.endsWith('.yaml') && !n.includes('gitlab'))) {
      expect(checkSchema(parseYaml(readFileSync(join('examples', 'ci', f), 'utf8'))), f).toEqual([]);
    }
  });

  it('the CI jobs build a kernel with the config fragment and run the kernel example with --junit', () => {
    const fragment = readFileSync(join('examples', 'ci', 'cxl-mhd.config'), 'utf8');
    for (const opt of ['CONFIG_CXL_BUS', 'CONFIG_CXL_REGION', 'CONFIG_DEV_DAX_CXL', 'CONFIG_VIRTIO_CONSOLE', 'CONFIG_9P_FS'])
      expect(fragment).toContain(`${opt}=y`);
    for (const f of ['gitlab-ci.yml', 'github-actions.yml']) {
      const text = readFileSync(join('examples', 'ci', f), 'utf8');
      const doc = parseYaml(text) as object;
      expect(Object.keys(doc).length, f).toBeGreaterThan(1);
      expect(text).toMatch(/merge_config\.sh -m \.config ci\/cxl-mhd\.config/);
      expect(text).toMatch(/make -j"\$\(nproc\)" bzImage modules/);
      expect(text).toMatch(/main\.js" run ci\/kernel\.yaml --junit cxl-mhd\.xml|main\.js run ci\/kernel\.yaml --junit cxl-mhd\.xml/);
    }
  });

  it('names the line and column of each mistake and what was expected', () => {
    expect(errorsOf(minimal)).toEqual([]);
    expect(errorsOf(minimal.replace('heads: 2', 'heads: two'))).toEqual(['x.yaml:1:30: expected the pool\'s head count, 1..32, got "two"']);
    expect(errorsOf(minimal.replace('    expect: hi', '    expekt: hi'))).toEqual([
      'x.yaml:8:5: unknown key "expekt": expected one of name, guest, run, fm, host, write, read, kill, restart, qemu, expect, expect-not, expect-exit, timeout, retry',
    ]);
    expect(errorsOf(minimal.replace('    run: echo hi\n', ''))).toEqual([
      'x.yaml:5:5: expected one of run, fm, host, write, read, kill, restart in this step',
    ]);
    expect(errorsOf(minimal.replace('    guest: 0\n', '    guest: 0\n    fm: identify\n'))).toEqual([
      'x.yaml:5:5: expected only one of run, fm, host, write, read, kill, restart in this step, got run and fm',
    ]);
    expect(errorsOf(minimal.replace('static: 256M@0', 'static: 256M@1G'))).toEqual([
      "x.yaml:3:22: expected a static window inside the pool's capacity: 256M@1G ends past it",
    ]);
    expect(errorsOf(minimal.replace('guest: 0', 'guest: 1'))).toEqual(['x.yaml:6:12: expected a head listed under heads, got 1']);
    expect(errorsOf(minimal.replace('capacity: 1G', 'capacity: 1G, capacity: 2G'))[0]).toMatch(/^x\.yaml:1:\d+: Map keys must be unique/);
    expect(errorsOf(`${minimal}    timeout: soon\n`)).toEqual([
      'x.yaml:9:14: expected a duration such as 500ms, 20s, 2m or a number of seconds, got "soon"',
    ]);
    expect(errorsOf(minimal.replace('heads:\n', 'guest: { kernel: /nonexistent/bzImage }\nheads:\n'))).toEqual([
      'x.yaml:2:18: expected an existing file for kernel: /nonexistent/bzImage does not exist',
    ]);
    expect(errorsOf(minimal.replace('heads:\n', 'guest: { kernel: $NO_SUCH_VAR/bzImage }\nheads:\n'))).toEqual([
      'x.yaml:2:18: expected a path whose variables are set: environment variable NO_SUCH_VAR is not set',
    ]);
    expect(
      errorsOf(
        `a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [${Array(20).fill('*a').join(', ')}]\nc: [${Array(20).fill('*b').join(', ')}]\n`,
      ),
    ).toEqual(['x.yaml:1:1: expected a plain YAML document: Excessive alias count indicates a resource exhaustion attack']);
    // Several mistakes: one line each.
    expect(errorsOf(minimal.replace('heads: 2', 'heads: 0').replace('expect: hi', 'expect-exit: 300'))).toHaveLength(2);
    expect(errorsOf('')).toEqual([
      'x.yaml:1:1: expected a scenario: a fresh pool, the heads that boot on it, and the steps run against them (docs/scenario.md), got nothing (null)',
    ]);
  });

  it('a step can be for some QEMU versions only, and restart a head', () => {
    const text = `${minimal}  - name: newer
    qemu: ">=11.1"
    restart: head 0
  - name: older
    qemu: "< 11.1"
    host: "true"
`;
    const [hello, newer, older] = parseScenario(text, 'x.yaml', {}).steps;
    expect(hello?.qemu).toBeUndefined();
    expect(newer).toMatchObject({ kind: 'restart', restartHead: 0, qemu: { op: '>=', major: 11, minor: 1, text: '>=11.1' } });
    expect(older?.qemu?.text).toBe('<11.1');
    const holds = (c: QemuCondition | undefined, v: string) => qemuConditionHolds(c as QemuCondition, v);
    expect(['10.0.13', '11.0.0', '11.1.3', '12.0.0'].map((v) => holds(newer?.qemu, v))).toEqual([false, false, true, true]);
    expect(['10.0.13', '11.0.0', '11.1.3', '12.0.0'].map((v) => holds(older?.qemu, v))).toEqual([true, true, false, false]);
    // `restart: backend` still restarts the backend; a head that is not listed, or a condition that is not one, is a mistake.
    expect(parseScenario(`${minimal}  - name: b\n    restart: backend\n`, 'x.yaml', {}).steps[1]?.restartHead).toBeUndefined();
    expect(errorsOf(`${minimal}  - name: r\n    restart: head 1\n`)).toEqual([
      'x.yaml:10:14: expected a head listed under heads, got head 1',
    ]);
    expect(errorsOf(`${minimal}  - name: r\n    restart: head one\n`)).toEqual([
      'x.yaml:10:14: expected "backend" or "head N", got "head one"',
    ]);
    expect(errorsOf(`${minimal}  - name: q\n    qemu: "11.1"\n    host: "true"\n`)).toEqual([
      'x.yaml:10:11: expected a QEMU version condition such as ">=11.1" or "<11.1", got "11.1"',
    ]);
  });

  it('fuzz: every mutated file either loads or gets clear one-line errors, never a stack trace', () => {
    const n = Number(process.env.CXL_MHD_FUZZ_SCENARIOS ?? 600);
    let seed = 12345;
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % k;
    };
    const lines = example.split('\n');
    const tokens = [
      '',
      ' ',
      ':',
      '-',
      '{',
      '}',
      '[',
      ']',
      '"',
      "'",
      '#',
      '&a',
      '*a',
      '!!int',
      '0',
      '-1',
      '1e9',
      'null',
      'all',
      '\t',
      '256M@0',
      'xx',
    ];
    let refused = 0;
    for (let i = 0; i < n; i++) {
      let text: string;
      const ls = [...lines];
      const at = rnd(ls.length);
      switch (rnd(5)) {
        case 0:
          ls.splice(at, 1);
          break;
        case 1:
          ls.splice(at, 0, ls[rnd(ls.length)] ?? '');
          break;
        case 2: {
          const l = ls[at] ?? '';
          const p = rnd(l.length + 1);
          ls[at] = l.slice(0, p) + (tokens[rnd(tokens.length)] ?? '') + l.slice(p + rnd(3));
          break;
        }
        case 3:
          ls[at] = (ls[at] ?? '').replace(/\d+/, String(rnd(100_000) - 50));
          break;
        default:
          ls[at] = ` ${ls[at] ?? ''}`;
      }
      text = ls.join('\n');
      let errs: string[];
      try {
        errs = errorsOf(text, 'f.yaml');
      } catch (e) {
        throw new Error(`mutation ${i} threw ${(e as Error).stack}\n--- file:\n${text}`);
      }
      if (errs.length > 0) refused++;
      for (const e of errs) {
        expect(e, text).toMatch(/^f\.yaml:\d+:\d+: \S/);
        expect(e).not.toMatch(/\n|\bat .*\.(js|ts):\d+/);
        expect(e.length).toBeLessThan(400);
      }
    }
    expect(refused).toBeGreaterThan(n / 4);
  });

  it('`cxl-mhd run` refuses a bad file before any QEMU starts (exit 2, one line per mistake)', () => {
    const dir = tempDir('cxl-mhd-scn-');
    const marker = join(dir, 'qemu-ran');
    const fakeQemu = join(dir, 'qemu');
    writeFileSync(fakeQemu, `#!/bin/sh\ntouch ${marker}\nexit 1\n`, { mode: 0o755 });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, minimal.replace('heads: 2', 'heads: 40').replace('guest: 0', 'guest: seven'));
    const r = spawnSync(process.execPath, [CLI, 'run', bad, '--junit', join(dir, 'j.xml')], {
      encoding: 'utf8',
      env: { ...process.env, CXL_MHD_QEMU: fakeQemu },
    });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      `${bad}:1:30: expected the pool's head count, 1..32, got 40`,
      `${bad}:6:12: expected a head id, a list of head ids, or "all", got "seven"`,
    ]);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(dir, 'j.xml'))).toBe(false);
    expect(readdirSync('/dev/shm').filter((f) => f.includes(`run-${r.pid}`))).toEqual([]);
  });
});

describe('reports', () => {
  const step = parseScenario(minimal, 'm.yaml', {}).steps[0];
  if (!step) throw new Error('no step');
  const failed: StepResult = {
    step,
    status: 'failed',
    message: 'stdout does not contain <x> & "y"',
    stdout: 'got\u0001 this',
    stderr: 'oops',
    consoles: [{ head: 0, tail: 'CXLMHD-READY' }],
    durationMs: 1234,
    attempts: 1,
  };
  const report: RunReport = {
    name: 'm',
    file: 'm.yaml',
    pool: 'run-1',
    startedAt: new Date(0),
    durationMs: 5000,
    bootError: null,
    interrupted: false,
    results: [failed, { ...failed, status: 'skipped', message: 'not run', stdout: '', stderr: '', consoles: [] }],
  };

  it('a run passes with steps skipped for other QEMU versions, never with steps skipped for a failure', () => {
    const ok: StepResult = { ...failed, status: 'passed', message: '', stdout: '', stderr: '', consoles: [] };
    const forOther: StepResult = {
      ...ok,
      status: 'skipped',
      message: 'not for QEMU 10.0.13 (this step is for QEMU >=11.1)',
      forOtherQemu: true,
    };
    expect(passed({ ...report, results: [ok, forOther] })).toBe(true);
    expect(passed({ ...report, results: [ok, { ...forOther, forOtherQemu: false }] })).toBe(false);
    expect(passed({ ...report, results: [forOther, failed] })).toBe(false);
    expect(tapLines(forOther)).toEqual(['ok 1 - hello # SKIP not for QEMU 10.0.13 (this step is for QEMU >=11.1)']);
  });

  it('JUnit: one testcase per step; failure message, output and console tail; XML-safe', () => {
    const x = junitXml(report);
    expect(x).toContain('<testsuite name="m" tests="2" failures="1" errors="0" skipped="1" time="5.000"');
    expect(x).toContain('name="01 hello" time="1.234" file="m.yaml" line="5"');
    expect(x).toContain('<failure message="stdout does not contain &lt;x&gt; &amp; &quot;y&quot;" type="run">');
    expect(x).toContain('<system-out>got this</system-out>');
    expect(x).toMatch(/<system-err>oops\n--- head 0 console \(last lines\)\nCXLMHD-READY\n<\/system-err>/);
    expect(x).toContain('<skipped message="not run"/>');
    // Well-formed enough for xmllint when it is there.
    const lint = spawnSync('xmllint', ['--noout', '-'], { input: x });
    if (!lint.error) expect(lint.status).toBe(0);
  });

  it('TAP: not ok with a YAML block, skips as directives', () => {
    expect(tapLines(failed)).toEqual([
      'not ok 1 - hello',
      '  ---',
      '  message: "stdout does not contain <x> & \\"y\\""',
      '  stdout: "got\\u0001 this"',
      '  stderr: "oops"',
      '  console_head0: "CXLMHD-READY"',
      '  ...',
    ]);
    expect(tapLines({ ...failed, status: 'skipped', message: 'not run' })).toEqual(['ok 1 - hello # SKIP not run']);
  });
});

describe('guest side', () => {
  it("the host's pattern is byte for byte the guests' daxpoke pattern", () => {
    const dir = tempDir('cxl-mhd-scn-');
    const bin = join(dir, 'daxpoke');
    execFileSync('gcc', ['-O2', '-o', bin, join('guest', 'daxpoke.c')]);
    const f = join(dir, 'data');
    writeFileSync(f, Buffer.alloc(3 * 2 ** 20));
    execFileSync(bin, ['fill', f, '4096', '1000003', String(0x5eed2)]);
    const got = readFileSync(f).subarray(4096, 4096 + 1000003);
    expect(got.equals(patternBytes(0x5eed2n, 1000003))).toBe(true);
  });

  it('a head gets the agent port, read-only shares, and its kernel, initramfs or disk', () => {
    const qemu = { command: ['qemu'], firmwareArgs: [], version: '10.0.0', root: null, source: 'env' as const };
    const head = {
      id: 1,
      delivery: 'hotplug' as const,
      guest: { append: 'loglevel=4', memory: '768M', fmCommand: 'cxl-mhd fm', modules: '/m' },
    };
    const base = { head, pool: 'p', runDir: '/r', capacityBytes: 2 ** 30, work: '/w', root: '/proj', qemu };
    const a = vmArgv({ ...base, image: { kernel: '/k', initrd: '/i' } }, { console: '/w/c', agent: '/w/a.sock' }).join(' ');
    expect(a).toContain('-chardev socket,id=qga0,path=/w/a.sock,server=on,wait=off');
    expect(a).toContain('-device virtserialport,bus=cxl-mhd-vser.0,chardev=qga0,name=org.qemu.guest_agent.0');
    expect(a).toContain('path=/proj,security_model=none,readonly=on');
    expect(a).toMatch(
      /-append console=ttyS0 panic=-1 no_timer_check quiet cxlmhd\.head=1 cxlmhd\.project=\/proj cxlmhd\.agent=1 cxlmhd\.qemu=10\.0\.0 cxlmhd\.modules=cxl_port,virtio_console loglevel=4 -initrd \/i/,
    );
    const d = vmArgv({ ...base, image: { disk: '/img.qcow2' } }, { console: '/w/c', agent: '/w/a.sock' }).join(' ');
    expect(d).toContain('-drive file=/img.qcow2,if=none,id=disk0,snapshot=on -device virtio-blk-pci,drive=disk0,bus=pcie.0');
    expect(d).not.toContain('-kernel');
  });

  it("the modules overlay carries the CXL/DAX/virtio modules of the user's tree and its indexes", () => {
    const root = findTrixieRoot();
    if (root === null) throw new Error('no trixie root: run make setup');
    const version = readdirSync(join(root, 'lib', 'modules'))[0] as string;
    const tree = join(root, 'lib', 'modules', version);
    const files = moduleFiles(tree);
    expect(files.some((f) => /\/cxl_pci\.ko/.test(f))).toBe(true);
    expect(files.some((f) => /\/device_dax\.ko/.test(f))).toBe(true);
    const dir = tempDir('cxl-mhd-scn-');
    const base = join(dir, 'base.cpio.gz');
    writeFileSync(base, cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') }]));
    const out = join(dir, 'initrd');
    initrdWithModules(base, tree, out);
    // The project's archive first, unchanged; then ours, read by a real cpio reader (busybox's, from the same root).
    const bytes = readFileSync(out);
    const baseBytes = readFileSync(base);
    expect(bytes.subarray(0, baseBytes.length).equals(baseBytes)).toBe(true);
    const listing = execFileSync(join(root, 'usr', 'bin', 'busybox'), ['cpio', '-t'], {
      input: gunzipSync(bytes.subarray(baseBytes.length)),
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    expect(listing).toContain(`usr/lib/modules/${version}/modules.dep`);
    expect(listing).toContain(`usr/lib/modules/${version}/kernel/drivers/cxl/cxl_pci.ko`);
  });
});
