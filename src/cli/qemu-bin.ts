// `cxl-mhd qemu-bin`: the command words that run the QEMU this project uses.
import type { Command } from 'commander';
import { qemuArgv, resolveQemu } from '../qemu/index.js';

export function addQemuBinCommand(program: Command): void {
  program
    .command('qemu-bin')
    .description('print the command words (one per line) that run the QEMU >= 10 this project uses, firmware paths included')
    .action(() => {
      process.stdout.write(`${qemuArgv(resolveQemu(), []).join('\n')}\n`);
    });
}
