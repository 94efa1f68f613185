// What a head's VM declares: finds the cxl-type3 devices whose memory is a
// window of this pool's data object (through QMP qom-list/qom-get) and
// judges whether a static window is acceptable. Exclusivity is read from
// the VM's own configuration: the memory backend's id ends in "-excl".
// The layout (one CXL host bridge per root port, or older VMs' one bridge
// with several ports) does not matter here: spare ports are found by id.

import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { DeliveryConfig } from '../capacity/index.js';
import { CAPACITY_UNIT, type Header } from '../pool/index.js';
import {
  isExclusiveBackend,
  isLdDevice,
  ldPortOf,
  peripheralPath,
  qemuFeatures,
  rootPortIndex,
  STATIC_BACKEND_ID,
  STATIC_DEVICE_ID,
} from '../qemu/index.js';
import { type QemuVersion, QmpCommandError } from '../qmp/index.js';

/** The few QMP calls device discovery needs; with the version, a QEMU that has `qom-list-get` is read in bulk. */
export interface QomReader {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
  readonly version?: QemuVersion;
}

/** One object's properties from `qom-list-get` (QEMU >= 11.1): `[{properties: [{name, type, value}]}]`, in request order. */
interface QomValues {
  properties: { name: string; type: string; value?: unknown }[];
}

/**
 * Properties of many objects in one command where QEMU has `qom-list-get`;
 * `qom-get` one by one otherwise, all sent at once (QMP answers in order, so
 * they cost one round trip, not one each). A path that is gone (a hot-remove
 * finishing) reads as empty; with `strict`, it fails the read instead.
 */
async function readObjects(
  qmp: QomReader,
  paths: string[],
  props: readonly string[],
  strict = false,
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  if (paths.length === 0) return out;
  // One gone path fails the whole qom-list-get (DeviceNotFound): then read one by one.
  const got =
    qmp.version && qemuFeatures(qmp.version).qomListGet
      ? await qmp.execute<QomValues[]>('qom-list-get', { paths }).catch((e) => {
          if (!strict && e instanceof QmpCommandError && e.errorClass === 'DeviceNotFound') return null;
          throw e;
        })
      : null;
  if (got !== null) {
    paths.forEach((path, i) => {
      const rec: Record<string, unknown> = {};
      for (const p of got[i]?.properties ?? []) if (props.includes(p.name) && 'value' in p) rec[p.name] = p.value;
      out.set(path, rec);
    });
    return out;
  }
  const reads = paths.flatMap((path) =>
    props.map(async (property) => {
      // QEMU's "no such device/property" reads as absent; a lost connection or a timeout must fail discovery.
      const v = await qmp.execute<unknown>('qom-get', { path, property }).catch((e) => {
        if (e instanceof QmpCommandError && !strict) return undefined;
        throw e;
      });
      return { path, property, v };
    }),
  );
  for (const path of paths) out.set(path, {});
  for (const { path, property, v } of await Promise.all(reads))
    if (v !== undefined) (out.get(path) as Record<string, unknown>)[property] = v;
  return out;
}

export interface PoolWindow {
  /** The cxl-type3 device id (its QOM path is /machine/peripheral/<id>). */
  deviceId: string;
  backendPath: string;
  backendId: string;
  memPath: string;
  offset: number;
  size: number;
  share: boolean;
  exclusive: boolean;
  /** The file behind the device's label storage area (a tagged hot-added LD), if it has one. */
  lsaPath?: string;
}

interface QomEntry {
  name: string;
  type: string;
}

const asNumber = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

const DEVICE_PROPS = ['volatile-memdev', 'lsa', 'volatile-dc-memdev'] as const;
const BACKEND_PROPS = ['type', 'mem-path', 'offset', 'size', 'share'] as const;

/** What discovery read from QOM: the peripherals and every cxl-type3's properties and backends. */
export interface QomSnapshot {
  peripherals: QomEntry[];
  devices: Map<string, Record<string, unknown>>;
  backends: Map<string, Record<string, unknown>>;
}

/** The objects a VM started with `cxl-mhd qemu-args` has: its static window's device and backend. */
export const QEMU_ARGS_OBJECTS = { devices: [peripheralPath(STATIC_DEVICE_ID)], backends: [`/objects/${STATIC_BACKEND_ID}`] };

/**
 * Reads the VM's peripherals, its cxl-type3 devices and their memory
 * backends: three commands with `qom-list-get`. With `expect` (what the VM
 * most likely has), those objects are read in the same round trip as the
 * peripheral list; what QOM then shows decides whether the read-ahead is
 * used, so a VM with other devices is read exactly as without it.
 */
export async function readQom(qmp: QomReader, expect?: { devices: string[]; backends: string[] }): Promise<QomSnapshot> {
  const listed = qmp.execute<QomEntry[]>('qom-list', { path: '/machine/peripheral' });
  const ahead = (paths: string[] | undefined, props: readonly string[]) =>
    paths ? readObjects(qmp, paths, props, true).catch(() => null) : Promise.resolve(null);
  const devicesAhead = ahead(expect?.devices, DEVICE_PROPS);
  const backendsAhead = ahead(expect?.backends, BACKEND_PROPS);
  const peripherals = await listed;
  const type3 = peripherals.filter((p) => p.type === 'child<cxl-type3>').map((p) => peripheralPath(p.name));
  const guessedDevices = await devicesAhead;
  const devices =
    guessedDevices && sameSet(type3, [...guessedDevices.keys()]) ? guessedDevices : await readObjects(qmp, type3, DEVICE_PROPS);
  const links = new Set<string>();
  for (const d of devices.values()) for (const k of DEVICE_PROPS) if (typeof d[k] === 'string' && d[k]) links.add(d[k] as string);
  const guessedBackends = await backendsAhead;
  const backends =
    guessedBackends && [...links].every((l) => guessedBackends.has(l))
      ? new Map([...guessedBackends].filter(([path]) => links.has(path)))
      : await readObjects(qmp, [...links], BACKEND_PROPS);
  return { peripherals, devices, backends };
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Every cxl-type3 of the VM whose volatile memory backend is a file (we
 * compare its mem-path with the pool's data object afterwards).
 */
export async function discoverWindows(qmp: QomReader, snap?: QomSnapshot): Promise<PoolWindow[]> {
  const { peripherals, devices, backends } = snap ?? (await readQom(qmp));
  const out: PoolWindow[] = [];
  for (const p of peripherals) {
    if (p.type !== 'child<cxl-type3>') continue;
    // A device can vanish between qom-list and its properties (a hot-remove finishing): it reads empty and is skipped.
    const dev = devices.get(peripheralPath(p.name)) ?? {};
    const backendPath = typeof dev['volatile-memdev'] === 'string' ? dev['volatile-memdev'] : '';
    if (!backendPath) continue;
    const b = backends.get(backendPath) ?? {};
    if (b.type !== 'memory-backend-file' || b['mem-path'] === undefined) continue;
    const backendId = backendPath.split('/').pop() ?? '';
    const lsa = typeof dev.lsa === 'string' && dev.lsa ? backends.get(dev.lsa)?.['mem-path'] : undefined;
    out.push({
      ...(lsa ? { lsaPath: String(lsa) } : {}),
      deviceId: p.name,
      backendPath,
      backendId,
      memPath: String(b['mem-path']),
      offset: asNumber(b.offset),
      size: asNumber(b.size),
      share: b.share === true,
      exclusive: isExclusiveBackend(backendId),
    });
  }
  return out;
}

/** Why a window of this pool cannot be accepted, or null if it can. */
export function windowProblem(w: PoolWindow, header: Header): string | null {
  const where = `device ${w.deviceId} (memory backend ${w.backendId}, offset ${w.offset}, size ${w.size})`;
  if (!w.share) return `${where} maps the pool without share=on, so its writes would stay private to this VM`;
  if (w.size <= 0 || w.size % CAPACITY_UNIT !== 0) return `${where}: size must be a positive multiple of 256 MiB`;
  if (w.offset % CAPACITY_UNIT !== 0) return `${where}: offset must be a multiple of 256 MiB`;
  if (w.offset + w.size > header.capacityBytes) {
    return `${where} ends at ${w.offset + w.size}, past the pool's ${header.capacityBytes} bytes`;
  }
  return null;
}

/** Hot-added LDs are grants, not static windows; they only exist on a VM being re-adopted. */
export function isHotAddedLd(w: PoolWindow): boolean {
  return isLdDevice(w.deviceId);
}

/**
 * A head is a DCD head when its cxl-type3 has a DC region over the whole pool
 * file; otherwise capacity arrives by LD hot-add on its spare cxl-mhd-rp ports.
 */
export async function discoverDelivery(
  qmp: QomReader,
  isPool: (memPath: string) => boolean,
  capacityBytes: number,
  windows: PoolWindow[],
  snap?: QomSnapshot,
): Promise<DeliveryConfig> {
  const { peripherals, devices, backends } = snap ?? (await readQom(qmp));
  const names = new Set(peripherals.map((p) => p.name));
  if (names.has(STATIC_DEVICE_ID)) {
    const devicePath = peripheralPath(STATIC_DEVICE_ID);
    const dc = devices.get(devicePath)?.['volatile-dc-memdev'];
    if (typeof dc === 'string' && dc) {
      const b = backends.get(dc) ?? {};
      const memPath = String(b['mem-path']);
      const offset = asNumber(b.offset);
      const size = asNumber(b.size);
      if (isPool(memPath) && offset === 0 && size === capacityBytes) {
        // QEMU puts the DC region after the device's static capacity, 256 MiB aligned.
        const staticBytes = windows.find((w) => w.deviceId === STATIC_DEVICE_ID)?.size ?? 0;
        return { kind: 'dcd', devicePath, regionBase: Math.ceil(staticBytes / CAPACITY_UNIT) * CAPACITY_UNIT };
      }
    }
  }
  const ports = peripherals
    .filter((p) => p.type === 'child<cxl-rp>' && rootPortIndex(p.name) !== null)
    .map((p) => p.name)
    .sort((a, b) => (rootPortIndex(a) ?? 0) - (rootPortIndex(b) ?? 0));
  const occupied = new Map<string, string>();
  // qemu-args puts the static window on the first port.
  if (names.has(STATIC_DEVICE_ID) && ports[0]) occupied.set(ports[0], STATIC_DEVICE_ID);
  for (const w of windows) {
    const port = ldPortOf(w.deviceId);
    if (port !== null) occupied.set(port, w.deviceId);
  }
  return { kind: 'hotplug', ports, occupied };
}

/** A file's identity: two spellings of one file have the same. */
export interface FileId {
  dev: number;
  ino: number;
}

/**
 * The identity of the file a QEMU's memory backend names, as that QEMU sees
 * it: a relative path is taken from its working directory, /proc/self from
 * its pid. Null when there is no such file (it cannot be the pool); any
 * other failure throws, since an attach must not pass on a path it could not judge.
 */
export function fileIdOf(memPath: string, qemuPid: number): FileId | null {
  let path = memPath;
  if (!isAbsolute(path)) path = join(`/proc/${qemuPid}/cwd`, path);
  else if (path === '/proc/self' || path.startsWith('/proc/self/')) path = `/proc/${qemuPid}${path.slice('/proc/self'.length)}`;
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new Error(
      `cannot tell whether memory backend file ${memPath} is the pool: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

export function sameFile(a: FileId | null, b: FileId | null): boolean {
  return a !== null && b !== null && a.dev === b.dev && a.ino === b.ino;
}
