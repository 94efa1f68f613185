// The built CLI as a user runs it: outputs, the status --json contract,
// exit codes, and errors that leave nothing behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSize } from '../../src/pool/index.js';
import { leftoverShm, tempDir, uniquePoolName } from '../helpers/pool.js';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['dist/src/cli/main.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('sizes', () => {
  it('parses 256M, 4G, 1T, 2MiB and plain bytes; refuses junk', () => {
    expect(parseSize('256M')).toBe(256 * 2 ** 20);
    expect(parseSize('4G')).toBe(4 * 2 ** 30);
    expect(parseSize('1T')).toBe(2 ** 40);
    expect(parseSize('2MiB')).toBe(2 * 2 ** 20);
    expect(parseSize('4096')).toBe(4096);
    for (const bad of ['', 'G', '1.5G', '-1G', '4X', '0', '99999999P']) expect(() => parseSize(bad)).toThrow(/size|greater/);
  });
});

describe('cxl-mhd CLI', () => {
  it('pool create → status (text and --json contract) → fsck → destroy', () => {
    const stateDir = tempDir();
    const pool = uniquePoolName('cli');
    const created = cli('pool', 'create', '--pool', pool, '--capacity', '1G', '--heads', '3', '--state-dir', stateDir);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/created pool .*1G, 3 heads, 2M blocks/);

    const text = cli('status', '--pool', pool, '--state-dir', stateDir);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/FM-LD owner: none/);
    expect(text.stdout).toMatch(/backend: not running/);

    const json = cli('status', '--pool', pool, '--state-dir', stateDir, '--json');
    expect(json.code).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const s = JSON.parse(json.stdout);
    expect(s).toMatchObject({ pool, capacityBytes: 2 ** 30, blockBytes: 2 * 2 ** 20, fmldOwner: null, freeBytes: 2 ** 30 });
    expect(s.heads).toEqual([0, 1, 2].map((id) => expect.objectContaining({ id, attached: false, grantedBytes: 0 })));

    const ok = cli('fsck', '--pool', pool, '--state-dir', stateDir);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/clean/);

    expect(cli('pool', 'destroy', '--pool', pool, '--state-dir', stateDir).code).toBe(0);
    expect(existsSync(`/dev/shm/cxl-mhd.${pool}.state`)).toBe(false);
  });

  it('fsck exits non-zero and names the problem when shm and journal disagree', () => {
    const stateDir = tempDir();
    const pool = uniquePoolName('cli');
    expect(cli('pool', 'create', '--pool', pool, '--capacity', '256M', '--heads', '2', '--state-dir', stateDir).code).toBe(0);
    const path = `/dev/shm/cxl-mhd.${pool}.state`;
    const b = readFileSync(path);
    b.writeBigUInt64LE(3n, 4096 + 8 * 5); // block 5: heads 0 and 1, exclusive, neither registered
    writeFileSync(path, b);
    const r = cli('fsck', '--pool', pool, '--state-dir', stateDir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/exclusive-multiple-owners: block 5/);
    expect(r.stdout).toMatch(/journal-block-mismatch/);
  });

  it.each([
    [['pool', 'create', '--pool', 'BAD', '--capacity', '1G', '--heads', '2'], /pool name "BAD" is not allowed/],
    [['pool', 'create', '--pool', 'ok', '--capacity', '100M', '--heads', '2'], /multiple of 256M/],
    [['pool', 'create', '--pool', 'ok', '--capacity', 'lots', '--heads', '2'], /is not a size/],
    [['pool', 'create', '--pool', 'ok', '--capacity', '1G', '--heads', '40'], /outside 1\.\.32/],
    [['pool', 'create', '--pool', 'ok', '--capacity', '1G', '--heads', 'two'], /not a whole number/],
    [['pool', 'create', '--pool', 'ok', '--capacity', '1G', '--heads', '2', '--block', '3M'], /power of two/],
    [['pool', 'create', '--pool', 'ok', '--capacity', '1T', '--heads', '2'], /free in \/dev\/shm/],
    [['status', '--pool', 'nosuchpool'], /does not exist/],
  ])('%j fails with a clear message and leaves nothing', (args, message) => {
    const stateDir = tempDir();
    const r = cli(...args, '--state-dir', stateDir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
    expect(existsSync('/dev/shm/cxl-mhd.ok.state')).toBe(false);
    expect(leftoverShm()).toEqual([]);
  });

  it('usage errors exit 2 with help', () => {
    const r = cli('pool', 'create', '--pool', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option/);
  });
});
