// Bundles the command line (src/cli/main.ts and everything it reaches) into
// one CommonJS file, dist/src/cli/main.js, beside a package.json that makes
// that folder CommonJS. A short command then starts like a plain script: no
// ES module loader and one file instead of the 50-70 modules behind the
// barrels, which was most of `status` and `fm`'s start-up (docs/
// performance.md, "Start-up of a short command"). The parts only some
// commands run (the daemon, http, the scenario runner) stay lazy: esbuild
// wraps each module and initialises it on first import(). fastify, pino,
// ajv and yaml stay in node_modules, required when those parts run.
// tsc does not emit src/cli (tsconfig.build.json): this is the only build of it.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outdir = join(root, 'dist', 'src', 'cli');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);

await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outfile: join(outdir, 'main.js'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // Less to parse at every start; names are kept, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  logLevel: 'warning',
  external: ['fastify', 'fastify-plugin', 'pino', 'ajv', 'yaml'],
  // The modules find the addon, the page and the checkout from their own URL: in one file, that is main.js's.
  define: { 'import.meta.url': '__cxlMhdUrl' },
  // 'use strict' first, as the ES modules this was compiled from are strict.
  banner: { js: "'use strict';\nconst __cxlMhdUrl = require('node:url').pathToFileURL(__filename).href;" },
});
