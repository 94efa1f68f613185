// The QEMU arguments that boot the project's guest image on a head with one
// writable scenario share (9p tag cxlmhd, mounted at /scenario: run.sh and
// the marker/result files a host program and the guest exchange).
import { guestImage } from './scenario.js';

/**
 * `no_timer_check`: on a loaded host, TCG can be too slow for the kernel's
 * IO-APIC timer probe, and the guest panics at boot ("IO-APIC + timer
 * doesn't work!"; seen with 9 TCG guests on 2 CPUs).
 */
export function guestBootArgs(scenarioDir: string, append: string): string[] {
  const image = guestImage();
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
