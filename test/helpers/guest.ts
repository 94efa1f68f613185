// Booting the project's guest image as a head for a real-QEMU test: the
// head's `qemu-args`, the kernel and initramfs, and one shared scenario
// directory (9p tag cxlmhd, mounted at /scenario) holding run.sh, through
// which the test and the guest exchange marker and result files.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guestBootArgs } from '../../src/scenario/index.js';
import { eventually, type HeadVm, startHead, type TestPool } from './qemu.js';

export interface GuestOptions {
  sparePorts?: number;
  static?: string;
  memory?: string;
  /** Seconds before the guest's /init kills the scenario. */
  timeoutS?: number;
  /** More kernel command-line words. */
  append?: string;
}

/** Boots head `head` with the guest image; its scenario is `dir`/run.sh (branch on $CXLMHD_HEAD). */
export async function bootGuest(pool: TestPool, head: number, dir: string, opts: GuestOptions = {}): Promise<HeadVm> {
  return startHead(pool, head, {
    sparePorts: opts.sparePorts,
    ...(opts.static ? { static: opts.static } : {}),
    memory: opts.memory ?? '512M',
    extra: guestBootArgs(
      dir,
      `console=ttyS0 quiet cxlmhd.head=${head} cxlmhd.timeout=${opts.timeoutS ?? 500}${opts.append ? ` ${opts.append}` : ''}`,
    ),
  });
}

/** Waits (up to `seconds`) for a file the guest writes into the scenario directory. */
export function guestFile(dir: string, name: string, seconds = 300): Promise<string> {
  return eventually(
    () => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8') || ' ' : null),
    `guest file ${name}`,
    seconds * 10,
    100,
  );
}

/** A marker file for the guests (they poll for it). */
export function signal(dir: string, name: string, text = ''): void {
  writeFileSync(join(dir, name), text);
}

/** The guest's console so far. */
export function consoleOf(pool: TestPool, head: number): string {
  const p = join(pool.logDir, `head${head}-console.log`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

/** For a failed guest test: the end of each head's console, on stderr. */
export function printConsoles(pool: TestPool, heads: number[]): void {
  for (const h of heads) console.error(`--- head ${h} console ---\n${consoleOf(pool, h).slice(-3000)}`);
}
