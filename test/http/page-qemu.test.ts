/// <reference lib="dom" />
// The live pool page in a real browser (Debian's chromium, headless, driven
// by playwright-core; nothing downloaded) against a real backend with three
// real paused QEMU heads: every head is shown, and a grant made through the
// FM-API (fm.sock, not Redfish) appears on the block map and in the event
// log without a reload. A 1 TiB pool is drawn at once. On failure a
// screenshot is kept under test-artifacts/.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { BASIC, fakeNorthbound, USERS } from '../helpers/northbound.js';
import { RF_PASS, RF_USER, startRig } from '../helpers/northbound-qemu.js';
import { cli } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
let ctx: BrowserContext | null = null;
let profile: string | null = null;

afterEach(async () => {
  await ctx?.close();
  ctx = null;
  if (profile) rmSync(profile, { recursive: true, force: true });
  profile = null;
});

async function browser(user: string, pass: string): Promise<BrowserContext> {
  profile = mkdtempSync(join(tmpdir(), 'cxl-mhd-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    httpCredentials: { username: user, password: pass },
  });
  return ctx;
}

async function kept<T>(page: Page, name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: join('test-artifacts', `${name}-${Date.now()}.png`), fullPage: true }).catch(() => undefined);
    throw e;
  }
}

/** The map pixel at the centre of the cell holding `offset`, and the colour the page gives `head`, both as rgb. */
async function pixelAndColour(page: Page, offset: number, head: number): Promise<{ at: number[]; want: number[] }> {
  return page.evaluate(
    ([off, h]) => {
      const w = window as unknown as { cxlMap: { cellAt(o: number): { x: number; y: number }; color(h: number): string } };
      const canvas = document.getElementById('map') as HTMLCanvasElement;
      const { x, y } = w.cxlMap.cellAt(off as number);
      const at = [...(canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.floor(x), Math.floor(y), 1, 1).data].slice(
        0,
        3,
      );
      const probe = document.createElement('canvas');
      probe.width = probe.height = 1;
      const p = probe.getContext('2d') as CanvasRenderingContext2D;
      p.fillStyle = w.cxlMap.color(h as number);
      p.fillRect(0, 0, 1, 1);
      return { at, want: [...p.getImageData(0, 0, 1, 1).data].slice(0, 3) };
    },
    [offset, head],
  );
}

describe('the live pool page in chromium', () => {
  it('shows every head, and a grant made over fm.sock appears on the map and in the log without reload', async () => {
    // fm.sock is asked for: --http alone does not open it (the northbound's FM-API channel is in process).
    const rig = await startRig('pg', { serveArgs: () => ['--fm-socket'] });
    const page = await (await browser(RF_USER, RF_PASS)).newPage();
    await kept(page, 'http-page', async () => {
      await page.goto(`${rig.url}/`);
      await page.waitForFunction(() => document.querySelectorAll('#heads tbody tr[data-phase="attached"]').length === 3);
      for (const [i, vm] of rig.vms.entries()) {
        const row = page.locator(`#heads tbody tr[data-head="${i}"]`);
        await expect(row.locator('td').nth(2).textContent()).resolves.toBe(String(vm.pid));
        await expect(row.locator('td').nth(3).textContent()).resolves.toBe(i === 2 ? 'dcd' : 'hotplug');
        await expect(row.locator('td').nth(6).textContent()).resolves.toBe(i === 0 ? 'owner' : '');
      }
      await page.waitForSelector('#live.on');
      await page.evaluate(() => {
        (window as unknown as { notReloaded: boolean }).notReloaded = true;
      });
      const free = await pixelAndColour(page, GiB, 1);
      expect(free.at).not.toEqual(free.want);

      const add = cli(['fm', '--port', join(rig.pool.runDir, rig.pool.name, 'fm.sock'), 'add', '--host', '1', '--extent', '1G:256M']);
      expect(add.stderr).toBe('');
      await page.waitForSelector(`#ranges li[data-offset="${GiB}"][data-holders="1"]`, { state: 'attached', timeout: 10_000 });
      const granted = await pixelAndColour(page, GiB + 128 * MiB, 1);
      expect(granted.at).toEqual(granted.want);
      await page.waitForFunction(() =>
        /CapacityAdded: 268435456 bytes at pool offset 1073741824 were added to head 1/.test(
          document.getElementById('log')?.textContent ?? '',
        ),
      );
      await expect(page.locator('#heads tbody tr[data-head="1"] td').nth(4).textContent()).resolves.toBe('512 MiB');
      expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    });
    await rig.backend.stop();
  });

  it('draws a 1 TiB pool with many runs at once', async () => {
    const { nb, fake } = await fakeNorthbound({ capacityBytes: 2 ** 40 });
    // 200 grants spread over the pool, alternating heads.
    for (let i = 0; i < 200; i++) {
      const list = fake.extents.get(i % 3) ?? [];
      list.push({ startDpa: 4 * GiB + i * 5 * GiB, len: 2 * GiB, tag: '00000000-0000-0000-0000-000000000000', sharedSeq: 0 });
      fake.extents.set(i % 3, list);
    }
    const url = await nb.listen('127.0.0.1', 0);
    expect(BASIC).toMatch(/^Basic /);
    const page = await (await browser('admin', USERS.admin)).newPage();
    await kept(page, 'http-page-1tib', async () => {
      await page.goto(`${url}/`);
      await page.waitForFunction(() => document.querySelectorAll('#ranges li').length > 0);
      expect(await page.locator('#ranges li').count()).toBeGreaterThan(400);
      expect(await page.evaluate(() => document.getElementById('map')?.dataset.cellBytes)).toBe(String(128 * MiB));
      const g = await pixelAndColour(page, 5 * GiB + 64 * MiB, 1);
      expect(g.at).toEqual(g.want);
    });
  });
});
