// Bundles the command line (src/cli/main.ts and the command files it loads
// on demand) into dist/src/cli, in place of what tsc emitted there: main.js
// and, in chunks/, the code each command loads, split by esbuild so a
// command loads only what it reaches. The packages the heavy commands use
// (fastify, pino, ajv, yaml) stay in node_modules. A short command then
// loads about a dozen files instead of 50-70 modules (docs/performance.md,
// "Start-up of a short command"). tsc's own dist/src/cli runs as well,
// only slower: this step changes how the code is packed, not what it does.
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outdir = join(root, 'dist', 'src', 'cli');
// What tsc put there besides main.js is in the bundle: nothing loads it any more.
rmSync(join(outdir, 'chunks'), { recursive: true, force: true });
for (const f of readdirSync(outdir)) if (!f.startsWith('main.')) rmSync(join(outdir, f), { recursive: true, force: true });

await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outdir,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
  logLevel: 'warning',
  external: ['fastify', 'fastify-plugin', 'pino', 'ajv', 'yaml'],
  // commander is CommonJS: its require() of node: modules needs a real require in an ES module.
  banner: { js: "import { createRequire as __cxlMhdRequire } from 'node:module'; const require = __cxlMhdRequire(import.meta.url);" },
});
