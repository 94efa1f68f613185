// npm's "prepare": leaves the checkout runnable (the addon built, dist/
// compiled, the command line bundled). `npm install -g .` links the
// checkout and runs only this, with none of the package's dependencies
// installed in it, so on a fresh clone it first installs them from the
// lockfile (`npm ci`, which builds everything through the package's own
// install and prepare scripts) and stops there.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) {
    console.error(`prepare: cannot run ${cmd} (${r.error.message})`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!existsSync(join(root, 'node_modules', 'typescript', 'bin', 'tsc'))) {
  // The outer npm's settings (global, prefix) would turn this into a global install.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
  console.error('prepare: installing the locked dependencies into the checkout (npm ci)');
  run(process.env.npm_execpath ? process.execPath : 'npm', [...(process.env.npm_execpath ? [process.env.npm_execpath] : []), 'ci', '--no-audit', '--no-fund'], env);
} else {
  if (!existsSync(join(root, 'native', 'build', 'Release', 'cxl_mhd.node'))) run(process.execPath, [join(root, 'native', 'build.mjs')]);
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
  run(process.execPath, [join(root, 'scripts', 'bundle-cli.mjs')]);
}
chmodSync(join(root, 'dist', 'src', 'cli', 'main.js'), 0o755);
