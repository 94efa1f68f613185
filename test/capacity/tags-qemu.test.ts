// Many LDs per head and shared allocations found by tag, in stock Linux
// guests under real QEMU: the layout of `qemu-args --spare-ports` lets six
// hot-added LDs become six devdax regions in one guest; a tagged shared
// allocation added to two heads in one `fm add` is found by tag in each
// guest (`cxl-mhd-devdax --tag`, reading the label the backend wrote into
// the LD's label storage area), head 0 streams sequence-numbered records
// through it that head 1 reads in order, and releasing it by tag from head 0
// leaves head 1's share intact. On the way, both heads `lock xadd` one
// counter in the allocation: the count is reported, not assumed exact.
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dataObjectPath } from '../../src/pool/index.js';
import { qemuFeatures, resolveQemu } from '../../src/qemu/index.js';
import { bootGuest, consoleOf, guestFile, printConsoles, signal } from '../helpers/guest.js';
import { tempDir } from '../helpers/pool.js';
import { cli, eventually, makeTestPool, startBackend, startHead, status, type TestPool } from '../helpers/qemu.js';

const MiB = 2 ** 20;
const U = 256 * MiB;

function fm(pool: TestPool, ...args: string[]) {
  const r = cli(['fm', '--port', `${pool.runDir}/${pool.name}/fm.sock`, ...args]);
  if (r.code !== 0) throw new Error(`fm ${args.join(' ')}: ${r.stderr}`);
  return r;
}

function pokeWord(pool: TestPool, offset: number, v: bigint): void {
  const fd = openSync(dataObjectPath(pool.name), 'r+');
  try {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    writeSync(fd, b, 0, 8, offset);
  } finally {
    closeSync(fd);
  }
}

const lsaFiles = (pool: TestPool) => readdirSync('/dev/shm').filter((f) => f.startsWith(`cxl-mhd.${pool.name}.lsa.`));
const RELEASED_STAYS_MAPPED = qemuFeatures(resolveQemu().version).releasedLdStaysMapped;
const tagN = (i: number) => `${String(i).repeat(8)}-aaaa-4bbb-8ccc-${String(i).repeat(12)}`;

/** Bytes of the pool's data object (what every head's LD maps). */
function poolBytes(pool: TestPool, offset: number, len: number): string {
  const fd = openSync(dataObjectPath(pool.name), 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, offset);
    return b.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

const SIX_LDS = `#!/bin/sh
cd /scenario
touch ready
while [ ! -e added ]; do sleep 0.2; done
bound() { c=0; for m in /sys/bus/cxl/devices/mem*; do [ -e "$m/driver" ] && c=$((c + 1)); done; echo $c; }
n=0; while [ "$(bound)" -lt 6 ] && [ $n -lt 1500 ]; do n=$((n + 1)); sleep 0.2; done
echo "bound $(bound)" > bound.txt
# every new memdev at once, then each allocation by its tag (idempotent)
cxl-mhd-devdax > all.txt 2> all.err; echo "rc=$?" >> all.txt
i=0
while read -r tag; do
  dax=$(cxl-mhd-devdax --tag "$tag" 2>>tag.err) && daxpoke write "$dax" 0 "ld-$i-$tag" >/dev/null && echo "$i $tag $dax" >> tags.txt
  i=$((i + 1))
done < tags.in
ls /sys/bus/cxl/devices | grep -c '^region' > regions.txt
ls /dev | grep -c '^dax' > daxes.txt
touch done
`;

const SHARED = `#!/bin/sh
cd /scenario
h=$CXLMHD_HEAD
touch ready-$h
while [ ! -e added ]; do sleep 0.2; done
tag=$(cat tag.in)
# results appear whole: written aside, then renamed
put() { f=$1; shift; "$@" > "$f.tmp" 2>&1; mv "$f.tmp" "$f"; }
dax=$(cxl-mhd-devdax --tag "$tag" --wait 300 2>>devdax-$h.err) || { echo fail > stream-$h.txt; exit 1; }
put list-$h.txt cxl-mhd-devdax --list
if [ "$h" = 0 ]; then
  while [ ! -e reader-ready ]; do sleep 0.2; done
  put stream-0.txt daxstream write "$dax" 2000 77
else
  touch reader-ready
  put stream-1.txt daxstream read "$dax" 2000 77 300
fi
# both heads: lock xadd on one counter (the host starts them together)
put atomics-$h.txt daxatomic "$dax" 0x100000 xadd 20000
# both stay up until head 0's share is released (a head that powers off drops its share anyway)
while [ ! -e released ]; do sleep 0.2; done
[ "$h" = 1 ] && put after-release-1.txt daxstream read "$dax" 2000 77 10
touch done-$h
`;

describe('many LDs per head and tagged shared allocations in stock guests', () => {
  it('six hot-added tagged LDs become six devdax regions in one head, each found by its tag over its own bytes', async () => {
    const pool = makeTestPool('lds');
    const dir = tempDir('cxl-mhd-lds-');
    const backend = await startBackend(pool, ['--capacity', '2G', '--heads', '1', '--fm-socket']);
    writeFileSync(`${dir}/run.sh`, SIX_LDS);
    const tags = [0, 1, 2, 3, 4, 5].map((i) => tagN(i + 1));
    writeFileSync(`${dir}/tags.in`, `${tags.join('\n')}\n`);
    const vm = await bootGuest(pool, 0, dir, { sparePorts: 6 });
    try {
      await guestFile(dir, 'ready');
      // Newest tag first, so memN order differs from tag order: the guest must read labels, not count.
      for (let i = 5; i >= 0; i--) fm(pool, 'add', '--host', '0', '--tag', tags[i] as string, '--extent', `${i * 256}M:256M`);
      expect(lsaFiles(pool)).toHaveLength(6);
      // status lists the six allocations by tag, each held by head 0 (the records follow each add at once).
      const allocs = () => (status(pool) as ReturnType<typeof status> & { allocations?: { tag: string; holders: number[] }[] }).allocations;
      await eventually(() => allocs()?.length === 6, 'status to list six allocations');
      expect(allocs()?.map((a) => [a.tag, a.holders])).toEqual(tags.map((t) => [t, [0]]));
      signal(dir, 'added');
      await guestFile(dir, 'done', 600);
      expect(readFileSync(`${dir}/bound.txt`, 'utf8').trim()).toBe('bound 6');
      expect(readFileSync(`${dir}/all.txt`, 'utf8')).toMatch(/rc=0/);
      expect(readFileSync(`${dir}/regions.txt`, 'utf8').trim()).toBe('6');
      expect(readFileSync(`${dir}/daxes.txt`, 'utf8').trim()).toBe('6');
      const found = readFileSync(`${dir}/tags.txt`, 'utf8').trim().split('\n');
      expect(found).toHaveLength(6);
      expect(new Set(found.map((l) => l.split(' ')[2])).size).toBe(6);
      // What the guest wrote through the dax device of tag i is at LD i's pool offset.
      for (const [i, tag] of tags.entries()) {
        const text = `ld-${i}-${tag}`;
        expect(poolBytes(pool, i * U, text.length)).toBe(text);
      }
      await eventually(async () => (await vm.exited) !== undefined, 'the guest to power off', 600, 100);
      // The head is gone: its label area files went with it.
      await eventually(() => lsaFiles(pool).length === 0, 'the label area files to be removed');
    } catch (e) {
      console.error(consoleOf(pool, 0).slice(-4000));
      throw e;
    } finally {
      await vm.kill();
      await backend.stop();
    }
  }, 900_000);

  it('one allocation on two heads by tag: found in each guest, records stream across in order, release by tag leaves the other head intact', async () => {
    const pool = makeTestPool('tag');
    const dir = tempDir('cxl-mhd-tag-');
    const backend = await startBackend(pool, ['--capacity', '2G', '--heads', '2', '--fm-socket']);
    const tag = tagN(7);
    writeFileSync(`${dir}/run.sh`, SHARED);
    writeFileSync(`${dir}/tag.in`, tag);
    const vms = [await bootGuest(pool, 0, dir, { sparePorts: 2 }), await bootGuest(pool, 1, dir, { sparePorts: 2 })];
    try {
      await guestFile(dir, 'ready-0');
      await guestFile(dir, 'ready-1');
      // A decoy with another tag on head 1 first, so the shared LD is mem1 there and mem0 on head 0.
      fm(pool, 'add', '--host', '1', '--tag', tagN(8), '--extent', '0:256M');
      const add = fm(pool, 'add', '--host', '0,1', '--shared', '--tag', tag, '--extent', '512M:256M');
      expect(add.stdout).toMatch(`heads 0, 1: added 256M at pool offset ${512 * MiB} tagged ${tag}`);
      for (const h of [0, 1]) {
        const ext = JSON.parse(fm(pool, 'extents', '--host', String(h), '--json').stdout);
        expect(ext.extents.filter((e: { tag: string }) => e.tag === tag)).toEqual([
          expect.objectContaining({ startDpa: 512 * MiB, len: U, sharedSeq: 0 }),
        ]);
      }
      signal(dir, 'added');
      await guestFile(dir, 'stream-0.txt', 600);
      expect(await guestFile(dir, 'stream-1.txt', 600)).toMatch(/daxstream: read 2000 in order/);
      expect(readFileSync(`${dir}/stream-0.txt`, 'utf8')).toMatch(/daxstream: wrote 2000/);
      const list0 = readFileSync(`${dir}/list-0.txt`, 'utf8');
      const list1 = readFileSync(`${dir}/list-1.txt`, 'utf8');
      expect(list0).toMatch(new RegExp(`^mem\\d+ ${tag}$`, 'm'));
      expect(list1).toMatch(new RegExp(`^mem\\d+ ${tagN(8)}$`, 'm'));
      const memOf = (list: string) =>
        list
          .split('\n')
          .find((l) => l.endsWith(tag))
          ?.split(' ')[0];
      expect(memOf(list0)).not.toBe(memOf(list1));
      // The stream's header is in the pool at the allocation's offset: both heads mapped the same bytes.
      expect(poolBytes(pool, 512 * MiB, 8)).toBe('CXLMHDS1');

      // Cross-head `lock xadd` (docs/guest.md): both heads mapped and waiting, then go, then read the counter.
      const blk = 512 * MiB + MiB;
      const word = (k: number) => Buffer.from(poolBytes(pool, blk + 8 * k, 8), 'latin1').readBigUInt64LE();
      await eventually(() => word(24) === 2n, 'both heads ready for the atomics run', 3000, 100);
      pokeWord(pool, blk + 64, 1n);
      await eventually(() => word(16) === 2n, 'both heads done with the atomics run', 3000, 100);
      const count = Number(word(0));
      console.log(`cross-head lock xadd: 2 heads x 20000 -> ${count} (${((1 - count / 40000) * 100).toFixed(1)} % lost)`);
      expect(count).toBeGreaterThan(0);
      expect(count).toBeLessThanOrEqual(40000);
      for (const h of [0, 1]) expect(await guestFile(dir, `atomics-${h}.txt`)).toMatch(/daxatomic: mode=xadd n=20000/);

      if (RELEASED_STAYS_MAPPED) {
        // QEMU 11.1 keeps head 0's committed LD mapped in its window (docs/qemu-facts.md §9): its share is
        // answered Retry Required and stays quarantined with head 0; head 1's share is untouched either way.
        const r = cli(['fm', '--port', `${pool.runDir}/${pool.name}/fm.sock`, 'release', '--host', '0', '--tag', tag]);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/RetryRequired/);
        const grants0 = (status(pool).heads[0] as unknown as { grants: { state: string }[] }).grants;
        expect(grants0.length).toBeGreaterThan(0);
        expect(grants0.every((g) => g.state === 'quarantined')).toBe(true);
        // What stays with head 0 is only what is quarantined (an LD the guest never mapped is freed).
        const [held0, held1] = status(pool).heads.map((h) => h.grantedBytes);
        expect(held0).toBeGreaterThan(0);
        expect(held1).toBe(2 * U);
      } else {
        fm(pool, 'release', '--host', '0', '--tag', tag);
        await eventually(
          () => {
            const s = status(pool) as ReturnType<typeof status> & { allocations: { tag: string; holders: number[] }[] };
            return s.allocations.find((a) => a.tag === tag)?.holders.join() === '1' ? s : null;
          },
          'head 0 to drop its share',
          1200,
          100,
        );
        expect(status(pool).heads.map((h) => h.grantedBytes)).toEqual([0, 2 * U]);
      }
      signal(dir, 'released');
      expect(await guestFile(dir, 'after-release-1.txt', 300)).toMatch(/daxstream: read 2000 in order/);
      await guestFile(dir, 'done-1', 300);
    } catch (e) {
      printConsoles(pool, [0, 1]);
      throw e;
    } finally {
      for (const vm of vms) await vm.kill();
      await backend.stop();
    }
  }, 900_000);

  it("a restarted backend re-adopts tagged LDs: the allocation, its holders and its label area files survive; release by tag then removes one head's file", async () => {
    const pool = makeTestPool('tagre');
    let backend = await startBackend(pool, ['--capacity', '2G', '--heads', '2', '--fm-socket']);
    const vms = [await startHead(pool, 0, { sparePorts: 2 }), await startHead(pool, 1, { sparePorts: 2 })];
    try {
      await eventually(() => status(pool).heads.every((h) => h.phase === 'attached'), 'both heads attached');
      const tag = tagN(9);
      fm(pool, 'add', '--host', '0,1', '--shared', '--tag', tag, '--extent', '1G:256M', '--extent', '256M:256M');
      expect(lsaFiles(pool)).toHaveLength(4);
      await backend.stop('SIGKILL');
      backend = await startBackend(pool, ['--fm-socket']);
      await eventually(() => status(pool).heads.every((h) => h.phase === 'attached'), 'both heads re-adopted');
      const allocs = (status(pool) as ReturnType<typeof status> & { allocations?: unknown[] }).allocations;
      expect(allocs).toEqual([
        {
          tag,
          shared: true,
          extents: [
            { offset: U, len: U },
            { offset: 4 * U, len: U },
          ],
          holders: [0, 1],
        },
      ]);
      const human = cli(['status', '--pool', pool.name, ...pool.dirArgs]).stdout;
      expect(human).toMatch(new RegExp(`^${tag}  #0 256M@${U}, #1 256M@${4 * U}\\s+heads 0, 1$`, 'm'));
      const seqs = JSON.parse(fm(pool, 'extents', '--host', '1', '--json').stdout).extents.map((e: { sharedSeq: number }) => e.sharedSeq);
      expect(seqs).toEqual([0, 1]);
      // The rebuilt allocation still fixes the tag's extents.
      const other = cli([
        'fm',
        '--port',
        `${pool.runDir}/${pool.name}/fm.sock`,
        'add',
        '--host',
        '1',
        '--tag',
        tag,
        '--extent',
        '1536M:256M',
      ]);
      expect(other.stderr).toMatch(/Invalid ?Input/i);
      expect(lsaFiles(pool)).toHaveLength(4);
      fm(pool, 'release', '--host', '0', '--tag', tag);
      await eventually(() => lsaFiles(pool).length === 2, "head 0's label area files to go with its LDs");
      expect(status(pool).heads.map((h) => h.grantedBytes)).toEqual([0, 2 * U]);
    } finally {
      for (const vm of vms) await vm.kill();
      await backend.stop();
    }
  }, 300_000);
});
