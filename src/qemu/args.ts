// The QEMU arguments that make a VM head I of a pool (`cxl-mhd qemu-args`):
// paused start, q35 with CXL, TCG, a CXL host bridge with one root port for
// the static window plus spare ports for hot-add, the type-3 device over a
// window of the pool's data object, virtio-serial for the FM-LD port, and
// the monitor chardev that dials the backend. Verified on QEMU 10.0.
import { UsageError } from '../errors/index.js';
import { CAPACITY_UNIT, dataObjectPath, headSocketPath, parseSize } from '../pool/index.js';
import {
  DC_BACKEND_ID,
  HOST_BRIDGE_ID,
  headSerial,
  MONITOR_CHARDEV_ID,
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

export function fixedWindowBytes(opts: Pick<HeadArgsOptions, 'capacityBytes' | 'static' | 'sparePorts' | 'delivery'>): number {
  // Each spare port may carry up to the whole pool, a DC region spans it; the window is only address space.
  const dynamic = opts.delivery === 'dcd' ? opts.capacityBytes : (opts.sparePorts ?? 0) * opts.capacityBytes;
  const need = (opts.static?.size ?? 0) + dynamic;
  return Math.max(CAPACITY_UNIT, Math.ceil(need / CAPACITY_UNIT) * CAPACITY_UNIT);
}

export function headArgs(opts: HeadArgsOptions): string[] {
  const { pool, head } = opts;
  const dcd = opts.delivery === 'dcd';
  // A DCD head takes capacity as extents on its one device: no spare ports needed.
  const spare = opts.sparePorts ?? (dcd ? 0 : 2);
  if (!Number.isInteger(spare) || spare < 0 || spare > 16) throw new UsageError(`--spare-ports ${spare} must be 0..16`);
  const st = opts.static;
  if (st && st.offset + st.size > opts.capacityBytes) {
    throw new UsageError(`static window ${st.size}@${st.offset} ends past the pool's ${opts.capacityBytes} bytes`);
  }
  const sock = headSocketPath(opts.runDir, pool, head);
  const fmw = fixedWindowBytes({ capacityBytes: opts.capacityBytes, static: st, sparePorts: spare, delivery: opts.delivery });
  const args = [
    '-S',
    '-machine',
    `q35,cxl=on,accel=tcg,cxl-fmw.0.targets.0=${HOST_BRIDGE_ID},cxl-fmw.0.size=${fmw / 2 ** 20}M`,
    '-cpu',
    'max,hypervisor=off',
    '-m',
    opts.memory ?? '1G',
    '-chardev',
    `socket,id=${MONITOR_CHARDEV_ID},path=${sock},reconnect-ms=${opts.reconnectMs ?? 1000}`,
    '-mon',
    `chardev=${MONITOR_CHARDEV_ID},mode=control`,
    '-device',
    `pxb-cxl,bus_nr=12,bus=pcie.0,id=${HOST_BRIDGE_ID}`,
  ];
  const ports = (st || dcd ? 1 : 0) + spare;
  for (let p = 0; p < ports; p++) {
    args.push('-device', `cxl-rp,port=${p},bus=${HOST_BRIDGE_ID},id=${rootPortId(p)},chassis=0,slot=${p}`);
  }
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
