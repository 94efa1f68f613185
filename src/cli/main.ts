#!/usr/bin/env node
// The cxl-mhd command line: registers the commands (one file each, which
// parses its options and prints its results; the work is done by the pool,
// heads, daemon, qemu, fmapi, http and scenario modules) and turns errors
// into one line and an exit status. A command loads the heavy parts it
// needs (the daemon, fastify, the scenario runner) when it runs, so the
// others start fast.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { isCodedError } from '../errors/index.js';

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
      const [{ addFmCommands }, { addTagCommands }] = await Promise.all([import('./fm.js'), import('./fm-tags.js')]);
      return (program) => addFmCommands(program, addTagCommands);
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
  const program = new Command('cxl-mhd')
    .description('CXL multi-headed memory device backend for stock QEMU')
    .showHelpAfterError()
    .exitOverride();
  const named = COMMANDS.filter(([names]) => argv?.[0] !== undefined && names.includes(argv[0]));
  for (const [, load] of named.length > 0 ? named : COMMANDS) (await load())(program);
  return program;
}

/**
 * One line for the person at the terminal. Errors of the system (errno
 * codes: a path that is a file, a socket nobody listens on, a permission)
 * are the user's to fix and say so; anything else is our bug, said plainly,
 * with the stack behind CXL_MHD_DEBUG=1.
 */
async function describeError(e: unknown): Promise<string> {
  const { describeFmError } = await import('./fm.js');
  const fm = describeFmError(e);
  if (fm !== null) return fm;
  // Usage, pool, socket, QMP and FM-channel errors: their messages are written for this line.
  if (isCodedError(e)) return e.message;
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return e.message;
    // A plain Error is one we raised with a message for the user (e.g. no QEMU found); subclasses we did not expect are bugs.
    if (Object.getPrototypeOf(e) === Error.prototype) return e.message;
    return `internal error: ${e.message} (set CXL_MHD_DEBUG=1 for details)`;
  }
  return String(e);
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed its message (help, version or usage error).
      return e.exitCode === 0 ? 0 : 2;
    }
    console.error(`cxl-mhd: ${await describeError(e)}`);
    if (process.env.CXL_MHD_DEBUG && e instanceof Error && e.stack) console.error(e.stack);
    return 1;
  }
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
