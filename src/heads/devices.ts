// What a head's VM declares: finds the cxl-type3 devices whose memory is a
// window of this pool's data object (through QMP qom-list/qom-get) and
// judges whether a static window is acceptable. Exclusivity is read from
// the VM's own configuration: the memory backend's id ends in "-excl".
// The layout (one CXL host bridge per root port, or older VMs' one bridge
// with several ports) does not matter here: spare ports are found by id.
import type { DeliveryConfig } from '../capacity/index.js';
import { CAPACITY_UNIT, type Header } from '../pool/index.js';
import { isExclusiveBackend, isLdDevice, ldPortOf, peripheralPath, rootPortIndex, STATIC_DEVICE_ID } from '../qemu/index.js';

/** The few QMP calls device discovery needs. */
export interface QomReader {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
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

/**
 * Every cxl-type3 of the VM whose volatile memory backend is a file (we
 * compare its mem-path with the pool's data object afterwards).
 */
export async function discoverWindows(qmp: QomReader): Promise<PoolWindow[]> {
  const peripherals = await qmp.execute<QomEntry[]>('qom-list', { path: '/machine/peripheral' });
  const out: PoolWindow[] = [];
  for (const p of peripherals) {
    if (p.type !== 'child<cxl-type3>') continue;
    const devPath = peripheralPath(p.name);
    // A device can vanish between qom-list and qom-get (a hot-remove finishing): skip it rather than fail the attach.
    try {
      // Independent reads go out together: QEMU answers them back to back, so
      // a head costs three round trips per device, not eight (32 heads
      // attaching at once each wait for their QEMU to be scheduled).
      const [backendPath, lsa] = await Promise.all([
        qmp.execute<string>('qom-get', { path: devPath, property: 'volatile-memdev' }).catch(() => ''),
        qmp.execute<string>('qom-get', { path: devPath, property: 'lsa' }).catch(() => ''),
      ]);
      if (!backendPath) continue;
      const get = (property: string) => qmp.execute<unknown>('qom-get', { path: backendPath, property });
      const [backendType, lsaMemPath] = await Promise.all([
        qmp.execute<string>('qom-get', { path: backendPath, property: 'type' }).catch(() => ''),
        lsa ? qmp.execute<unknown>('qom-get', { path: lsa, property: 'mem-path' }).catch(() => '') : '',
      ]);
      if (backendType !== 'memory-backend-file') continue;
      const backendId = backendPath.split('/').pop() ?? '';
      const lsaPath = lsa ? String(lsaMemPath) : '';
      const [memPath, offset, size, share] = await Promise.all([get('mem-path'), get('offset'), get('size'), get('share')]);
      out.push({
        ...(lsaPath ? { lsaPath } : {}),
        deviceId: p.name,
        backendPath,
        backendId,
        memPath: String(memPath),
        offset: asNumber(offset),
        size: asNumber(size),
        share: share === true,
        exclusive: isExclusiveBackend(backendId),
      });
    } catch (e) {
      if ((e as { errorClass?: string }).errorClass === 'DeviceNotFound') continue;
      throw e;
    }
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
  dataPath: string,
  capacityBytes: number,
  windows: PoolWindow[],
): Promise<DeliveryConfig> {
  const peripherals = await qmp.execute<QomEntry[]>('qom-list', { path: '/machine/peripheral' });
  const names = new Set(peripherals.map((p) => p.name));
  if (names.has(STATIC_DEVICE_ID)) {
    const devicePath = peripheralPath(STATIC_DEVICE_ID);
    const dc = await qmp.execute<string>('qom-get', { path: devicePath, property: 'volatile-dc-memdev' }).catch(() => '');
    if (dc) {
      const get = (property: string) => qmp.execute<unknown>('qom-get', { path: dc, property });
      const [memPath, offset, size] = await Promise.all([get('mem-path'), get('offset'), get('size')]).then(
        ([m, o, z]) => [String(m), asNumber(o), asNumber(z)] as const,
      );
      if (memPath === dataPath && offset === 0 && size === capacityBytes) {
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
