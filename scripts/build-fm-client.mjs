// Builds the guest FM client, dist/guest/cxl-mhd-fm: one static x86-64
// binary with nothing to install in the guest. esbuild bundles the
// TypeScript client (src/cli/guest/main.ts: the same fm commands, codecs and
// output as `cxl-mhd fm`) into one ES2023 module; guest/fm-main.c, linked
// statically against Debian trixie's libquickjs (scripts/fetch-quickjs.sh),
// first compiles that module to QuickJS bytecode, then embeds it.
//
// Node built-ins in the bundle: node:events is the `events` package,
// node:process the QuickJS-side `process` (src/cli/guest/process.ts); the
// rest are stand-ins that throw if called — only code the guest never runs
// (commander's executable subcommands, Node-only helpers of shared modules)
// refers to them. CC picks the compiler (default gcc).
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const out = join(root, 'dist', 'guest');
// The bundle, the bytecode header and the compiler stay out of dist/ (which make install ships).
const work = join(root, 'native', 'build', 'fm-client');
const cc = process.env.CC || 'gcc';

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    // Only then: a static link always warns that libquickjs's unused module loader calls dlopen.
    process.stderr.write(r.stderr ?? '');
    console.error(`build-fm-client: ${what} failed${r.error ? ` (${r.error.message})` : ''}`);
    process.exit(1);
  }
  return r.stdout.trim();
}

const nodeBuiltins = {
  name: 'guest-node-builtins',
  setup(b) {
    const events = createRequire(import.meta.url).resolve('events/');
    b.onResolve({ filter: /^qjs:(std|os)$/ }, (a) => ({ path: a.path, external: true }));
    b.onResolve({ filter: /^node:events$/ }, () => ({ path: events }));
    b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'guest-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'guest-builtin' }, (a) => ({
      loader: 'js',
      contents:
        a.path === 'node:process'
          ? 'module.exports = globalThis.process;'
          : `const no = function () { throw new Error(${JSON.stringify(`${a.path} is not available in the guest FM client`)}); };
module.exports = new Proxy({}, { get: (_, k) => (k === '__esModule' ? false : no) });`,
    }));
  },
};

mkdirSync(out, { recursive: true });
mkdirSync(work, { recursive: true });
const quickjs = run(join(root, 'scripts', 'fetch-quickjs.sh'), [], 'fetching libquickjs');
const bundle = join(work, 'cxl-mhd-fm.js');
const result = await build({
  entryPoints: [join(root, 'src', 'cli', 'guest', 'main.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  mainFields: ['main', 'module'],
  target: 'es2023',
  minify: true,
  legalComments: 'none',
  outfile: bundle,
  metafile: true,
  logLevel: 'warning',
  plugins: [nodeBuiltins],
});
const inputs = Object.keys(result.metafile.inputs).length;

const inc = join(quickjs, 'usr', 'include', 'quickjs');
const lib = join(quickjs, 'usr', 'lib', 'x86_64-linux-gnu', 'quickjs', 'libquickjs.a');
const cflags = ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-isystem', inc, '-I', work];
const compiler = join(work, 'fm-compile');
run(cc, [...cflags, '-DFM_COMPILE', '-static', '-o', compiler, 'guest/fm-main.c', lib, '-lm', '-lpthread'], `${cc} (bytecode compiler)`);
run(compiler, [bundle, join(work, 'fm-bundle.h')], 'compiling the bundle to bytecode');
const tmp = join(out, 'cxl-mhd-fm.tmp');
run(cc, [...cflags, '-static', '-s', '-o', tmp, 'guest/fm-main.c', lib, '-lm', '-lpthread'], `${cc} -static (cxl-mhd-fm)`);
renameSync(tmp, join(out, 'cxl-mhd-fm'));
const kib = (f) => Math.round(statSync(f).size / 1024);
console.log(`build-fm-client: dist/guest/cxl-mhd-fm (${kib(join(out, 'cxl-mhd-fm'))} KiB; bundle of ${inputs} modules, ${kib(bundle)} KiB)`);
