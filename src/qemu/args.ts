// The QEMU arguments that make a VM head I of a pool (`cxl-mhd qemu-args`):
// paused start, q35 with CXL, TCG, the CXL layout of layout.ts (one host
// bridge + window per root port: the static window's, then spare ports for
// hot-add), phys-bits when the windows need them, the type-3 device over a
// window of the pool's data object, virtio-serial for the FM-LD port, and
// the monitor chardev that dials the backend (`-object monitor-qmp` where
// the QEMU has it, `-mon` before). Verified on QEMU 10.0 and 11.1.
import { UsageError } from '../errors/index.js';
import { CAPACITY_UNIT, dataObjectPath, headSocketPath, parseSize } from '../pool/index.js';
import { qemuFeatures } from './features.js';
import { cxlLayout, type LayoutBridge, layoutArgs, MAX_CXL_HOST_BRIDGES, MAX_SPARE_PORTS } from './layout.js';
import {
  DC_BACKEND_ID,
  HOST_BRIDGE_ID,
  headSerial,
  MONITOR_CHARDEV_ID,
  MONITOR_OBJECT_ID,
  RAM_BACKEND_ID,
  rootPortId,
  STATIC_DEVICE_ID,
  staticBackendId,
  VSER_ID,
} from './names.js';

export interface StaticWindow {
  offset: number;
  size: number;
  exclusive: boolean;
}

export interface HeadArgsOptions {
  pool: string;
  head: number;
  runDir: string;
  /** The pool's capacity, to size the CXL fixed memory window for hot-add. */
  capacityBytes: number;
  static?: StaticWindow;
  sparePorts?: number;
  /** How dynamic capacity reaches this head: LD hot-add (default) or DCD extents. */
  delivery?: 'hotplug' | 'dcd';
  /** Guest RAM. */
  memory?: string;
  reconnectMs?: number;
  /**
   * The QEMU these arguments are for ("11.1.3"); it picks the monitor's
   * spelling. Unknown: `-mon`, which every QEMU >= 10.0 accepts (11.1 warns).
   */
  qemuVersion?: string;
}

/**
 * One NUMA node holding the guest's RAM, where the QEMU lets a guest online
 * CXL memory as System RAM: only with an SRAT does Linux give each CXL window
 * a node of its own (a CPU-less node for `numactl --membind`); without one,
 * System RAM joins node 0. Older QEMUs keep their plain arguments.
 */
export function numaArgs(qemuVersion: string | undefined, memory: string): string[] {
  if (qemuVersion === undefined || !qemuFeatures(qemuVersion).systemRam) return [];
  // QEMU's -m reads a bare number as MiB; a memory backend's size would read it as bytes.
  const size = /^\d+$/.test(memory) ? `${memory}M` : memory;
  return ['-object', `memory-backend-ram,id=${RAM_BACKEND_ID},size=${size}`, '-numa', `node,nodeid=0,memdev=${RAM_BACKEND_ID}`];
}

/** A QMP monitor on a chardev (by default the head's, which dials the backend), as this QEMU spells it. */
export function monitorArgs(qemuVersion: string | undefined, chardev = MONITOR_CHARDEV_ID, id = MONITOR_OBJECT_ID): string[] {
  if (qemuVersion !== undefined && qemuFeatures(qemuVersion).monitorObject) {
    return ['-object', `monitor-qmp,id=${id},chardev=${chardev}`];
  }
  return ['-mon', `chardev=${chardev},mode=control`];
}

/** `SIZE[@OFFSET][,exclusive]`, e.g. `512M`, `256M@1G,exclusive`. */
export function parseStaticWindow(text: string): StaticWindow {
  const m = /^([^@,]+)(?:@([^,]+))?(?:,(exclusive|shared))?$/.exec(text.trim());
  if (!m?.[1]) {
    throw new UsageError(`static window "${text}" must look like SIZE[@OFFSET][,exclusive], e.g. 512M@1G,exclusive`);
  }
  const size = parseSize(m[1], 'static window size');
  const offset = m[2] === undefined || /^\s*0+[KMGTP]?(?:i?B)?\s*$/i.test(m[2]) ? 0 : parseSize(m[2], 'static window offset');
  if (size % CAPACITY_UNIT !== 0 || offset % CAPACITY_UNIT !== 0) {
    throw new UsageError(`static window "${text}": size and offset must be multiples of 256M`);
  }
  return { size, offset, exclusive: m[3] === 'exclusive' };
}

/** The CXL bridges, ports and windows of a head (docs/qemu-heads.md): one bridge and window per root port. */
export function headLayout(opts: Pick<HeadArgsOptions, 'capacityBytes' | 'static' | 'sparePorts' | 'delivery'>): LayoutBridge[] {
  const dcd = opts.delivery === 'dcd';
  // A DCD head takes capacity as extents on its one device: no spare ports needed.
  const spare = opts.sparePorts ?? (dcd ? 0 : 2);
  if (!Number.isInteger(spare) || spare < 0 || spare > MAX_SPARE_PORTS) {
    throw new UsageError(
      `--spare-ports ${spare} must be 0..${MAX_SPARE_PORTS}: QEMU 10.0 allows ${MAX_CXL_HOST_BRIDGES} CXL host bridges and each port takes one`,
    );
  }
  // Each spare port may carry up to the whole pool, a DC region spans it; windows are only address space.
  return cxlLayout({
    staticBytes: opts.static?.size ?? 0,
    dcBytes: dcd ? opts.capacityBytes : 0,
    sparePorts: spare,
    ldMaxBytes: opts.capacityBytes,
  });
}

/** `-cpu max` under TCG has 40 physical address bits (1 TiB). */
const DEFAULT_PHYS_BITS = 40;
/** RAM above 4 GiB, the 64-bit PCI hole and the CXL register space also need room; this margin covered them in the spike. */
const ADDRESS_MARGIN = 64 * 2 ** 30;

/**
 * The `phys-bits` the windows need, or null when the default 40 are enough:
 * QEMU refuses windows past the CPU's address width ("phys-bits too low").
 * 46 was verified with windows above 1 TiB (docs/qemu-facts.md §7).
 */
export function physBitsFor(windowBytes: number, ramBytes: number): number | null {
  const need = 4 * 2 ** 30 + ramBytes + windowBytes + ADDRESS_MARGIN;
  if (need <= 2 ** DEFAULT_PHYS_BITS) return null;
  const bits = Math.max(46, Math.ceil(Math.log2(need)));
  if (bits > 52) throw new UsageError(`the CXL windows need ${need} bytes of address space, more than 52 physical address bits`);
  return bits;
}

export function headArgs(opts: HeadArgsOptions): string[] {
  const { pool, head } = opts;
  const dcd = opts.delivery === 'dcd';
  const st = opts.static;
  if (st && st.offset + st.size > opts.capacityBytes) {
    throw new UsageError(`static window ${st.size}@${st.offset} ends past the pool's ${opts.capacityBytes} bytes`);
  }
  const bridges = headLayout(opts);
  const sock = headSocketPath(opts.runDir, pool, head);
  const memory = opts.memory ?? '1G';
  const windows = bridges.reduce((n, b) => n + b.windowBytes, 0);
  // QEMU's -m reads a bare number as MiB.
  const physBits = physBitsFor(windows, /^\d+$/.test(memory) ? Number(memory) * 2 ** 20 : parseSize(memory, 'memory'));
  // No port at all still gets bridge 0 and a minimal window, as older releases did.
  const { machineKeys, devices } =
    bridges.length > 0
      ? layoutArgs(bridges)
      : {
          machineKeys: [`cxl-fmw.0.targets.0=${HOST_BRIDGE_ID}`, `cxl-fmw.0.size=${CAPACITY_UNIT / 2 ** 20}M`],
          devices: ['-device', `pxb-cxl,bus_nr=12,bus=pcie.0,id=${HOST_BRIDGE_ID}`],
        };
  const args = [
    '-S',
    '-machine',
    ['q35,cxl=on,accel=tcg', ...machineKeys].join(','),
    '-cpu',
    `max,hypervisor=off${physBits ? `,phys-bits=${physBits}` : ''}`,
    '-m',
    memory,
    ...numaArgs(opts.qemuVersion, memory),
    '-chardev',
    `socket,id=${MONITOR_CHARDEV_ID},path=${sock},reconnect-ms=${opts.reconnectMs ?? 1000}`,
    ...monitorArgs(opts.qemuVersion),
    ...devices,
  ];
  if (st || dcd) {
    const memdevs: string[] = [];
    if (st) {
      const backendId = staticBackendId(st.exclusive);
      args.push(
        '-object',
        `memory-backend-file,id=${backendId},mem-path=${dataObjectPath(pool)},offset=${st.offset},size=${st.size},share=on`,
      );
      memdevs.push(`volatile-memdev=${backendId}`);
    }
    if (dcd) {
      // One DC region over the whole pool file, so a region offset is a pool offset.
      args.push(
        '-object',
        `memory-backend-file,id=${DC_BACKEND_ID},mem-path=${dataObjectPath(pool)},offset=0,size=${opts.capacityBytes},share=on`,
      );
      memdevs.push(`volatile-dc-memdev=${DC_BACKEND_ID}`, 'num-dc-regions=1');
    }
    args.push(
      '-device',
      `cxl-type3,bus=${rootPortId(0)},${memdevs.join(',')},id=${STATIC_DEVICE_ID},sn=0x${headSerial(pool, head).toString(16)}`,
    );
  }
  // Without bus= QEMU would put it on the CXL host bridge's bus and fail.
  args.push('-device', `virtio-serial-pci,bus=pcie.0,id=${VSER_ID}`);
  return args;
}
