// The QEMU facts cxl-mhd is built on (docs/qemu-facts.md), each checked
// against the QEMU the project resolves, as one assertion that fails when a
// new QEMU behaves differently. `make qemu-facts` runs only this file. Test
// names start with the doc's section (§N); the doc points back at them.
//
// Heads are started with the arguments `cxl-mhd qemu-args` prints, and we
// play the backend: QEMU dials our socket and we drive it with the project's
// own QmpSession. Device ids are found in QOM, not assumed. Every QEMU is
// killed and every socket, shm object and directory removed, pass or fail.
//
// A fact that differs between QEMU releases is checked against what the
// project expects of the running version (src/qemu/features.ts), and its
// failure message names the version seen: a new QEMU that changes it fails
// loudly instead of being taken for the old one.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { qemuArgv, resolveQemu } from '../../src/qemu/binary.js';
import { qemuFeatures } from '../../src/qemu/features.js';
import { QmpCommandError, type QmpEvent, QmpSession } from '../../src/qmp/index.js';
// Its per-test cleanup touches only what it started itself.
import { eventually } from '../helpers/qemu.js';

const MiB = 2 ** 20;
/** What the project expects of the QEMU under test; facts that changed in 11.1 are checked against it. */
const QEMU = qemuFeatures(resolveQemu().version);
/** The failure message of a per-version fact: which QEMU, and what the project expected of it. */
const onQemu = (fact: string) => `QEMU ${QEMU.version}: ${fact}`;
const REDIAL_MS = 1000; // the reconnect-ms qemu-args prints
const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

// A head here outlives single tests (its facts build on each other), so this
// file keeps its own records instead of helpers/pool.ts's per-test cleanup,
// and removes everything in afterAll. Pool names carry the pid.
const started = new Set<ChildProcess>();
const dirs = new Set<string>();
const pools = new Set<string>();
let poolCounter = 0;

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cxl-mhd-facts-'));
  dirs.add(d);
  return d;
}

function poolName(): string {
  const name = `facts-${process.pid}-${++poolCounter}`;
  pools.add(name);
  return name;
}

function cliOut(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cxl-mhd ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Qemu {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startQemu(argv: string[]): Qemu {
  const [cmd, ...args] = argv;
  const child = spawn(cmd as string, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  started.add(child);
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  child.stdout?.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const c of started) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.all(waits);
  started.clear();
}

/** A Unix socket a QEMU dials (as a backend's head socket); hands out its connections in order. */
class Listener {
  private readonly server: Server;
  private readonly queue: Socket[] = [];
  private waiter: ((s: Socket) => void) | undefined;
  private constructor(server: Server) {
    this.server = server;
    server.on('connection', (s) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(s);
      } else this.queue.push(s);
    });
  }
  static async open(path: string): Promise<Listener> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return new Listener(server);
  }
  next(timeoutMs = 60_000): Promise<Socket> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = (s) => {
        clearTimeout(t);
        resolve(s);
      };
    });
  }
  close(): void {
    for (const s of this.queue) s.destroy();
    this.server.close();
  }
}

/** Line-level QMP without QmpSession, for what QEMU does before capabilities are negotiated. */
function rawLines(s: Socket): { next: () => Promise<Record<string, unknown>> } {
  let buf = '';
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
    wake?.();
  });
  return {
    async next() {
      while (lines.length === 0) await new Promise<void>((r) => (wake = r));
      return JSON.parse(lines.shift() as string) as Record<string, unknown>;
    },
  };
}

async function qmpError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    if (e instanceof QmpCommandError) return `${e.errorClass}: ${e.desc}`;
    throw e;
  }
}

interface Peripheral {
  name: string;
  type: string;
}

async function peripherals(s: QmpSession, cls: string): Promise<string[]> {
  const list = await s.execute<Peripheral[]>('qom-list', { path: '/machine/peripheral' });
  return list.filter((p) => p.type === `child<${cls}>`).map((p) => p.name);
}

/** A pool and one head of it, started with `cxl-mhd qemu-args`; we are its backend. */
interface Head {
  pool: string;
  memPath: string;
  argv: string[];
  qemu: Qemu;
  listener: Listener;
  session: QmpSession;
}

async function startHead(base: string, pool: string, head: number, extra: string[]): Promise<Head> {
  const runDir = join(base, 'run');
  const dirArgs = ['--run-dir', runDir, '--state-dir', join(base, 'state')];
  if (head === 0) cliOut(['pool', 'create', '--pool', pool, '--capacity', '1G', '--heads', '2', ...dirArgs]);
  const argv = cliOut(['qemu-args', '--pool', pool, '--head', String(head), ...dirArgs, '--with-binary', '--memory', '256M', ...extra])
    .trim()
    .split('\n');
  mkdirSync(join(runDir, pool), { recursive: true, mode: 0o700 });
  const listener = await Listener.open(join(runDir, pool, `head${head}.sock`));
  const qemu = startQemu([...argv, '-display', 'none', '-nodefaults']);
  const socket = await Promise.race([
    listener.next(),
    qemu.exited.then((c) => Promise.reject(new Error(`QEMU exited ${c}: ${qemu.stderr()}`))),
  ]);
  const session = await QmpSession.open(socket, { commandTimeoutMs: 30_000, greetingTimeoutMs: 30_000 });
  return { pool, memPath: `/dev/shm/cxl-mhd.${pool}.mem`, argv, qemu, listener, session };
}

/** A 256 MiB memory-backend-file over the head's pool file at `offset`, as a hot-add makes. */
function addBackend(h: Head, id: string, offset: number): Promise<unknown> {
  return h.session.execute('object-add', {
    'qom-type': 'memory-backend-file',
    id,
    'mem-path': h.memPath,
    offset,
    size: 256 * MiB,
    share: true,
  });
}

afterAll(async () => {
  await killAll();
  for (const name of pools) {
    for (const suffix of ['mem', 'state']) {
      try {
        native.shmUnlink(`/cxl-mhd.${name}.${suffix}`);
      } catch {
        // never made, or already gone
      }
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('a head under QMP, no guest (§1-§5)', () => {
  let h: Head;
  let ldPort = '';
  let spare2 = '';
  const events: QmpEvent[] = [];
  beforeAll(async () => {
    const base = tempDir();
    h = await startHead(base, poolName(), 0, ['--static', '256M@0', '--spare-ports', '2']);
    h.session.on('*', (e) => events.push(e));
  });
  afterAll(() => {
    h?.session.close();
    h?.listener.close();
  });

  it('§2 started with reconnect-ms, QEMU dials the head socket and greets with its version (>= 10.0)', () => {
    expect(h.session.version.major).toBeGreaterThanOrEqual(10);
  });

  it('§2 with -S the VM waits in prelaunch (not running) until cont', async () => {
    expect(await h.session.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
  });

  it('§2 a dropped monitor connection: QEMU redials, greets again, refuses commands until qmp_capabilities; the VM is untouched', async () => {
    h.session.close();
    const raw = await h.listener.next(REDIAL_MS * 30);
    const lines = rawLines(raw);
    const greeting = await lines.next();
    raw.write('{"execute":"query-status"}\n');
    const before = await lines.next();
    raw.write('{"execute":"qmp_capabilities"}\n');
    await lines.next();
    raw.write('{"execute":"query-status"}\n');
    const after = await lines.next();
    raw.destroy();
    // Back to a QmpSession for the rest (QEMU dials once more).
    h.session = await QmpSession.open(await h.listener.next(REDIAL_MS * 30), { commandTimeoutMs: 30_000 });
    h.session.on('*', (e) => events.push(e));
    expect({ greeting: 'QMP' in greeting, before: (before.error as { class?: string })?.class, after: after.return }).toEqual({
      greeting: true,
      before: 'CommandNotFound',
      after: { status: 'prelaunch', running: false },
    });
  });

  it('§3 qom-list of /machine/peripheral names each child by class: one child<cxl-type3> for the static window', async () => {
    expect(await peripherals(h.session, 'cxl-type3')).toHaveLength(1);
  });

  it('§3 volatile-memdev is a link to /objects/<id>, whose mem-path, offset, size and share are the arguments', async () => {
    const [dev] = await peripherals(h.session, 'cxl-type3');
    const backend = await h.session.execute<string>('qom-get', { path: `/machine/peripheral/${dev}`, property: 'volatile-memdev' });
    const props: Record<string, unknown> = { backend: backend.startsWith('/objects/') };
    for (const p of ['mem-path', 'offset', 'size', 'share']) props[p] = await h.session.execute('qom-get', { path: backend, property: p });
    expect(props).toEqual({ backend: true, 'mem-path': h.memPath, offset: 0, size: 256 * MiB, share: true });
  });

  it('§1 sn= given in hex on the command line reads back through qom-get as a JSON number', async () => {
    const [dev] = await peripherals(h.session, 'cxl-type3');
    const sn = await h.session.execute('qom-get', { path: `/machine/peripheral/${dev}`, property: 'sn' });
    const given = /,sn=(0x[0-9a-f]+)/.exec(h.argv.find((a) => a.startsWith('cxl-type3,')) ?? '')?.[1];
    expect(sn).toBe(Number(given));
  });

  it('§3 qom-list-get exists from 11.1, not in 10.0 (query-commands)', async () => {
    const cmds = await h.session.execute<{ name: string }[]>('query-commands');
    expect(cmds.map((c) => c.name).includes('qom-list-get'), onQemu('qom-list-get in query-commands')).toBe(QEMU.qomListGet);
  });

  it('§4 object-add + device_add of a cxl-type3 on a spare cxl-rp works in prelaunch; the device appears in QOM, hotplugged', async () => {
    const [dev] = await peripherals(h.session, 'cxl-type3');
    const busOfStatic = await h.session.execute<string>('qom-get', { path: `/machine/peripheral/${dev}`, property: 'parent_bus' });
    const spares = (await peripherals(h.session, 'cxl-rp')).filter((rp) => !busOfStatic.includes(`/${rp}/`));
    ldPort = spares[0] ?? '';
    spare2 = spares[1] ?? '';
    await addBackend(h, 'facts-ld1', 256 * MiB);
    await h.session.execute('device_add', { driver: 'cxl-type3', bus: ldPort, 'volatile-memdev': 'facts-ld1', id: 'facts-ld1', sn: 4242 });
    const path = '/machine/peripheral/facts-ld1';
    const seen = [
      await h.session.execute('qom-get', { path, property: 'type' }),
      await h.session.execute('qom-get', { path, property: 'hotplugged' }),
    ];
    expect(seen).toEqual(['cxl-type3', true]);
  });

  it('§1 in QMP device_add, sn must be a JSON number: a hex string is refused', async () => {
    await addBackend(h, 'facts-sn', 512 * MiB);
    const r = qmpError(
      h.session.execute('device_add', { driver: 'cxl-type3', bus: spare2, 'volatile-memdev': 'facts-sn', id: 'facts-sn', sn: '0x4d48' }),
    );
    expect(await r).toMatch(/sn.*expects uint64/);
  });

  it('§4 device_del of a hot-added cxl-type3 (no guest): it leaves QOM; DEVICE_DELETED comes on 11.1, never on 10.0', async () => {
    const from = events.length;
    await h.session.execute('device_del', { id: 'facts-ld1' });
    const gone = await eventually(
      async () =>
        (await qmpError(h.session.execute('qom-get', { path: '/machine/peripheral/facts-ld1', property: 'type' }))).startsWith(
          'DeviceNotFound',
        ),
      'facts-ld1 to leave QOM',
    );
    // The doc waited 5-10 s on 10.0; 5 s here (11.1 sends it at once without a guest).
    await new Promise((r) => setTimeout(r, 5000));
    const deleted = events.slice(from).filter((e) => e.event === 'DEVICE_DELETED' && e.data.device === 'facts-ld1').length;
    expect({ gone, deviceDeleted: deleted }, onQemu('DEVICE_DELETED for a removed cxl-type3')).toEqual({
      gone: true,
      deviceDeleted: QEMU.type3DeviceDeleted ? 1 : 0,
    });
  });

  it('§4 the memory backend of a removed cxl-type3 can never be deleted: object-del is refused ("in use" on 10.0, "mapped" on 11.1)', async () => {
    expect(await qmpError(h.session.execute('object-del', { id: 'facts-ld1' })), onQemu('object-del of a removed LD backend')).toMatch(
      QEMU.type3DeviceDeleted
        ? /^GenericError: Cannot delete host memory backend 'facts-ld1' which is mapped$/
        : /in use, can not be deleted/,
    );
  });

  it('§4 after removal, the root port and the device id are reusable at once with a fresh backend id', async () => {
    await addBackend(h, 'facts-ld1b', 256 * MiB);
    expect(
      await qmpError(
        h.session.execute('device_add', { driver: 'cxl-type3', bus: ldPort, 'volatile-memdev': 'facts-ld1b', id: 'facts-ld1', sn: 4243 }),
      ),
    ).toBe('accepted');
  });

  it('§6 cxl-add-dynamic-capacity on a cxl-type3 without DC regions: "No dynamic capacity support"', async () => {
    const r = qmpError(
      h.session.execute('cxl-add-dynamic-capacity', {
        path: '/machine/peripheral/facts-ld1',
        'host-id': 0,
        'selection-policy': 'prescriptive',
        region: 0,
        extents: [{ offset: 0, len: 256 * MiB }],
      }),
    );
    expect(await r).toMatch(/No dynamic capacity support from the device/);
  });

  it("§5 FM-LD port: getfd (SCM_RIGHTS) + chardev-add on that fd + virtserialport on the head's virtio-serial bus; visible in QOM and query-chardev", async () => {
    const [ours, theirs] = native.socketPair();
    try {
      await h.session.executeWithFds('getfd', { fdname: 'facts-fmld' }, [theirs]);
      await h.session.execute('chardev-add', {
        id: 'facts-fmld',
        backend: { type: 'socket', data: { addr: { type: 'fd', data: { str: 'facts-fmld' } }, server: false } },
      });
      const [vser] = await peripherals(h.session, 'virtio-serial-pci');
      await h.session.execute('device_add', {
        driver: 'virtserialport',
        bus: `${vser}.0`,
        chardev: 'facts-fmld',
        name: 'facts.fmld',
        id: 'facts-fmld-port',
      });
      const path = '/machine/peripheral/facts-fmld-port';
      const chardevs = await h.session.execute<{ label: string; 'frontend-open': boolean }[]>('query-chardev');
      expect({
        type: await h.session.execute('qom-get', { path, property: 'type' }),
        name: await h.session.execute('qom-get', { path, property: 'name' }),
        chardev: await h.session.execute('qom-get', { path, property: 'chardev' }),
        listed: chardevs.find((c) => c.label === 'facts-fmld'),
      }).toEqual({
        type: 'virtserialport',
        name: 'facts.fmld',
        chardev: 'facts-fmld',
        listed: expect.objectContaining({ 'frontend-open': false }),
      });
    } finally {
      native.close(theirs);
      native.close(ours);
    }
  });

  it('§5 chardev-add with an id in use is refused ("already exists")', async () => {
    const r = qmpError(h.session.execute('chardev-add', { id: 'facts-fmld', backend: { type: 'null', data: {} } }));
    expect(await r).toMatch(/Chardev with id 'facts-fmld' already exists/);
  });

  it('§2 cont: a RESUME event, then the VM is running', async () => {
    const resumed = h.session.waitForEvent('RESUME', undefined, 30_000);
    await h.session.execute('cont');
    await resumed;
    expect(await h.session.execute('query-status')).toMatchObject({ status: 'running', running: true });
  });
});

describe('a DCD head under QMP, no guest (§6)', () => {
  let h: Head;
  let dcd = '';
  beforeAll(async () => {
    const base = tempDir();
    const pool = poolName();
    // Head 0 only creates the pool; head 1 is the DCD head.
    cliOut([
      'pool',
      'create',
      '--pool',
      pool,
      '--capacity',
      '1G',
      '--heads',
      '2',
      '--run-dir',
      join(base, 'run'),
      '--state-dir',
      join(base, 'state'),
    ]);
    h = await startHead(base, pool, 1, ['--delivery', 'dcd']);
    const [dev] = await peripherals(h.session, 'cxl-type3');
    dcd = `/machine/peripheral/${dev}`;
  });
  afterAll(() => {
    h?.session.close();
    h?.listener.close();
  });

  const add = (offset: number, len: number) =>
    h.session.execute('cxl-add-dynamic-capacity', {
      path: dcd,
      'host-id': 0,
      'selection-policy': 'prescriptive',
      region: 0,
      extents: [{ offset, len }],
    });

  it('§6 the DCD device carries a DC region over the pool: volatile-dc-memdev is linked, num-dc-regions is 1', async () => {
    const link = await h.session.execute<string>('qom-get', { path: dcd, property: 'volatile-dc-memdev' });
    expect([link.startsWith('/objects/'), await h.session.execute('qom-get', { path: dcd, property: 'num-dc-regions' })]).toEqual([
      true,
      1,
    ]);
  });

  it('§6 cxl-add-dynamic-capacity is accepted on a paused VM with no guest', async () => {
    expect(await qmpError(add(0, 256 * MiB))).toBe('accepted');
  });

  it('§6 an add overlapping a pending extent: "cannot add DPA again while still pending"', async () => {
    expect(await qmpError(add(0, 256 * MiB))).toMatch(/cannot add DPA again while still pending/);
  });

  it('§6 an extent not aligned to the region block size: "dpa or len is not aligned"', async () => {
    expect(await qmpError(add(1 * MiB, 256 * MiB))).toMatch(/dpa or len is not aligned to region block size/);
  });
});

describe('command lines QEMU accepts and refuses (§1)', () => {
  // The head's own arguments with the monitor dropped, then one change each.
  const args: string[] = [];
  let pool = '';
  beforeAll(() => {
    const base = tempDir();
    pool = poolName();
    const dirArgs = ['--run-dir', join(base, 'run'), '--state-dir', join(base, 'state')];
    cliOut(['pool', 'create', '--pool', pool, '--capacity', '1G', '--heads', '1', ...dirArgs]);
    const all = cliOut(['qemu-args', '--pool', pool, '--head', '0', ...dirArgs, '--with-binary', '--memory', '256M', '--static', '256M@0'])
      .trim()
      .split('\n');
    for (let i = 0; i < all.length; i++) {
      const monitor = all[i] === '-mon' || (all[i] === '-object' && all[i + 1]?.startsWith('monitor-qmp,'));
      if ((all[i] === '-chardev' || monitor) && i + 1 < all.length) {
        i++;
        continue;
      }
      args.push(all[i] as string);
    }
  });

  /** Starts QEMU with a QMP monitor on stdio and asks it to quit: "accepted", or its error line. */
  async function run(argv: string[]): Promise<string> {
    const q = startQemu([...argv, '-display', 'none', '-nodefaults', '-qmp', 'stdio']);
    q.child.stdin?.end('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
    const code = await q.exited;
    return code === 0 ? 'accepted' : `exit ${code}: ${q.stderr().trim()}`;
  }
  const edit = (from: RegExp, to: string) => args.map((a) => a.replace(from, to));

  it('§1 the head arguments as qemu-args prints them are accepted (the reference for the refusals below)', async () => {
    expect(await run(args)).toBe('accepted');
  });

  it('§1 a missing mem-path is created by QEMU, silently: a typo gives the head private memory', async () => {
    const missing = `/dev/shm/cxl-mhd-facts-${process.pid}-missing.mem`;
    rmSync(missing, { force: true });
    try {
      const r = await run(edit(/mem-path=[^,]+/, `mem-path=${missing}`));
      expect({ r, created: existsSync(missing) && statSync(missing).isFile() }).toEqual({ r: 'accepted', created: true });
    } finally {
      rmSync(missing, { force: true });
    }
  });

  it('§1 virtio-serial-pci without bus= after a pxb-cxl lands on the CXL bus and QEMU exits', async () => {
    expect(await run(edit(/^virtio-serial-pci,bus=pcie\.0,/, 'virtio-serial-pci,'))).toMatch(
      /Only PCI\/PCIe bridges can be plugged into pxb-cxl/,
    );
  });

  it('§1 cxl-fmw.0.size must be a multiple of 256 MiB', async () => {
    expect(await run(edit(/cxl-fmw\.0\.size=[^,]+/, 'cxl-fmw.0.size=300M'))).toMatch(/must be a multiple of 256MiB/);
  });

  it('§1 a pxb-cxl without cxl=on: "CXL host bridges present, but cxl=off"', async () => {
    expect(await run(edit(/^q35,.*$/, 'q35,accel=tcg'))).toMatch(/CXL host bridges present, but cxl=off/);
  });

  it('§1 a memory-backend-file offset must be page aligned', async () => {
    expect(await run(edit(/,offset=0,/, ',offset=1000,'))).toMatch(/must be multiples of page size/);
  });

  it('§1 -chardev socket without reconnect-ms and nobody listening: QEMU exits ("Failed to connect")', async () => {
    const sock = join(tempDir(), 'nobody.sock');
    expect(await run([...args, '-chardev', `socket,id=facts,path=${sock}`, '-mon', 'chardev=facts,mode=control'])).toMatch(
      /Failed to connect to '.*nobody\.sock'/,
    );
  });
});

describe('share=on between two QEMUs (§1)', () => {
  it("§1 two QEMUs with memory-backend-file share=on over one file see each other's writes", async () => {
    // Each VM's RAM is the shared file; VM A's firmware writes the real-mode
    // interrupt table at address 0 after cont, and VM B (still paused) reads
    // it back with HMP xp. The host seeds 0xa5 so a change is visible.
    const file = `/dev/shm/cxl-mhd-facts-${process.pid}.ram`;
    const size = 128 * MiB;
    const fd = openSync(file, 'w+', 0o600);
    const dir = tempDir();
    const listeners: Listener[] = [];
    const sessions: QmpSession[] = [];
    try {
      ftruncateSync(fd, size);
      writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 0);
      const qemu = resolveQemu();
      const vm = async (name: string): Promise<QmpSession> => {
        const path = join(dir, `${name}.sock`);
        const l = await Listener.open(path);
        listeners.push(l);
        startQemu(
          qemuArgv(qemu, [
            '-S',
            '-machine',
            'q35,accel=tcg,memory-backend=ram',
            '-object',
            `memory-backend-file,id=ram,mem-path=${file},size=${size},share=on`,
            '-m',
            `${size / MiB}M`,
            '-chardev',
            `socket,id=mon,path=${path},reconnect-ms=${REDIAL_MS}`,
            '-mon',
            'chardev=mon,mode=control',
            '-display',
            'none',
            '-nodefaults',
          ]),
        );
        const s = await QmpSession.open(await l.next(), { commandTimeoutMs: 30_000, greetingTimeoutMs: 30_000 });
        sessions.push(s);
        return s;
      };
      const a = await vm('a');
      const b = await vm('b');
      const xp = async () =>
        (await b.execute<string>('human-monitor-command', { 'command-line': 'xp /16xb 0' }))
          .split(/\s+/)
          .filter((w) => /^0x[0-9a-f]{2}$/.test(w))
          .map((w) => Number.parseInt(w, 16));
      const host = () => {
        const b = Buffer.alloc(16);
        readSync(fd, b, 0, 16, 0);
        return [...b].join();
      };
      const seeded = (await xp()).join();
      await a.execute('cont');
      // Until A's firmware has written there and the bytes hold still across B's read.
      let seen = { before: '', b: '', after: '' };
      await eventually(async () => {
        seen = { before: host(), b: (await xp()).join(), after: host() };
        return seen.before !== seeded && seen.before === seen.after;
      }, "VM A's firmware to write low memory").catch(() => {});
      expect({ seeded: seeded === Array(16).fill(0xa5).join(), changed: seen.before !== seeded, bSeesA: seen.b === seen.before }).toEqual({
        seeded: true,
        changed: true,
        bSeesA: true,
      });
    } finally {
      for (const s of sessions) s.close();
      for (const l of listeners) l.close();
      await killAll();
      closeSync(fd);
      rmSync(file, { force: true });
    }
  });
});

// Issue 22 (docs/qemu-facts.md §9): what QEMU shows of whether a guest can
// still reach a released LD, without a guest. The guest-side facts (the
// direct-mapping alias of QEMU 11 outliving the device) need a real guest:
// test/security/release-isolation-qemu.test.ts checks them.
describe('reachability of a released LD, no guest (§9)', () => {
  let h: Head;
  let port = '';
  const mtree = async () => h.session.execute<string>('human-monitor-command', { 'command-line': 'info mtree' });
  const named = (tree: string, id: string) => new RegExp(`(^|[\\s@])${id}(\\s|$)`, 'm').test(tree);
  beforeAll(async () => {
    h = await startHead(tempDir(), poolName(), 0, ['--static', '256M@0', '--spare-ports', '1']);
    const [dev] = await peripherals(h.session, 'cxl-type3');
    const busOfStatic = await h.session.execute<string>('qom-get', { path: `/machine/peripheral/${dev}`, property: 'parent_bus' });
    port = (await peripherals(h.session, 'cxl-rp')).find((rp) => !busOfStatic.includes(`/${rp}/`)) ?? '';
  });
  afterAll(() => {
    h?.session.close();
    h?.listener.close();
  });

  it('§9 info mtree names a hot-added LD backend while its device is present, as the root of the device address space', async () => {
    await addBackend(h, 'reach-ld', 512 * MiB);
    await h.session.execute('device_add', { driver: 'cxl-type3', bus: port, 'volatile-memdev': 'reach-ld', id: 'reach-ld', sn: 4244 });
    const tree = await mtree();
    expect({ named: named(tree, 'reach-ld'), alias: /alias \S+ @reach-ld /.test(tree) }).toEqual({ named: true, alias: false });
  });

  it('§9 once the device left (no decoder ever committed), its backend is in no address space and nothing aliases it', async () => {
    await h.session.execute('device_del', { id: 'reach-ld' });
    await eventually(
      async () =>
        (await qmpError(h.session.execute('qom-get', { path: '/machine/peripheral/reach-ld', property: 'type' }))).startsWith(
          'DeviceNotFound',
        ),
      'reach-ld to leave QOM',
    );
    expect(named(await mtree(), 'reach-ld')).toBe(false);
  });

  it('§9 object-del of that backend still fails: a backend that cannot be deleted is no evidence either way', async () => {
    expect(await qmpError(h.session.execute('object-del', { id: 'reach-ld' }))).toMatch(/in use, can not be deleted|which is mapped/);
  });
});

describe('what changed between 10.0 and 11.1 (§10)', () => {
  /** QEMU with a QMP monitor on stdio, told to quit: its exit code and stderr. */
  async function startAndQuit(extra: string[]): Promise<{ code: number | null; stderr: string }> {
    const q = startQemu(qemuArgv(resolveQemu(), ['-S', '-machine', 'q35', '-display', 'none', '-nodefaults', '-qmp', 'stdio', ...extra]));
    q.child.stdin?.end('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
    return { code: await q.exited, stderr: q.stderr().trim() };
  }

  it('§10 -mon warns that it is deprecated on 11.1, silently accepted on 10.0', async () => {
    const sock = join(tempDir(), 'mon.sock');
    const r = await startAndQuit(['-chardev', `socket,id=m,path=${sock},server=on,wait=off`, '-mon', 'chardev=m,mode=control']);
    expect({ code: r.code, warned: /'-mon' is deprecated/.test(r.stderr) }, onQemu(`-mon (stderr: ${r.stderr})`)).toEqual({
      code: 0,
      warned: QEMU.monitorObject,
    });
  });

  it('§10 -object monitor-qmp,id=…,chardev=… is a QMP monitor on 11.1 (no warning); 10.0 has no such object', async () => {
    const sock = join(tempDir(), 'monobj.sock');
    const r = await startAndQuit(['-chardev', `socket,id=m,path=${sock},server=on,wait=off`, '-object', 'monitor-qmp,id=mo,chardev=m']);
    expect(r, onQemu('-object monitor-qmp')).toEqual(
      QEMU.monitorObject
        ? { code: 0, stderr: '' }
        : { code: 1, stderr: expect.stringMatching(/Parameter 'qom-type' does not accept value 'monitor-qmp'/) },
    );
  });

  it('§10 the monitor qemu-args prints for this QEMU: monitor-qmp on 11.1, -mon on 10.0', () => {
    const argv = cliOut(['qemu-args', '--pool', 'facts-any', '--head', '0', '--capacity', '1G']).trim().split('\n');
    expect(
      { object: argv.includes('monitor-qmp,id=cxl-mhd-mon,chardev=cxl-mhd'), mon: argv.includes('-mon') },
      onQemu('qemu-args'),
    ).toEqual({
      object: QEMU.monitorObject,
      mon: !QEMU.monitorObject,
    });
  });

  it('§10 cxl-inject-{general-media,dram,memory-module}-event take head-id and ld-id and require sub-type on 11.1; 10.0 has neither', async () => {
    const q = startQemu(qemuArgv(resolveQemu(), ['-S', '-machine', 'q35', '-display', 'none', '-nodefaults', '-qmp', 'stdio']));
    const lines = rawLines(q.child.stdout as unknown as Socket);
    q.child.stdin?.write('{"execute":"qmp_capabilities"}\n{"execute":"query-qmp-schema","id":1}\n');
    let schema: { name: string; 'meta-type': string; 'arg-type'?: string; members?: { name: string; default?: null }[] }[] = [];
    for (;;) {
      const m = await lines.next();
      if (m.id === 1) {
        schema = m.return as typeof schema;
        break;
      }
    }
    q.child.stdin?.end('{"execute":"quit"}\n');
    await q.exited;
    const byName = new Map(schema.map((e) => [e.name, e]));
    const seen: Record<string, { headId: boolean; ldId: boolean; subTypeRequired: boolean }> = {};
    for (const cmd of ['cxl-inject-general-media-event', 'cxl-inject-dram-event', 'cxl-inject-memory-module-event']) {
      const members = byName.get(byName.get(cmd)?.['arg-type'] ?? '')?.members ?? [];
      const m = (n: string) => members.find((x) => x.name === n);
      seen[cmd] = {
        headId: m('head-id') !== undefined,
        ldId: m('ld-id') !== undefined,
        subTypeRequired: m('sub-type')?.default === undefined && m('sub-type') !== undefined,
      };
    }
    const want = { headId: QEMU.injectPerHead, ldId: QEMU.injectPerHead, subTypeRequired: QEMU.injectPerHead };
    expect(seen, onQemu('cxl-inject-*-event arguments')).toEqual({
      'cxl-inject-general-media-event': want,
      'cxl-inject-dram-event': want,
      'cxl-inject-memory-module-event': want,
    });
  });
});
