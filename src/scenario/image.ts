// Owns what a head boots: the project's guest (kernel + initramfs from
// `make setup`), a user's kernel with the project's initramfs, optionally
// with the user's CXL/DAX/virtio modules appended as a second cpio archive
// (Linux unpacks concatenated archives in order), or a user's disk image.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { GuestSpec } from './load.js';
import { projectRoot } from './schema.js';

/** Modules /init needs, with what modules.dep says they need; built-in ones are simply absent. */
const WANTED_MODULES = [
  'cxl_acpi',
  'cxl_pci',
  'cxl_mem',
  'cxl_port',
  'cxl_pmem',
  'dax_cxl',
  'device_dax',
  'dax_hmem',
  'kmem',
  '9p',
  '9pnet_virtio',
  'virtio_rng',
  'virtio_console',
  'virtio_pci',
];

/** Loaded by /init (cxlmhd.modules=) when a user's modules come along; modprobe of a built-in is a no-op. */
export const EXTRA_INIT_MODULES = ['cxl_port', 'virtio_console'];

const INDEXES = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.builtin.modinfo',
  'modules.order',
  'modules.softdep',
  'modules.devname',
];

export interface BootImage {
  kernel?: string;
  initrd?: string;
  disk?: string;
}

/**
 * This checkout's guest image (scripts/build-guest.sh): one per checkout,
 * since the image names the checkout whose CLI its guests run. The script
 * runs every time: it answers in milliseconds when the image is current,
 * and rebuilds it when the guest's inputs changed (a pull that touched
 * guest/), with `[guest]` progress lines on stderr.
 */
export function projectGuest(root: string = projectRoot(), debianKernel?: string): { kernel: string; initrd: string } {
  const script = join(root, 'scripts', 'build-guest.sh');
  const env = debianKernel ? { ...process.env, CXL_MHD_GUEST_KERNEL: debianKernel } : process.env;
  const dir = execFileSync(script, ['--print-dir'], { encoding: 'utf8', env }).trim();
  try {
    execFileSync(script, [], { stdio: ['ignore', 2, 2], env });
  } catch {
    const make = debianKernel ? `make setup QEMU=11 && make guest KERNEL=${debianKernel}` : 'make setup';
    throw new Error(
      `no current guest image${debianKernel ? ` with kernel ${debianKernel}` : ''} for this checkout in ${dir}, and building it failed (above): run \`${make}\``,
    );
  }
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initramfs.cpio.gz');
  if (!existsSync(kernel) || !existsSync(initrd)) throw new Error(`scripts/build-guest.sh left no image in ${dir}: run \`make setup\``);
  return { kernel, initrd };
}

/**
 * The project's guest with one writable scenario share (9p tag cxlmhd,
 * mounted at /scenario: its run.sh is what the guest runs, and the marker
 * and result files a host program and the guest exchange), for the tests
 * and benchmarks that script a guest without the runner. `no_timer_check`
 * as in vm.ts.
 */
export function guestBootArgs(scenarioDir: string, append: string): string[] {
  const image = projectGuest();
  return [
    '-fsdev',
    `local,id=cxlmhd,path=${scenarioDir},security_model=none`,
    '-device',
    'virtio-9p-pci,bus=pcie.0,fsdev=cxlmhd,mount_tag=cxlmhd',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    `no_timer_check ${append}`,
  ];
}

const norm = (p: string) => (p.split('/').pop() ?? p).replace(/\.ko.*$/, '').replace(/-/g, '_');

/** The module files (paths relative to the tree) for WANTED_MODULES and their dependencies. */
export function moduleFiles(modulesDir: string): string[] {
  const depFile = join(modulesDir, 'modules.dep');
  if (!existsSync(depFile))
    throw new Error(`${modulesDir} has no modules.dep: give a lib/modules/VERSION tree (make modules_install; depmod)`);
  const want = new Set(WANTED_MODULES);
  const files = new Set<string>();
  for (const line of readFileSync(depFile, 'utf8').split('\n')) {
    const [mod, deps] = line.split(':');
    if (!mod || !want.has(norm(mod))) continue;
    files.add(mod.trim());
    for (const d of (deps ?? '').trim().split(/\s+/)) if (d) files.add(d);
  }
  return [...files].sort();
}

/** A newc cpio archive (what the kernel's initramfs unpacker reads). */
export function cpioNewc(entries: { name: string; mode: number; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`);
    parts.push(header, nameBuf, pad(header.length + nameBuf.length), data, pad(data.length));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? Buffer.alloc(0));
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** The project's initramfs with the user's modules appended, written to `out`. */
export function initrdWithModules(baseInitrd: string, modulesDir: string, out: string): string[] {
  const version = basename(modulesDir);
  const files = moduleFiles(modulesDir);
  const root = `usr/lib/modules/${version}`;
  const dirs = new Set<string>(['usr', 'usr/lib', 'usr/lib/modules', root]);
  for (const f of files) {
    const parts = f.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${root}/${parts.slice(0, i).join('/')}`);
  }
  const entries: { name: string; mode: number; data?: Buffer }[] = [...dirs]
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b))
    .map((d) => ({ name: d, mode: 0o040755 }));
  for (const f of [...files, ...INDEXES]) {
    const src = join(modulesDir, f);
    if (existsSync(src)) entries.push({ name: `${root}/${f}`, mode: 0o100644, data: readFileSync(src) });
  }
  writeFileSync(out, Buffer.concat([readFileSync(baseInitrd), gzipSync(cpioNewc(entries))]), { mode: 0o600 });
  return files.map(norm);
}

/** Kernel/initrd (or disk) for a head's guest; `work` holds any initrd made for it. */
export function bootImage(guest: GuestSpec, work: string, head: number): BootImage {
  if (guest.disk && !guest.kernel) return { disk: guest.disk };
  const project = projectGuest(projectRoot(), guest.debianKernel);
  if (guest.disk) return { kernel: guest.kernel, disk: guest.disk, ...(guest.initrd ? { initrd: guest.initrd } : {}) };
  if (!guest.kernel) return project;
  if (!guest.modules) return { kernel: guest.kernel, initrd: project.initrd };
  const out = join(work, `head${head}-initramfs.cpio.gz`);
  initrdWithModules(project.initrd, guest.modules, out);
  return { kernel: guest.kernel, initrd: out };
}
