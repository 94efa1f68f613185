// What each QEMU version is used for (src/qemu/features.ts) and how the head's monitor is spelled for it.
import { describe, expect, it } from 'vitest';
import { headArgs, monitorArgs, parseQemuVersion, qemuFeatures, systemRamRefusal } from '../../src/qemu/index.js';

describe('QEMU features by version', () => {
  it('10.0 gets none of the 11.1 ways; 11.1 and later get all of them', () => {
    const none = {
      monitorObject: false,
      qomListGet: false,
      type3DeviceDeleted: false,
      systemRam: false,
      injectPerHead: false,
      releasedLdStaysMapped: false,
    };
    const all = {
      monitorObject: true,
      qomListGet: true,
      type3DeviceDeleted: true,
      systemRam: true,
      injectPerHead: true,
      releasedLdStaysMapped: true,
    };
    expect(qemuFeatures('10.0.13')).toEqual({ version: '10.0.13', ...none });
    // Releases between were not verified: they keep 10.0's ways, which 11.1 still accepts.
    expect(qemuFeatures('11.0.2')).toEqual({ version: '11.0.2', ...none });
    expect(qemuFeatures('11.1.3')).toEqual({ version: '11.1.3', ...all });
    expect(qemuFeatures({ major: 12, minor: 0, micro: 0, package: '' })).toEqual({ version: '12.0.0', ...all });
  });

  it('parses MAJOR.MINOR[.MICRO] and refuses anything else', () => {
    expect(parseQemuVersion('11.1')).toEqual({ major: 11, minor: 1, micro: 0, package: '' });
    expect(parseQemuVersion('ten')).toBeNull();
    expect(() => qemuFeatures('x.y')).toThrow(/not a QEMU version/);
  });

  it('the head monitor: -object monitor-qmp on 11.1, -mon on 10.0 and when the version is unknown', () => {
    expect(monitorArgs('11.1.3')).toEqual(['-object', 'monitor-qmp,id=cxl-mhd-mon,chardev=cxl-mhd']);
    expect(monitorArgs('10.0.13')).toEqual(['-mon', 'chardev=cxl-mhd,mode=control']);
    expect(monitorArgs(undefined)).toEqual(['-mon', 'chardev=cxl-mhd,mode=control']);
    const base = { pool: 'p', head: 0, runDir: '/r', capacityBytes: 2 ** 30 };
    const on11 = headArgs({ ...base, qemuVersion: '11.1.3' });
    expect(on11).not.toContain('-mon');
    expect(on11).toContain('monitor-qmp,id=cxl-mhd-mon,chardev=cxl-mhd');
    expect(headArgs({ ...base, qemuVersion: '10.0.13' })).toContain('-mon');
  });

  it('the System RAM refusal names the QEMU and the crash in one line', () => {
    const line = systemRamRefusal('10.0.13');
    expect(line).toMatch(/^QEMU 10\.0\.13 segfaults .*System RAM/);
    expect(line).not.toContain('\n');
  });
});
