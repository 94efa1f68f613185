// The program object and the error line every cxl-mhd entry shares: the Node
// CLI (main.ts) and the guest FM client (fm-guest.ts), so both say the same
// thing for the same mistake. Imports nothing of Node's: the guest client
// runs it on QuickJS.
import { Command, CommanderError } from 'commander';
import { isCodedError } from '../errors/index.js';

export function newProgram(): Command {
  return new Command('cxl-mhd').description('CXL multi-headed memory device backend for stock QEMU').showHelpAfterError().exitOverride();
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

/** Runs the command argv names; the exit status: 0, 1 for a failure (one line on stderr), 2 for a usage error. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
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
