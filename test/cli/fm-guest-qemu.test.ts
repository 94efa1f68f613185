// The guest FM client in a real Linux guest under QEMU, through the scenario
// runner: in the owner guest, `cxl-mhd-fm` (the static QuickJS binary the
// image carries) and the Node CLI (`CXLMHD_FM_NODE=1 cxl-mhd fm`, the host's
// Node over 9p) print the same bytes and exit status for every read
// command, a refusal and a usage error, over the guest's /dev/vportNpM
// found by its sysfs name; it moves capacity (5604h/5605h) that the other
// head sees; on the head without the FM-LD it says so as the Node CLI does.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../../src/scenario/index.js';
import { tempDir } from '../helpers/pool.js';
import { runExample } from '../helpers/scenario.js';

const SAME = `
set -u
for c in identify "--json identify" mhd-info "--json head-info" dcd-info "region-config --host 1" "--json region-config --host 0" \\
         "extents --host 1" tags "add --host 9 --extent 0:4M" "add-reference --tag 5ca1ab1e-0000-4000-8000-00000000f00d" \\
         "region-config" "bogus"; do
  cxl-mhd-fm $c > g 2>&1; echo "rc=$?" >> g
  CXLMHD_FM_NODE=1 cxl-mhd fm $c > n 2>&1; echo "rc=$?" >> n
  cmp -s g n || { echo "differ: $c"; cat g n; exit 1; }
done
echo "all the same"`;

/** Steps as data, written out as YAML (JSON strings are YAML strings). */
const STEPS: Record<string, unknown>[] = [
  {
    name: 'cxl-mhd-fm is one static file that needs nothing else',
    guest: 0,
    run: 'head -c 4096 /usr/bin/cxl-mhd-fm | grep -c ld-linux; test ! -e /usr/bin/qjs && env -i /usr/bin/cxl-mhd-fm identify',
    expect: '/^0\\n(.|\\n)*component type 3 \\(type 3 memory device\\)/',
  },
  {
    name: 'the static client and the Node CLI print the same for every read command and error',
    guest: 0,
    run: SAME,
    expect: 'all the same',
    timeout: '15m',
  },
  {
    name: 'the static client gives head 1 256 MiB',
    fm: 'add --host 1 --extent 1G:256M',
    expect: 'head 1: added 256M at pool offset 1073741824',
  },
  { name: 'head 1 sees mem1', guest: 1, run: 'cat /sys/bus/cxl/devices/mem1/ram/size', expect: '0x10000000', retry: '60s' },
  {
    name: "both clients list head 1's extent alike",
    guest: 0,
    run: 'cxl-mhd-fm --json extents --host 1 > g && CXLMHD_FM_NODE=1 cxl-mhd fm --json extents --host 1 > n && cmp g n && cat g',
    expect: '"len":268435456',
    timeout: '5m',
  },
  {
    name: 'head 1 gives its region up',
    guest: 1,
    run: 'cxl disable-region -f all 2>/dev/null; cxl destroy-region -f all 2>/dev/null; true',
  },
  {
    name: 'the static client takes it back',
    fm: 'release --host 1 --extent 1G:256M',
    expect: 'release of 256M at pool offset 1073741824 accepted',
    retry: '60s',
  },
  {
    name: 'head 1 has no FM-LD, and both clients say so alike',
    guest: 1,
    run: 'cxl-mhd-fm identify > g 2>&1; echo "rc=$?" >> g; CXLMHD_FM_NODE=1 cxl-mhd fm identify > n 2>&1; echo "rc=$?" >> n; cmp g n && cat g',
    expect: '/this head does not own the FM-LD(.|\\n)*rc=1/',
    timeout: '5m',
  },
];

const SCENARIO = [
  'name: guest-fm-client',
  'pool: { capacity: 2G, heads: 2 }',
  'guest: { memory: 768M }',
  'heads:',
  '  - { id: 0, static: 256M@0, spare-ports: 2 }',
  '  - { id: 1, static: 256M@0, spare-ports: 2 }',
  'steps:',
  ...STEPS.map((s) => `  - ${JSON.stringify(s)}`),
].join('\n');

describe('guest FM client in a QEMU guest', () => {
  it('speaks the FM-API over the virtio port and prints what the Node CLI prints', async () => {
    const work = tempDir('cxl-mhd-fmguest-');
    const file = join(work, 'guest-fm.yaml');
    writeFileSync(file, SCENARIO);
    const scn = loadScenario(file);
    await runExample(scn, { workDir: work, pool: `fmguest-${process.pid}`, keepAs: 'fm-guest' }, (report) => {
      expect(report.bootError).toBeNull();
      expect(report.results.map((r) => `${r.step.index} ${r.status}`)).toEqual(scn.steps.map((s) => `${s.index} passed`));
    });
  }, 1_800_000);
});
