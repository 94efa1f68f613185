import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { fmSocketPath } from '../src/pool/index.js';
import { demoScenarioPath, type GuestAgent, loadScenario, projectRoot, runScenario, type Scenario } from '../src/scenario/index.js';
import { Leftovers } from './cleanup.js';
import { benchHeadArgs, bootGuestHead, type Report, startGuestRig, startHeadQemu, stopGuestRig } from './common.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const NODE_IN_GUEST = 'CXLMHD_FM_NODE=1 cxl-mhd fm';

/** Wall ms of `cmd` in the guest, measured there (/proc/uptime, 10 ms steps); throws on a non-zero exit. */
async function inGuest(agent: GuestAgent, cmd: string): Promise<number> {
  const r = await agent.exec(
    ['/bin/sh', '-c', `read a _ < /proc/uptime; ${cmd} >/dev/null || exit 1; read b _ < /proc/uptime; echo "$a $b"`],
    {
      timeoutMs: 300_000,
    },
  );
  if (r.exitCode !== 0) throw new Error(`guest: ${cmd}: exit ${r.exitCode}: ${r.stdout}${r.stderr}`);
  const [a, b] = r.stdout.trim().split(' ').map(Number) as [number, number];
  return (b - a) * 1000;
}

/** Wall ms of `cxl-mhd fm ARGS` on the host; asynchronously, since the backend answering lives in this process. */
async function onHost(args: string[]): Promise<number> {
  const t0 = performance.now();
  await promisify(execFile)(process.execPath, [join(projectRoot(), 'dist/src/cli/main.js'), 'fm', ...args]);
  return performance.now() - t0;
}

export async function benchGuestFm(report: Report): Promise<void> {
  const capacityBytes = 4 * GiB;
  const rig = await startGuestRig('gfm', { capacityBytes, headCount: 2 });
  const { runDir, pool, procs, agents, backend: be, work } = rig;
  try {
    // Head 0: the owner guest. Head 1: a QEMU without a guest that takes hot-added LDs.
    const agent = await bootGuestHead({
      backend: be,
      id: 0,
      staticOffset: 0,
      sparePorts: 2,
      memory: '768M',
      pool,
      runDir,
      capacityBytes,
      work,
      procs,
    });
    agents.push(agent);
    const args = benchHeadArgs({
      pool,
      head: 1,
      runDir,
      capacityBytes,
      static: undefined,
      delivery: 'hotplug',
      sparePorts: 2,
      memory: '128M',
    });
    await startHeadQemu(join(work, 'mon1.sock'), args, rig.left);
    await agent.waitReady(Date.now() + 900_000);
    const sock = fmSocketPath(runDir, pool);
    const client = new FmClient(await openPort(sock), { timeoutMs: 60_000 });
    const release = async (offset: number) => {
      await client.release({ host: 1, extents: [{ startDpa: offset, len: 256 * MiB }] });
      for (let j = 0; j < 2000 && be.capacity.grantsOf(1).length > 0; j++) await new Promise((r) => setTimeout(r, 5));
    };
    // One untimed call each: the first exec in a fresh guest pays for page-cache misses.
    await inGuest(agent, 'cxl-mhd-fm identify');
    const guestId: number[] = [];
    const guestNodeId: number[] = [];
    const hostId: number[] = [];
    const guestAdd: number[] = [];
    const hostAdd: number[] = [];
    for (let i = 0; i < 5; i++) {
      guestId.push(await inGuest(agent, 'cxl-mhd-fm identify'));
      hostId.push(await onHost(['identify', '--port', sock]));
      const offset = GiB + (i % 4) * 256 * MiB;
      guestAdd.push(await inGuest(agent, `cxl-mhd-fm add --host 1 --extent ${offset}:256M`));
      await release(offset);
      hostAdd.push(await onHost(['add', '--port', sock, '--host', '1', '--extent', `${offset}:256M`]));
      await release(offset);
    }
    for (let i = 0; i < 3; i++) guestNodeId.push(await inGuest(agent, `${NODE_IN_GUEST} identify`));
    client.close();
    report('guest `cxl-mhd-fm identify` (TCG), wall', median(guestId), 'ms', 'host `cxl-mhd fm identify`', median(hostId), false);
    report('guest `cxl-mhd-fm add` 256M (TCG), wall', median(guestAdd), 'ms', 'host `cxl-mhd fm add` 256M', median(hostAdd), false);
    report(
      'guest identify, cxl-mhd-fm against Node (TCG)',
      median(guestId),
      'ms',
      'guest `cxl-mhd fm identify` on Node',
      median(guestNodeId),
      false,
    );
  } finally {
    await stopGuestRig(rig);
  }
}

/** The demo scenario with every FM command in the guests on Node: the runner as it was before cxl-mhd-fm. */
function onNode(scn: Scenario): Scenario {
  return {
    ...scn,
    heads: scn.heads.map((h) => ({ ...h, guest: { ...h.guest, fmCommand: NODE_IN_GUEST } })),
    steps: scn.steps.map((s) => (s.kind === 'run' ? { ...s, command: s.command.replaceAll('cxl-mhd fm ', `${NODE_IN_GUEST} `) } : s)),
  };
}

export async function benchFmScenario(report: Report): Promise<void> {
  const scn = loadScenario(demoScenarioPath());
  const time = async (s: Scenario, tag: string) => {
    // The runner ends its QEMUs and its pool itself; the work dir (consoles, logs) is the bench's.
    const left = new Leftovers();
    try {
      const work = left.tempDir(`fmscn-${tag}`);
      const t0 = performance.now();
      const { report: r } = await runScenario(s, { workDir: work, pool: `bench-fmscn-${tag}-${process.pid}` });
      const failed = r.bootError ?? r.results.find((x) => x.status !== 'passed')?.message;
      if (failed) throw new Error(`three-heads.yaml (${tag}) failed: ${failed}`);
      return (performance.now() - t0) / 1000;
    } finally {
      await left.clean();
    }
  };
  const before = await time(onNode(scn), 'node');
  const after = await time(scn, 'qjs');
  report('three-heads.yaml, guest FM client, wall', after, 's', 'the same, FM commands on Node in guest', before, false);
}
