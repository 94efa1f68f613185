// What a scenario run must show on the QEMU the tests resolve: every step
// passed, except the steps marked for other QEMU versions (`qemu:`), which
// are skipped as such.
import { expect } from 'vitest';
import { resolveQemu } from '../../src/qemu/index.js';
import { qemuConditionHolds, type RunReport, type Scenario } from '../../src/scenario/index.js';

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
