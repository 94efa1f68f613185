// Compiles src/ once per test run: worker processes and CLI tests run the
// built JavaScript, exactly as users do.
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';

export default function setup(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  chmodSync('dist/src/cli/main.js', 0o755);
}
