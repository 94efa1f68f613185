#!/usr/bin/env node
// The cxl-mhd command line: registers the commands (one file each, which
// parses its options and prints its results; the work is done by the pool,
// heads, daemon, qemu, fmapi, http and scenario modules) and turns errors
// into one line and an exit status. A command loads the heavy parts it
// needs (the daemon, fastify, the scenario runner) when it runs, so the
// others start fast.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { newProgram, runProgram } from './program.js';

type Adder = (program: Command) => void;

/** Every command's file, in the order `--help` lists them; events.ts also adds http-passwd. */
const COMMANDS: [names: string[], load: () => Promise<Adder>][] = [
  [['pool'], async () => (await import('./pool.js')).addPoolCommands],
  [['status'], async () => (await import('./status.js')).addStatusCommand],
  [['fsck'], async () => (await import('./fsck.js')).addFsckCommand],
  [['serve'], async () => (await import('./serve.js')).addServeCommand],
  [['qemu-args'], async () => (await import('./qemu-args.js')).addQemuArgsCommand],
  [
    ['fm'],
    async () => {
      const [{ addFmCommands }, { addTagCommands }, { nodeFmIo }] = await Promise.all([
        import('./fm.js'),
        import('./fm-tags.js'),
        import('./fm-node.js'),
      ]);
      return (program) => addFmCommands(program, nodeFmIo, addTagCommands);
    },
  ],
  [['lease'], async () => (await import('./lease.js')).addLeaseCommands],
  [['inject'], async () => (await import('./inject.js')).addInjectCommand],
  [['events', 'http-passwd'], async () => (await import('./events.js')).addEventsCommands],
  [['run'], async () => (await import('./run.js')).addRunCommand],
  [['demo'], async () => (await import('./demo.js')).addDemoCommand],
  [['qemu-bin'], async () => (await import('./qemu-bin.js')).addQemuBinCommand],
];

/**
 * The program with the command `argv` names, or with every command (help,
 * an unknown command, no argv): a command's file and what it imports load
 * only when it may run, which is most of a short command's start-up.
 */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = newProgram();
  const named = COMMANDS.filter(([names]) => argv?.[0] !== undefined && names.includes(argv[0]));
  for (const [, load] of named.length > 0 ? named : COMMANDS) (await load())(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  return runProgram(await buildProgram(argv), argv);
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
