// `cxl-mhd demo`: the three-head demo scenario, run like `cxl-mhd run` (run.ts).
import type { Command } from 'commander';

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('boot three Linux guests on one pool and move capacity between them, narrated (what `make demo` runs)')
    .option('--keep', 'keep guest consoles and logs')
    .action(async (o: { keep?: boolean }) => {
      const [{ runScenarioFile }, { demoScenarioPath }] = await Promise.all([import('./run.js'), import('../scenario/index.js')]);
      process.exitCode = await runScenarioFile(demoScenarioPath(), { keep: o.keep === true });
    });
}
