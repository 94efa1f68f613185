// What every command shares: the options of a command that touches a pool
// (defined once, so each accepts the same --run-dir and --state-dir), and
// the parsers of the numbers several commands take. Kept light: every
// command's file loads this before it runs.
import { type Command, Option } from 'commander';
import { UsageError } from '../errors/index.js';
import { MAX_HEADS } from '../pool/index.js';

export interface DirOpts {
  runDir?: string;
  stateDir?: string;
}

/** --run-dir and --state-dir, the same on every pool command (README: every command that touches a pool). */
export function withDirs(cmd: Command): Command {
  return cmd
    .addOption(new Option('--run-dir <dir>', 'directory for head sockets (default: $XDG_RUNTIME_DIR/cxl-mhd or /run/cxl-mhd)'))
    .addOption(new Option('--state-dir <dir>', 'directory for the journal (default: $XDG_STATE_HOME/cxl-mhd or /var/lib/cxl-mhd)'));
}

export function parseHeads(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`head count "${text}" is not a whole number`);
  return Number(text);
}

export function parseHead(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`head "${text}" is not a whole number`);
  const head = Number(text);
  if (head >= MAX_HEADS) throw new UsageError(`head ${text} does not exist: a pool has at most ${MAX_HEADS} heads (0..${MAX_HEADS - 1})`);
  return head;
}

/** An octal file mode for a pool's shm objects. */
export function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`mode "${text}" must be an octal permission mode such as 600 or 660`);
  return Number.parseInt(text, 8);
}

/** A positive whole number of milliseconds a timer can hold. */
export function parseMs(text: string, what: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= 2 ** 31 - 1))
    throw new UsageError(`${what} "${text}" must be a whole number of milliseconds from 1 to ${2 ** 31 - 1}`);
  return ms;
}
