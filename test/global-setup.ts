// Builds dist/ once per test run as `make build` does (tsc, then the
// command line's bundle): worker processes and CLI tests run the built
// JavaScript, exactly as users do.
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';

export default function setup(): void {
  // For running a single in-process test file while something else uses dist/ (a soak run).
  if (process.env.CXL_MHD_SKIP_BUILD === '1') return;
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  execFileSync(process.execPath, ['scripts/bundle-cli.mjs'], { stdio: 'inherit' });
  chmodSync('dist/src/cli/main.js', 0o755);
}
