// `cxl-mhd qemu-args`: the argument set, its validation, and the committed
// example in qemu-configs/ staying identical to what the command prints.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { headArgs, headLayout, headSerial, parseStaticWindow, physBitsFor } from '../../src/qemu/index.js';
import { tempDir } from '../helpers/pool.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['dist/src/cli/main.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('qemu-args', () => {
  it('parses static windows and refuses malformed ones', () => {
    expect(parseStaticWindow('512M')).toEqual({ size: 512 * MiB, offset: 0, exclusive: false });
    expect(parseStaticWindow('256M@1G,exclusive')).toEqual({ size: 256 * MiB, offset: GiB, exclusive: true });
    expect(parseStaticWindow('1G@0,shared')).toEqual({ size: GiB, offset: 0, exclusive: false });
    for (const bad of ['', '100M', '256M@100M', '256M,private', '@1G', '256M@x']) expect(() => parseStaticWindow(bad)).toThrow();
  });

  it('gives every (pool, head) its own stable serial', () => {
    expect(headSerial('p', 1)).toBe(headSerial('p', 1));
    expect(new Set([headSerial('p', 0), headSerial('p', 1), headSerial('q', 0)]).size).toBe(3);
    expect(headSerial('p', 3) & 0xffffn).toBe(3n);
    expect(headSerial('p', 3)).toBeLessThan(2n ** 53n);
  });

  it('lays out one bridge and window per port, and asks for phys-bits only when the windows need them', () => {
    const l = headLayout({ capacityBytes: 2 * GiB, static: { offset: 0, size: 256 * MiB, exclusive: false }, sparePorts: 2 });
    expect(l.map((b) => [b.id, b.port.id, b.windowBytes])).toEqual([
      ['cxl-mhd-hb', 'cxl-mhd-rp0', 256 * MiB],
      ['cxl-mhd-hb1', 'cxl-mhd-rp1', 2 * GiB],
      ['cxl-mhd-hb2', 'cxl-mhd-rp2', 2 * GiB],
    ]);
    expect(headLayout({ capacityBytes: 2 * GiB, delivery: 'dcd' }).map((b) => b.windowBytes)).toEqual([2 * GiB]);
    expect(headLayout({ capacityBytes: GiB, sparePorts: 16 })).toHaveLength(16);
    expect(() => headLayout({ capacityBytes: GiB, sparePorts: 17 })).toThrow(/0\.\.16: QEMU 10\.0 allows 17 CXL host bridges/);
    expect(physBitsFor(16 * 4 * GiB, GiB)).toBeNull();
    // 16 windows of 64 GiB: QEMU refused them with its default 40 bits (docs/qemu-facts.md §7)
    expect(physBitsFor(16 * 64 * GiB, GiB)).toBe(46);
    expect(() => physBitsFor(2 ** 53, GiB)).toThrow(/52 physical address bits/);
    const big = headArgs({ pool: 'p', head: 0, runDir: '/r', capacityBytes: 64 * GiB, sparePorts: 16 }).join(' ');
    expect(big).toContain('-cpu max,hypervisor=off,phys-bits=46');
    const none = headArgs({ pool: 'p', head: 0, runDir: '/r', capacityBytes: GiB, sparePorts: 0 }).join(' ');
    expect(none).toContain('cxl-fmw.0.targets.0=cxl-mhd-hb,cxl-fmw.0.size=256M');
    expect(none).not.toContain('cxl-rp');
  });

  it('emits the verified device set', () => {
    const args = headArgs({
      pool: 'p1',
      head: 2,
      runDir: '/r',
      capacityBytes: GiB,
      static: { offset: 256 * MiB, size: 256 * MiB, exclusive: true },
      sparePorts: 1,
    });
    const joined = args.join(' ');
    expect(args[0]).toBe('-S');
    expect(joined).toContain(
      '-machine q35,cxl=on,accel=tcg,cxl-fmw.0.targets.0=cxl-mhd-hb,cxl-fmw.0.size=256M,cxl-fmw.1.targets.0=cxl-mhd-hb1,cxl-fmw.1.size=1024M',
    );
    expect(args[args.indexOf('-cpu') + 1]).toBe('max,hypervisor=off');
    expect(joined).toContain('-chardev socket,id=cxl-mhd,path=/r/p1/head2.sock,reconnect-ms=1000');
    expect(joined).toContain('-mon chardev=cxl-mhd,mode=control');
    expect(joined).toContain(
      'memory-backend-file,id=cxl-mhd-static-excl,mem-path=/dev/shm/cxl-mhd.p1.mem,offset=268435456,size=268435456,share=on',
    );
    expect(args.filter((a) => a.startsWith('cxl-rp,'))).toHaveLength(2);
    expect(joined).toContain('cxl-type3,bus=cxl-mhd-rp0,volatile-memdev=cxl-mhd-static-excl,id=cxl-mhd-mem0,sn=0x');
    expect(joined).toContain('virtio-serial-pci,bus=pcie.0,id=cxl-mhd-vser');
    expect(() =>
      headArgs({ pool: 'p1', head: 0, runDir: '/r', capacityBytes: GiB, static: { offset: GiB, size: 256 * MiB, exclusive: false } }),
    ).toThrow(/past the pool/);
  });

  it('CLI: refuses an unknown head of an existing pool and a missing pool without --capacity', () => {
    const stateDir = tempDir();
    const r = cli('qemu-args', '--pool', 'nosuch-pool-x', '--head', '0', '--state-dir', stateDir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not exist; create it first or pass --capacity/);
    expect(cli('qemu-args', '--pool', 'x', '--head', 'one', '--capacity', '1G').stderr).toMatch(/not a whole number/);
    expect(cli('qemu-args', '--pool', 'x', '--head', '0', '--capacity', '1G', '--static', '2G').stderr).toMatch(/past the pool/);
  });

  it('the committed qemu-configs/mhd3 example is exactly what qemu-args prints', () => {
    const EXAMPLE_QEMU = '11.1';
    const stateDir = tempDir();
    for (const head of [0, 1, 2]) {
      const r = cli(
        'qemu-args',
        '--pool',
        'mhd3',
        '--head',
        String(head),
        '--capacity',
        '2G',
        '--static',
        '256M@0',
        '--spare-ports',
        '2',
        '--memory',
        '1G',
        '--run-dir',
        '/run/cxl-mhd',
        '--state-dir',
        stateDir,
        // The example is written for the default QEMU (scripts/setup-qemu.sh), whatever QEMU runs this test.
        '--qemu-version',
        EXAMPLE_QEMU,
      );
      expect(r.code).toBe(0);
      expect(readFileSync(`qemu-configs/mhd3/head${head}.args`, 'utf8')).toBe(r.stdout);
    }
  });
});
