// `cxl-mhd qemu-args`: the QEMU arguments that make a VM head I of a pool.
import { type Command, Option } from 'commander';
import { UsageError } from '../errors/index.js';
import { Pool, parseSize, resolveDirs } from '../pool/index.js';
import { headArgs, parseQemuVersion, parseStaticWindow, qemuArgv, resolveQemu } from '../qemu/index.js';
import { type DirOpts, parseHead, withDirs } from './options.js';

interface QemuArgsFlags extends DirOpts {
  pool: string;
  head: string;
  static?: string;
  sparePorts?: string;
  delivery: 'hotplug' | 'dcd';
  memory: string;
  capacity?: string;
  withBinary?: boolean;
  qemuVersion?: string;
}

export function addQemuArgsCommand(program: Command): void {
  withDirs(
    program
      .command('qemu-args')
      .description('print the QEMU arguments that make a VM head I of the pool, one per line')
      .requiredOption('--pool <name>', 'pool name')
      .requiredOption('--head <i>', 'head id (the socket the VM dials)')
      .option('--static <window>', 'static window SIZE[@OFFSET][,exclusive] of the pool, present at boot')
      .option('--spare-ports <k>', 'empty CXL root ports for hot-added capacity (default 2 for hotplug, 0 for dcd)')
      .addOption(new Option('--delivery <how>', 'how dynamic capacity reaches this head').choices(['hotplug', 'dcd']).default('hotplug'))
      .option('--memory <size>', 'guest RAM (-m)', '1G')
      .option('--capacity <size>', "the pool's capacity, when the pool does not exist yet")
      .option('--with-binary', 'print the QEMU command (and firmware paths) first: a complete command line')
      .option(
        '--qemu-version <x.y>',
        "the QEMU the arguments are for (picks -object monitor-qmp and a NUMA node on >= 11.1, -mon before); default: the project's QEMU, else -mon",
      ),
  ).action((o: QemuArgsFlags) => {
    const dirs = resolveDirs(o);
    const head = parseHead(o.head);
    let capacityBytes: number;
    if (Pool.exists(o.pool)) {
      const p = Pool.open({ name: o.pool, stateDir: dirs.stateDir, readOnly: true });
      try {
        p.state.checkHead(head);
        capacityBytes = p.state.header.capacityBytes;
      } finally {
        p.close();
      }
    } else if (o.capacity) {
      capacityBytes = parseSize(o.capacity, 'capacity');
    } else {
      throw new UsageError(`pool "${o.pool}" does not exist; create it first or pass --capacity`);
    }
    if (o.sparePorts !== undefined && !/^\d+$/.test(o.sparePorts)) {
      throw new UsageError(`--spare-ports ${o.sparePorts} is not a whole number`);
    }
    if (!/^\d+[KMG]?$/i.test(o.memory)) throw new UsageError(`--memory "${o.memory}" must be a size QEMU's -m takes, e.g. 1G or 512M`);
    const args = headArgs({
      pool: o.pool,
      head,
      runDir: dirs.runDir,
      capacityBytes,
      static: o.static ? parseStaticWindow(o.static) : undefined,
      sparePorts: o.sparePorts === undefined ? undefined : Number(o.sparePorts),
      delivery: o.delivery,
      memory: o.memory,
      qemuVersion: argsQemuVersion(o.qemuVersion, o.withBinary === true),
    });
    const words = o.withBinary ? qemuArgv(resolveQemu(), args) : args;
    process.stdout.write(`${words.join('\n')}\n`);
  });
}

/**
 * The QEMU version `qemu-args` writes for: the one given, else the project's
 * QEMU (which --with-binary runs anyway), else unknown (`-mon`, accepted by
 * every QEMU >= 10.0).
 */
function argsQemuVersion(given: string | undefined, withBinary: boolean): string | undefined {
  if (given !== undefined) {
    if (parseQemuVersion(given) === null) throw new UsageError(`--qemu-version "${given}" must look like 11.1 or 10.0.13`);
    return given;
  }
  try {
    return resolveQemu().version;
  } catch (e) {
    if (withBinary) throw e;
    return undefined;
  }
}
