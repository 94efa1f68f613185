// The LSA image a hot-added LD carries (src/capacity/lsa.ts): golden bytes
// of the CXL r3.1 §9.13.2 label index block and region label, written out
// field by field. The checksums were cross-checked with an independent
// encoder whose images a stock guest's `cxl read-labels` read back (issue 11
// spike); test/capacity/tags-qemu.test.ts reads them in a real guest.
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fletcher64, LSA_BYTES, lsaImage, readRegionLabel } from '../../src/capacity/lsa.js';
import { lsaObjectPath, lsaObjectsOf, Pool } from '../../src/pool/index.js';
import { tempDir, uniquePoolName } from '../helpers/pool.js';

const MiB = 2 ** 20;
const TAG = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const hex = (b: Uint8Array, from: number, to: number) => Buffer.from(b.subarray(from, to)).toString('hex');
const h = (...parts: string[]) => parts.join('').replaceAll(' ', '');

describe('LSA image', () => {
  const img = lsaImage({ uuid: TAG, nlabel: 1, position: 0, rawsize: 256 * MiB });

  it('is 4 KiB: index 0 at 0, index 1 at 256, labels from 512', () => {
    expect(img.byteLength).toBe(LSA_BYTES);
    expect(hex(img, 0, 80)).toBe(
      h(
        '4e414d4553504143455f494e44455800', // sig "NAMESPACE_INDEX\0"
        '000000 01', // flags[3], labelsize 1 (256-byte labels)
        '01000000', // seq 1
        '0000000000000000', // myoff 0
        '0001000000000000', // mysize 256
        '0001000000000000', // otheroff 256
        '0002000000000000', // labeloff 512
        '0e000000', // nslot 14
        '0200 0100', // major 2, minor 1
        '397a31d8d4046e27', // checksum (Fletcher-64)
        'fe3f', // free bitmap: slot 0 used, slots 1..13 free
        '000000000000',
      ),
    );
    expect(hex(img, 256, 336)).toBe(
      h(
        '4e414d4553504143455f494e44455800',
        '000000 01',
        '02000000', // seq 2: the current index
        '0001000000000000', // myoff 256
        '0001000000000000',
        '0000000000000000', // otheroff 0
        '0002000000000000',
        '0e000000',
        '0200 0100',
        '3a7a31d80f096e27',
        'fe3f',
        '000000000000',
      ),
    );
  });

  it('holds the region label in slot 0', () => {
    expect(hex(img, 512, 592)).toBe(
      h(
        '529d7c61da0747c4a93fecdf2c06f444', // region label type
        '0f1e2d3c4b5a69788796a5b4c3d2e1f0', // uuid = the tag, in written order
        '00000000', // flags
        '0100', // nlabel 1
        '0000', // position 0
        '0000000000000000', // dpa 0
        '0000001000000000', // rawsize 256 MiB
        '0000000000000000', // hpa 0
        '00000000', // slot 0
        '00000000', // interleave granularity
        '01000000', // align 1 (256 MiB)
        '00000000',
      ),
    );
    expect(hex(img, 512 + 248, 512 + 256)).toBe('a7ccc1b4c309a600');
    expect(img.subarray(768).every((b) => b === 0)).toBe(true);
  });

  it('carries nlabel and position, and reads back', () => {
    const two = lsaImage({ uuid: TAG, nlabel: 3, position: 2, rawsize: 512 * MiB });
    expect(hex(two, 512 + 36, 512 + 40)).toBe('03000200');
    expect(readRegionLabel(two)).toEqual({ uuid: TAG, nlabel: 3, position: 2, rawsize: 512 * MiB });
    const bad = two.slice();
    bad[512 + 40] = 1;
    expect(readRegionLabel(bad)).toBeNull();
    expect(readRegionLabel(new Uint8Array(LSA_BYTES))).toBeNull();
    // as read from a file: a Node Buffer that is a view into a larger pool
    const pooled = Buffer.concat([Buffer.alloc(24), Buffer.from(two)]).subarray(24);
    expect(pooled.byteOffset).toBe(24);
    expect(readRegionLabel(pooled)).toEqual({ uuid: TAG, nlabel: 3, position: 2, rawsize: 512 * MiB });
    expect(() => lsaImage({ uuid: TAG, nlabel: 2, position: 2, rawsize: MiB })).toThrow(/position 2/);
    expect(() => lsaImage({ uuid: 'nope', nlabel: 1, position: 0, rawsize: MiB })).toThrow(/not a UUID/);
  });

  it('Fletcher-64: sums of words, then sums of sums', () => {
    expect(fletcher64(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]))).toBe((4n << 32n) | 3n);
  });
});

describe('label area files', () => {
  it('live in /dev/shm as cxl-mhd.POOL.lsa.HEAD.N and go with `pool destroy`', () => {
    const name = uniquePoolName('lsa');
    const stateDir = tempDir();
    Pool.create({ name, stateDir, capacityBytes: 512 * MiB, blockBytes: 2 * MiB, headCount: 2 }).close();
    expect(lsaObjectPath(name, 1, 42)).toBe(`/dev/shm/cxl-mhd.${name}.lsa.1.42`);
    writeFileSync(lsaObjectPath(name, 0, 1), '', { mode: 0o600 });
    writeFileSync(lsaObjectPath(name, 1, 2), '', { mode: 0o600 });
    expect(lsaObjectsOf(name, 1)).toEqual([lsaObjectPath(name, 1, 2)]);
    expect(lsaObjectsOf(name).sort()).toEqual([lsaObjectPath(name, 0, 1), lsaObjectPath(name, 1, 2)]);
    Pool.destroy({ name, stateDir });
    expect(lsaObjectsOf(name)).toEqual([]);
  });
});
