// The scenarios that depend on the QEMU (and kernel) version, run through
// the scenario runner on the QEMU the project resolves: on QEMU >= 11.1
// CXL memory as System RAM (online, fill beyond guest DRAM, md5, offline,
// release) and per-head event injection; on an older QEMU the guest
// helper's System RAM refusal; on both, a Linux 7.3 guest. Each scenario that does not
// apply to this QEMU is skipped with the reason in its name; `.ci/run` runs
// this file on both series (scripts/test.sh). Consoles and logs go to
// test-artifacts/ when one fails.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT_DIR_NAMES } from '../../src/qemu/binary.js';
import { cacheDir, qemuFeatures, resolveQemu } from '../../src/qemu/index.js';
import { loadScenario, projectRoot } from '../../src/scenario/index.js';
import { tempDir } from '../helpers/pool.js';
import { expectStepsPassed, runExample } from '../helpers/scenario.js';

const QEMU = qemuFeatures(resolveQemu().version);
const on11 = QEMU.systemRam;
// Debian's 7.3 kernel comes with the QEMU 11 root; the 7.3 guest image is built from it for either QEMU.
const bootDir = join(cacheDir(), ROOT_DIR_NAMES['11'], 'boot');
const has73 = existsSync(bootDir) && readdirSync(bootDir).some((f) => f.startsWith('vmlinuz-7.3'));

async function runCi(file: string): Promise<void> {
  const pool = `ver-${process.pid}-${file.replace(/\W/g, '').slice(0, 12)}`;
  const scn = loadScenario(join(projectRoot(), 'examples', 'ci', file));
  const run = { workDir: tempDir('cxl-mhd-versions-'), pool, keepAs: `versions-${file}`, label: `QEMU ${QEMU.version}, ${file}` };
  await runExample(scn, run, (report) => {
    expect(report.bootError).toBeNull();
    expectStepsPassed(scn, report);
    expect(readdirSync('/dev/shm').filter((f) => f.includes(pool))).toEqual([]);
  });
}

describe(`scenarios for QEMU ${QEMU.version}`, () => {
  it.skipIf(!on11)(
    'System RAM: a hot-added LD online on its own NUMA node, filled past guest DRAM with numactl, md5 matches, offlined and released (skipped below QEMU 11.1: it segfaults)',
    async () => {
      await runCi('system-ram.yaml');
    },
    1_200_000,
  );

  it.skipIf(!on11)(
    'per-head event injection: three records into head 1, traced by its kernel only (skipped below QEMU 11.1: no head-id in the records)',
    async () => {
      await runCi('inject.yaml');
    },
    900_000,
  );

  it.skipIf(!has73)(
    'a Linux 7.3 guest: FM add and release, a host pattern through the LD, backend restart, killed head (skipped without the QEMU 11 root, which carries the 7.3 kernel: make setup)',
    async () => {
      await runCi('kernel-7.3.yaml');
    },
    900_000,
  );

  it.skipIf(on11)(
    'System RAM is refused in the guest with one line naming the QEMU crash (skipped on QEMU >= 11.1, where it works)',
    async () => {
      await runCi('system-ram-refused.yaml');
    },
    600_000,
  );
});
