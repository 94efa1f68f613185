// Running a scenario in a real-QEMU test, and what its run must show: every
// step passed, except the steps marked for other QEMU versions (`qemu:`),
// which are skipped as such.
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { resolveQemu } from '../../src/qemu/index.js';
import { humanDetail, humanLine, qemuConditionHolds, type RunReport, runScenario, type Scenario } from '../../src/scenario/index.js';

export function expectStepsPassed(scn: Scenario, report: RunReport): void {
  const version = resolveQemu().version;
  expect(report.results.map((r) => `${r.step.index} ${r.status}${r.status === 'skipped' ? ` ${r.message}` : ''}`)).toEqual(
    scn.steps.map((s) =>
      !s.qemu || qemuConditionHolds(s.qemu, version)
        ? `${s.index} passed`
        : `${s.index} skipped not for QEMU ${version} (this step is for QEMU ${s.qemu.text})`,
    ),
  );
  expect(report.results.filter((r) => r.status === 'skipped').every((r) => r.forOtherQemu === true)).toBe(true);
}

export interface ExampleRun {
  workDir: string;
  pool: string;
  /** The folder under test-artifacts/ (a time is appended) that keeps the work dir (consoles, logs) when `check` fails. */
  keepAs: string;
  /** Put before the failure's message (which QEMU, which file). */
  label?: string;
}

/**
 * Runs `scn` with the runner's progress and each step's line (and a failed
 * step's detail) collected, then `check`s the report. When a check fails,
 * the work dir is kept under test-artifacts/ and the error carries every
 * line, so a failure in CI says what the guests did.
 */
export async function runExample(scn: Scenario, run: ExampleRun, check: (report: RunReport, lines: string[]) => void): Promise<void> {
  const lines: string[] = [];
  const { report } = await runScenario(scn, {
    workDir: run.workDir,
    pool: run.pool,
    progress: (l) => lines.push(l),
    onStep: (r) => lines.push(humanLine(r), ...(r.status === 'failed' ? humanDetail(r) : [])),
  });
  try {
    check(report, lines);
  } catch (e) {
    cpSync(run.workDir, join('test-artifacts', `${run.keepAs}-${Date.now()}`), { recursive: true });
    throw new Error(`${run.label ? `${run.label}: ` : ''}${(e as Error).message}\n${lines.join('\n')}`);
  }
}
