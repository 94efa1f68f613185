// The CXL topology `qemu-args` lays out for K spare ports (src/qemu/layout.ts):
// one host bridge + one window per port, collision-free bus numbers and
// hotplug slots, window N <-> root decoder decoder0.N.
import { describe, expect, it } from 'vitest';
import { cxlLayout, layoutArgs, MAX_SPARE_PORTS, rootDecoderFor } from '../../src/qemu/layout.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('cxl layout', () => {
  it('gives the static window and each of 16 spare ports a bridge and window of its own', () => {
    const l = cxlLayout({ staticBytes: 256 * MiB, dcBytes: 0, sparePorts: 16, ldMaxBytes: 2 * GiB });
    expect(l).toHaveLength(17);
    expect(l[0]).toEqual({ id: 'cxl-mhd-hb', busNr: 12, window: 0, windowBytes: 256 * MiB, port: { id: 'cxl-mhd-rp0', role: 'static' } });
    expect(l[16]).toEqual({ id: 'cxl-mhd-hb16', busNr: 76, window: 16, windowBytes: 2 * GiB, port: { id: 'cxl-mhd-rp16', role: 'spare' } });
    // bridge i owns buses busNr..busNr+1 (its root bus and its port's secondary bus): no overlaps
    const buses = l.flatMap((b) => [b.busNr, b.busNr + 1]);
    expect(new Set(buses).size).toBe(buses.length);
    expect(Math.max(...buses)).toBeLessThan(256);
    expect(new Set(l.map((b) => b.id)).size).toBe(17);
    expect(rootDecoderFor(l, 'cxl-mhd-rp5')).toBe('decoder0.5');
    expect(rootDecoderFor(l, 'nope')).toBeNull();
  });

  it('prints the argument lines QEMU 10.0 accepted in the spike', () => {
    const { machineKeys, devices } = layoutArgs(cxlLayout({ staticBytes: 256 * MiB, dcBytes: 0, sparePorts: 2, ldMaxBytes: 300 * MiB }));
    expect(machineKeys).toEqual([
      'cxl-fmw.0.targets.0=cxl-mhd-hb',
      'cxl-fmw.0.size=256M',
      'cxl-fmw.1.targets.0=cxl-mhd-hb1',
      'cxl-fmw.1.size=512M',
      'cxl-fmw.2.targets.0=cxl-mhd-hb2',
      'cxl-fmw.2.size=512M',
    ]);
    expect(devices).toEqual([
      '-device',
      'pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl-mhd-hb',
      '-device',
      'cxl-rp,port=0,bus=cxl-mhd-hb,id=cxl-mhd-rp0,chassis=1,slot=0',
      '-device',
      'pxb-cxl,bus_nr=16,bus=pcie.0,id=cxl-mhd-hb1',
      '-device',
      'cxl-rp,port=0,bus=cxl-mhd-hb1,id=cxl-mhd-rp1,chassis=2,slot=0',
      '-device',
      'pxb-cxl,bus_nr=20,bus=pcie.0,id=cxl-mhd-hb2',
      '-device',
      'cxl-rp,port=0,bus=cxl-mhd-hb2,id=cxl-mhd-rp2,chassis=3,slot=0',
    ]);
  });

  it('puts a DCD region in the static port window and numbers spare ports from 0 without one', () => {
    const dcd = cxlLayout({ staticBytes: 256 * MiB, dcBytes: 2 * GiB, sparePorts: 0, ldMaxBytes: 2 * GiB });
    expect(dcd.map((b) => [b.port.id, b.windowBytes])).toEqual([['cxl-mhd-rp0', 2 * GiB + 256 * MiB]]);
    const bare = cxlLayout({ staticBytes: 0, dcBytes: 0, sparePorts: 3, ldMaxBytes: GiB });
    expect(bare.map((b) => [b.id, b.port.id, b.port.role])).toEqual([
      ['cxl-mhd-hb', 'cxl-mhd-rp0', 'spare'],
      ['cxl-mhd-hb1', 'cxl-mhd-rp1', 'spare'],
      ['cxl-mhd-hb2', 'cxl-mhd-rp2', 'spare'],
    ]);
    expect(cxlLayout({ staticBytes: 0, dcBytes: 0, sparePorts: 0, ldMaxBytes: GiB })).toEqual([]);
  });

  it('refuses more spare ports than QEMU has host-bridge register space for', () => {
    expect(MAX_SPARE_PORTS).toBe(16);
    for (const k of [-1, 17, 1.5]) {
      expect(() => cxlLayout({ staticBytes: 0, dcBytes: 0, sparePorts: k, ldMaxBytes: GiB })).toThrow(/--spare-ports .* must be 0\.\.16/);
    }
  });
});
