// Every command that touches a pool takes the same --run-dir and --state-dir
// (README), from one definition (src/cli/options.ts): each is parsed here by
// the real program, its action swapped for a recorder, so nothing runs.
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

/** Leaf commands with their full names, e.g. ['lease', 'takeover']. */
function leaves(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  if (cmd.commands.length === 0) return [{ path, cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

const VALUES: Record<string, string> = { '--capacity': '1G' };

const poolCommands = async () => leaves(await buildProgram()).filter(({ cmd }) => cmd.options.some((o) => o.long === '--pool'));

describe('shared options', () => {
  it('every pool command is found, lease takeover among them', async () => {
    const names = (await poolCommands()).map(({ path }) => path.join(' '));
    expect(names).toEqual(
      expect.arrayContaining(['pool create', 'pool destroy', 'status', 'fsck', 'serve', 'qemu-args', 'lease takeover', 'inject', 'events']),
    );
  });

  it('each pool command accepts --run-dir and --state-dir and hands both to its action', async () => {
    const names = (await poolCommands()).map(({ path }) => path);
    for (const path of names) {
      const program = await buildProgram(path);
      const cmd = leaves(program).find((l) => l.path.join(' ') === path.join(' '))?.cmd as Command;
      let seen: Record<string, unknown> | null = null;
      cmd.action(function (this: Command) {
        seen = this.opts();
      });
      // Every mandatory option gets a value; the flags under test come last.
      const required = cmd.options
        .filter((o) => o.mandatory && o.long !== '--pool')
        .flatMap((o) => [o.long as string, VALUES[o.long as string] ?? '1']);
      // Required arguments too (inject's record).
      const args = cmd.registeredArguments.filter((a) => a.required).map((a) => VALUES[a.name()] ?? 'x');
      await program.parseAsync([...path, ...args, '--pool', 'p', ...required, '--run-dir', '/r', '--state-dir', '/s'], { from: 'user' });
      expect(seen, path.join(' ')).toMatchObject({ pool: 'p', runDir: '/r', stateDir: '/s' });
    }
  });

  it('an unknown flag is still a usage error', async () => {
    const program = await buildProgram(['status']);
    for (const c of [program, ...program.commands]) c.configureOutput({ writeErr: () => {} });
    await expect(program.parseAsync(['status', '--pool', 'p', '--no-such-flag'], { from: 'user' })).rejects.toThrow(/unknown option/);
  });
});
