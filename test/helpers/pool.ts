// Test pools: unique names, private state dirs, and removal of every shm
// object and directory a test made, pass or fail.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { native } from '../../src/native/index.js';

let counter = 0;
const made = new Set<string>();
const dirs = new Set<string>();

export function uniquePoolName(tag = 't'): string {
  const name = `${tag}-${process.pid}-${++counter}`.toLowerCase();
  made.add(name);
  return name;
}

export function tempDir(prefix = 'cxl-mhd-test-', base = tmpdir()): string {
  const d = mkdtempSync(join(base, prefix));
  dirs.add(d);
  return d;
}

/** Removes shm objects of every pool name handed out (and any stray ones with our pid). */
export function cleanupPools(): void {
  for (const name of made) {
    for (const suffix of ['mem', 'state']) {
      try {
        native.shmUnlink(`/cxl-mhd.${name}.${suffix}`);
      } catch {
        // already gone
      }
    }
  }
  // Label area files of tagged hot-adds (cxl-mhd.POOL.lsa.HEAD.N), normally removed with the LD.
  for (const f of readdirSync('/dev/shm')) {
    if ([...made].some((name) => f.startsWith(`cxl-mhd.${name}.lsa.`))) rmSync(`/dev/shm/${f}`, { force: true });
  }
  made.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

export function leftoverShm(): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith('cxl-mhd.') && f.includes(`-${process.pid}-`));
}

afterEach(() => cleanupPools());
