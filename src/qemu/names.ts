// Every QEMU id the product builds or parses, in one place: the ids
// `qemu-args` gives a head's devices and objects, the ids the backend
// creates over QMP (FM-LD port, hot-added LDs), how a hot-added LD's id
// names its root port, and the serial-number scheme. Pure: no addon, no
// pool, so the guest-side FM client can load it.
import { createRequire } from 'node:module';

// ---- devices and objects `qemu-args` declares --------------------------------

export const MONITOR_CHARDEV_ID = 'cxl-mhd';
/** The `monitor-qmp` object over that chardev (QEMU >= 11.1; older ones get `-mon`). */
export const MONITOR_OBJECT_ID = 'cxl-mhd-mon';
/** The guest RAM's backend, for the one NUMA node of a head on QEMU >= 11.1 (args.ts numaArgs). */
export const RAM_BACKEND_ID = 'cxl-mhd-ram';
/** CXL host bridge 0 (the static/DCD port's); older releases had only this one. */
export const HOST_BRIDGE_ID = 'cxl-mhd-hb';
/** The virtio-serial controller; its one bus carries the FM-LD port. */
export const VSER_ID = 'cxl-mhd-vser';
export const VSER_BUS = `${VSER_ID}.0`;
/** The head's cxl-type3: static window and/or DC region. */
export const STATIC_DEVICE_ID = 'cxl-mhd-mem0';
export const STATIC_BACKEND_ID = 'cxl-mhd-static';
export const DC_BACKEND_ID = 'cxl-mhd-dc';
/** A memory backend whose id ends so is an exclusive window (read back by discovery). */
export const EXCLUSIVE_SUFFIX = '-excl';
export const ROOT_PORT_PREFIX = 'cxl-mhd-rp';

/** CXL host bridge i (one per root port, docs/qemu-heads.md); bridge 0 keeps the old id. */
export function hostBridgeId(index: number): string {
  return index === 0 ? HOST_BRIDGE_ID : `${HOST_BRIDGE_ID}${index}`;
}

export function rootPortId(index: number): string {
  return `${ROOT_PORT_PREFIX}${index}`;
}

/** The index of a root port id of ours, or null for any other id. */
export function rootPortIndex(id: string): number | null {
  if (!id.startsWith(ROOT_PORT_PREFIX)) return null;
  const rest = id.slice(ROOT_PORT_PREFIX.length);
  return /^\d+$/.test(rest) ? Number(rest) : null;
}

export function staticBackendId(exclusive: boolean): string {
  return exclusive ? `${STATIC_BACKEND_ID}${EXCLUSIVE_SUFFIX}` : STATIC_BACKEND_ID;
}

export function isExclusiveBackend(backendId: string): boolean {
  return backendId.endsWith(EXCLUSIVE_SUFFIX);
}

/** QOM path of a device given with `id=`. */
export function peripheralPath(deviceId: string): string {
  return `/machine/peripheral/${deviceId}`;
}

// ---- hot-added LDs (LD hot-add delivery) ------------------------------------

const LD_DEVICE_PREFIX = 'cxl-mhd-ld';
const LD_BACKEND_PREFIX = 'cxl-mhd-ldmem';
const LD_LSA_PREFIX = 'cxl-mhd-lsa';

/** A hot-added LD is named after the root port it sits on, so re-adoption finds its port again. */
export function ldDeviceId(port: string): string {
  return `${LD_DEVICE_PREFIX}-${port}`;
}

/** The root port a hot-added LD's id names, or null when the id is not a hot-added LD's. */
export function ldPortOf(deviceId: string): string | null {
  const prefix = `${LD_DEVICE_PREFIX}-`;
  return deviceId.startsWith(prefix) && deviceId.length > prefix.length ? deviceId.slice(prefix.length) : null;
}

export function isLdDevice(deviceId: string): boolean {
  return ldPortOf(deviceId) !== null;
}

/** QEMU 10.0 cannot delete a used memory backend, so every hot-add takes a fresh id. */
export function ldBackendId(n: number): string {
  return `${LD_BACKEND_PREFIX}-${n}`;
}

/** The label storage area backend of a hot-add: fresh per hot-add for the same reason. */
export function ldLsaBackendId(n: number): string {
  return `${LD_LSA_PREFIX}-${n}`;
}

// ---- the FM-LD channel ---------------------------------------------------------

export const FMLD_FD_NAME = 'cxl-mhd-fmld-fd';
export const FMLD_CHARDEV_ID = 'cxl-mhd-fmld';
export const FMLD_PORT_ID = 'cxl-mhd-fmld-port';
/** The virtserialport name the owner guest finds under /sys/class/virtio-ports. */
export const FMLD_PORT_NAME = 'cxl-mhd.fmld';

// ---- serial numbers ------------------------------------------------------------

/** Head bits of the device's own serial (FM-API Identify): all ones, no head has it. */
export const DEVICE_SERIAL_HEAD = 0xffff;
/** Hot-added LDs take head bits 0x8000 + root port index, above any head id. */
export const LD_SERIAL_BASE = 0x8000;

/**
 * A stable PCIe serial number per (pool, head): the guest shows it as
 * memX/serial. Kept below 2^53 so it survives JSON (QMP, status) intact:
 * 0xc7 marker, 28 bits of pool hash, 16 bits of head.
 */
export function headSerial(pool: string, head: number): bigint {
  // node:crypto is loaded on first use: the guest's `fm` commands import these names and never hash.
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  const h = createHash('sha256').update(`cxl-mhd:${pool}`).digest();
  return (0xc7n << 44n) | (BigInt(h.readUInt32BE(0) & 0xfff_ffff) << 16n) | BigInt(head);
}

/** The serial the FM-API reports for the multi-headed device itself. */
export function deviceSerial(pool: string): bigint {
  return headSerial(pool, DEVICE_SERIAL_HEAD);
}

/** A hot-added LD's serial: distinct from every head's and from the device's. */
export function ldSerial(pool: string, port: string): bigint {
  return headSerial(pool, LD_SERIAL_BASE + (rootPortIndex(port) ?? 0));
}
