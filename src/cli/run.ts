// `cxl-mhd run SCENARIO.yaml` (and `cxl-mhd demo`, which runs the demo
// scenario): terminal/TAP output, the JUnit file, signals and the exit
// status. The run itself is src/scenario.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Scenario } from '../scenario/index.js';

/** Exit statuses: every step passed, a step failed (or boot), a bad scenario file, interrupted. */
export const RUN_EXIT = { passed: 0, failed: 1, badFile: 2, interrupted: 130 } as const;

export interface RunFileOptions {
  junit?: string;
  tap?: boolean;
  keep?: boolean;
}

/** Loads, runs and reports one scenario file; resolves to the exit status. */
export async function runScenarioFile(file: string, o: RunFileOptions = {}): Promise<number> {
  // The runner (yaml, ajv, the steps) is loaded only when a scenario runs.
  const {
    humanDetail,
    humanLine,
    junitXml,
    loadScenario,
    passed,
    runScenario,
    ScenarioFileError,
    summaryLine,
    tapBailOut,
    tapLines,
    tapPlan,
  } = await import('../scenario/index.js');
  let scn: Scenario;
  try {
    scn = loadScenario(file);
  } catch (e) {
    if (!(e instanceof ScenarioFileError)) throw e;
    for (const line of e.lines) console.error(line);
    return RUN_EXIT.badFile;
  }
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // With --tap, stdout is TAP alone; progress becomes comments on stderr.
  const progress = o.tap ? (line: string) => process.stderr.write(`# ${line}\n`) : out;
  if (o.tap) tapPlan(scn.steps.length).forEach(out);
  else out(`cxl-mhd run ${file}: ${scn.heads.length} heads, ${scn.steps.length} steps`);
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) return;
    process.stderr.write(`cxl-mhd run: ${sig}: stopping the heads and cleaning up\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { report, keptIn } = await runScenario(scn, {
      keep: o.keep === true,
      progress,
      signal: ac.signal,
      onStep: (r) => {
        if (o.tap) tapLines(r).forEach(out);
        else {
          out(humanLine(r));
          if (r.status === 'failed') humanDetail(r).forEach(out);
        }
      },
    });
    if (o.tap) {
      tapBailOut(report).forEach(out);
      progress(summaryLine(report));
    } else {
      if (report.bootError) humanDetail({ stdout: '', stderr: '', consoles: report.bootError.consoles }).forEach(out);
      out(summaryLine(report));
    }
    if (o.junit) {
      writeFileSync(o.junit, junitXml(report));
      progress(`JUnit: ${o.junit}`);
    }
    if (keptIn) progress(`consoles and logs: ${keptIn}`);
    return report.interrupted ? RUN_EXIT.interrupted : passed(report) ? RUN_EXIT.passed : RUN_EXIT.failed;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function addRunCommand(program: Command): void {
  program
    .command('run')
    .description('boot the heads of a scenario file, run its steps, report (exit 0 only if every step passed)')
    .argument('<scenario>', 'scenario file (YAML, docs/scenario.md)')
    .option('--junit <file>', 'write JUnit XML: one testcase per step')
    .option('--tap', 'print TAP 13 on stdout (progress goes to stderr)')
    .option('--keep', 'keep guest consoles and logs even when every step passed')
    .action(async (file: string, o: RunFileOptions) => {
      process.exitCode = await runScenarioFile(file, o);
    });
}
