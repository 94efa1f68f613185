// Owns the CXL topology of one head's VM: which CXL host bridges (pxb-cxl),
// root ports (cxl-rp) and fixed memory windows (cxl-fmw.N) `qemu-args` lays
// out, so that every LD hot-added on a spare port can get its own region in
// a stock guest. Pure: no I/O. Verified on QEMU 10.0.13 + Debian 6.12 with
// 16 spare ports (docs/qemu-facts.md §7; test/capacity/tags-qemu.test.ts, make bench).
//
// Why one bridge per port: a pxb-cxl with a single root port has no HDM
// decoders in QEMU (hdm_for_passthrough=off) and Linux decodes through it as
// a passthrough port, so a region needs only the root decoder (the bridge's
// window) and the device's own decoder. Bridges with several ports would
// spend one of their 4 HDM decoders per region, and Linux resets a port's
// decoders only in reverse commit order, so removing anything but the newest
// LD would strand a decoder. One window per bridge keeps the guest's rule
// trivial: window N is root decoder decoder0.N and reaches bridge N only.
import { UsageError } from '../errors/index.js';
import { CAPACITY_UNIT } from '../pool/index.js';
import { hostBridgeId, rootPortId } from './names.js';

/** QEMU 10.0 q35 has register space for 17 pxb-cxl ("Insufficient space for pxb cxl host register space" at the 18th). */
export const MAX_CXL_HOST_BRIDGES = 17;
export const MAX_SPARE_PORTS = MAX_CXL_HOST_BRIDGES - 1;
/** Bus numbers: bridge i is bus 12 + 4i, its root port's secondary bus the next one (verified up to i = 16, bus 76). */
const FIRST_BUS = 12;
const BUS_STRIDE = 4;

export interface LayoutPort {
  /** qdev id: cxl-mhd-rp<N>, numbered across all bridges (rp0 is the static/DCD port when there is one). */
  id: string;
  /** What the port is for. */
  role: 'static' | 'spare';
}

export interface LayoutBridge {
  id: string;
  busNr: number;
  /** Index N of its fixed memory window: the guest sees it as root decoder decoder0.N. */
  window: number;
  windowBytes: number;
  port: LayoutPort;
}

export interface LayoutOptions {
  /** Bytes of the static window (0: none). */
  staticBytes: number;
  /** Bytes of a DCD head's DC region (0: not a DCD head). It sits on the static port's device. */
  dcBytes: number;
  /** Spare root ports for LD hot-add, 0..16. */
  sparePorts: number;
  /** The largest LD one spare port may receive (the pool's capacity). */
  ldMaxBytes: number;
}

const roundUnit = (n: number) => Math.ceil(n / CAPACITY_UNIT) * CAPACITY_UNIT;

/** The bridges, ports and windows for a head; bridge 0 first. */
export function cxlLayout(opts: LayoutOptions): LayoutBridge[] {
  const { sparePorts: k } = opts;
  if (!Number.isInteger(k) || k < 0 || k > MAX_SPARE_PORTS) {
    throw new UsageError(`--spare-ports ${k} must be 0..${MAX_SPARE_PORTS}`);
  }
  const ports: { role: LayoutPort['role']; bytes: number }[] = [];
  if (opts.staticBytes > 0 || opts.dcBytes > 0)
    ports.push({ role: 'static', bytes: roundUnit(opts.staticBytes) + roundUnit(opts.dcBytes) });
  for (let i = 0; i < k; i++) ports.push({ role: 'spare', bytes: roundUnit(opts.ldMaxBytes) });
  return ports.map((p, i) => ({
    // Bridge 0 keeps the id older releases used, so configs and re-adoption stay valid.
    id: hostBridgeId(i),
    busNr: FIRST_BUS + BUS_STRIDE * i,
    window: i,
    // A window is address space, not RAM; QEMU wants a positive multiple of 256 MiB.
    windowBytes: Math.max(CAPACITY_UNIT, p.bytes),
    port: { id: rootPortId(i), role: p.role },
  }));
}

/** The `-machine` keys (append to `q35,cxl=on,...`) and the `-device` pairs for a layout. */
export function layoutArgs(bridges: LayoutBridge[]): { machineKeys: string[]; devices: string[] } {
  const machineKeys: string[] = [];
  const devices: string[] = [];
  for (const b of bridges) {
    machineKeys.push(`cxl-fmw.${b.window}.targets.0=${b.id}`, `cxl-fmw.${b.window}.size=${b.windowBytes / 2 ** 20}M`);
    devices.push('-device', `pxb-cxl,bus_nr=${b.busNr},bus=pcie.0,id=${b.id}`);
    // One port per bridge: port number 0; (chassis, slot) must be unique per VM for PCIe hotplug slots.
    devices.push('-device', `cxl-rp,port=0,bus=${b.id},id=${b.port.id},chassis=${b.window + 1},slot=0`);
  }
  return { machineKeys, devices };
}

/** Root decoder a guest must use for a memdev on `portId` (window N ↔ decoder0.N). */
export function rootDecoderFor(bridges: LayoutBridge[], portId: string): string | null {
  const b = bridges.find((x) => x.port.id === portId);
  return b ? `decoder0.${b.window}` : null;
}
