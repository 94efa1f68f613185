// Builds the addon with node-gyp, offline: point node-gyp at the headers of
// the Node that runs us (a distro Node keeps them under <prefix>/include/node),
// so it never tries to download a header tarball.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
// Under npm, npm says where its node-gyp is; run directly (make), use the
// node-gyp bundled with the npm that ships beside this Node.
const bundled = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : undefined);
const [cmd, argv] = gyp ? [process.execPath, [gyp, ...args]] : ['node-gyp', args];
const r = spawnSync(cmd, argv, { cwd: here, stdio: 'inherit' });
if (r.error) {
  console.error(`native build: cannot run node-gyp (${r.error.message}); run through npm, which provides it`);
  process.exit(1);
}
process.exit(r.status ?? 1);
