// Owns what each QEMU version offers cxl-mhd, decided once from its version:
// the version QEMU greets with on QMP (the same object `query-version`
// returns, so no extra round trip) or `--version` for argument building.
// Each entry names the release it was verified on (docs/qemu-facts.md,
// checked per version by test/qemu/facts-qemu.test.ts). Between 10.0 and
// 11.1 nothing was verified, so those releases get 10.0's ways, which still
// work on 11.1; only the first release a fact was seen on turns it on.
import { type QemuVersion, versionAtLeast } from '../qmp/index.js';

export interface QemuFeatures {
  /** "11.1.3". */
  readonly version: string;
  /**
   * `-object monitor-qmp,id=…,chardev=…` exists; `-mon` prints a deprecation
   * warning there (11.1). 10.0 has no such object.
   */
  readonly monitorObject: boolean;
  /** `qom-list-get` (many objects' properties in one command) exists (11.1; not in 10.0). */
  readonly qomListGet: boolean;
  /** `DEVICE_DELETED` is sent when a hot-removed cxl-type3 is gone (11.1; 10.0 never sends it). */
  readonly type3DeviceDeleted: boolean;
  /** CXL memory onlined as System RAM (kmem) runs under TCG (11.1); 10.0 segfaults. */
  readonly systemRam: boolean;
  /** `cxl-inject-*-event` take `head-id`/`ld-id` and require `sub-type` (11.1). */
  readonly injectPerHead: boolean;
  /**
   * A committed LD is mapped straight into the fixed window, and that alias
   * stays after `device_del`, `cxl destroy-region` and `system_reset` (11.1;
   * docs/qemu-facts.md §9): a release of an LD the guest had in a region is
   * quarantined until the head's QEMU exits.
   */
  readonly releasedLdStaysMapped: boolean;
}

/** The release each feature was first verified on. */
const FIRST_VERIFIED: Record<Exclude<keyof QemuFeatures, 'version'>, readonly [number, number]> = {
  monitorObject: [11, 1],
  qomListGet: [11, 1],
  type3DeviceDeleted: [11, 1],
  systemRam: [11, 1],
  injectPerHead: [11, 1],
  releasedLdStaysMapped: [11, 1],
};

/** "10.0.13" → {major: 10, minor: 0, micro: 13}; null if it is no version. */
export function parseQemuVersion(text: string): QemuVersion | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0), package: '' };
}

export function qemuFeatures(version: QemuVersion | string): QemuFeatures {
  const v = typeof version === 'string' ? parseQemuVersion(version) : version;
  if (v === null) throw new Error(`"${String(version)}" is not a QEMU version (MAJOR.MINOR[.MICRO])`);
  const at = ([major, minor]: readonly [number, number]) => versionAtLeast(v, major, minor);
  return {
    version: `${v.major}.${v.minor}.${v.micro}`,
    monitorObject: at(FIRST_VERIFIED.monitorObject),
    qomListGet: at(FIRST_VERIFIED.qomListGet),
    type3DeviceDeleted: at(FIRST_VERIFIED.type3DeviceDeleted),
    systemRam: at(FIRST_VERIFIED.systemRam),
    injectPerHead: at(FIRST_VERIFIED.injectPerHead),
    releasedLdStaysMapped: at(FIRST_VERIFIED.releasedLdStaysMapped),
  };
}

/** One line for a guest or an operator when System RAM is asked of a QEMU that crashes on it. */
export function systemRamRefusal(version: string): string {
  return `QEMU ${version} segfaults when a guest onlines CXL memory as System RAM under TCG (fixed in 11.1); keep it as devdax or use QEMU >= 11.1`;
}
