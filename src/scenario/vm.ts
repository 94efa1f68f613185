// Owns one head's QEMU process for the runner: its command line (the
// head's qemu-args plus console, shares, the guest agent's port and what it
// boots), its exit, its console tail, and its guest agent.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headArgs, type QemuBinary, qemuArgv } from '../qemu/index.js';
import { GuestAgent } from './agent.js';
import { type BootImage, EXTRA_INIT_MODULES } from './image.js';
import type { HeadSpec } from './load.js';

const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;?]*[A-Za-z]`, 'g');

export const AGENT_PORT_NAME = 'org.qemu.guest_agent.0';

export interface VmOptions {
  head: HeadSpec;
  pool: string;
  runDir: string;
  capacityBytes: number;
  /** Consoles, stderr and the agent socket go here. */
  work: string;
  /** The checkout, shared read-only with the guest for `cxl-mhd fm`. */
  root: string;
  qemu: QemuBinary;
  image: BootImage;
}

/** The full QEMU command line for one head. */
export function vmArgv(o: VmOptions, paths: { console: string; agent: string }): string[] {
  const { head, image } = o;
  const args = headArgs({
    pool: o.pool,
    head: head.id,
    runDir: o.runDir,
    capacityBytes: o.capacityBytes,
    static: head.static,
    sparePorts: head.sparePorts,
    delivery: head.delivery,
    memory: head.guest.memory,
    qemuVersion: o.qemu.version,
  });
  args.push(
    '-display',
    'none',
    '-nodefaults',
    // A panicking guest ends its QEMU (panic=-1 + -no-reboot): the runner sees the exit.
    '-no-reboot',
    '-serial',
    `file:${paths.console}`,
    '-chardev',
    `socket,id=qga0,path=${paths.agent},server=on,wait=off`,
    '-device',
    `virtserialport,bus=cxl-mhd-vser.0,chardev=qga0,name=${AGENT_PORT_NAME}`,
    // Only /usr and the checkout, read-only: never the host's / (its /dev/shm holds the pool).
    '-fsdev',
    'local,id=hostusr,path=/usr,security_model=none,readonly=on',
    '-device',
    'virtio-9p-pci,bus=pcie.0,fsdev=hostusr,mount_tag=hostusr',
    '-fsdev',
    `local,id=hostproject,path=${o.root},security_model=none,readonly=on`,
    '-device',
    'virtio-9p-pci,bus=pcie.0,fsdev=hostproject,mount_tag=hostproject',
  );
  // Copy-on-write: the user's image is never written. On pcie.0 explicitly: by default QEMU
  // would put it on the CXL host bridge's bus, which takes only bridges.
  if (image.disk)
    args.push('-drive', `file=${image.disk},if=none,id=disk0,snapshot=on`, '-device', 'virtio-blk-pci,drive=disk0,bus=pcie.0');
  if (image.kernel) {
    // no_timer_check: on a loaded host the kernel's IO-APIC timer check under TCG can
    // miss its ticks and panic ("IO-APIC + timer doesn't work!"); VMs skip it.
    const append = ['console=ttyS0', 'panic=-1', 'no_timer_check'];
    // The project's initramfs (not a disk guest's own) takes its orders from cxlmhd.* words.
    if (image.initrd && !image.disk) {
      append.push('quiet', `cxlmhd.head=${head.id}`, `cxlmhd.project=${o.root}`, 'cxlmhd.agent=1', `cxlmhd.qemu=${o.qemu.version}`);
      if (head.guest.modules) append.push(`cxlmhd.modules=${EXTRA_INIT_MODULES.join(',')}`);
    }
    if (head.guest.append) append.push(head.guest.append);
    args.push('-kernel', image.kernel, '-append', append.join(' '));
    if (image.initrd) args.push('-initrd', image.initrd);
  }
  return qemuArgv(o.qemu, args);
}

export class HeadVm {
  readonly id: number;
  readonly consolePath: string;
  readonly agentPath: string;
  readonly agent: GuestAgent;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  private readonly child: ChildProcess;
  private stderr = '';
  /** Why this head is gone, when the scenario killed it. */
  killedBy: string | null = null;

  constructor(o: VmOptions) {
    this.id = o.head.id;
    this.consolePath = join(o.work, `head${this.id}-console.log`);
    this.agentPath = join(o.work, `head${this.id}-agent.sock`);
    writeFileSync(this.consolePath, '', { mode: 0o600 });
    const argv = vmArgv(o, { console: this.consolePath, agent: this.agentPath });
    this.child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr?.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-16_384);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        writeFileSync(join(o.work, `head${this.id}-qemu.stderr`), this.stderr);
        resolve({ code, signal });
      });
      this.child.once('error', (e) => {
        this.stderr += `\n${e.message}`;
        resolve({ code: null, signal: null });
      });
    });
    this.agent = new GuestAgent(this.agentPath);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get qemuStderr(): string {
    return this.stderr;
  }

  /** The last `lines` lines of the guest's serial console. */
  consoleTail(lines = 40): string {
    if (!existsSync(this.consolePath)) return '';
    const size = statSync(this.consolePath).size;
    const len = Math.min(size, 16_384);
    const buf = Buffer.alloc(len);
    const fd = openSync(this.consolePath, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    // Terminal escapes (the shell's cursor queries) would only garble reports.
    const text = buf.toString('utf8').replace(ANSI_ESCAPE, '').replace(/\r/g, '');
    return text.split('\n').slice(-lines).join('\n');
  }

  /** The last CXLMHD- marker on the console: where the project's /init is. */
  lastMarker(): string | null {
    const m = this.consoleTail(200).match(/CXLMHD-[A-Z]+/g);
    const last = m?.[m.length - 1];
    return last ? last.replace('CXLMHD-', '') : null;
  }

  async kill(): Promise<void> {
    this.agent.close();
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }
}
