// `cxl-mhd serve`, the daemon's start-up and life: create the pool when
// asked (with a wider shm mode than the backend's own 0600), start the
// backend, then the northbound when asked, report ready (to the caller and to
// a service manager), and on SIGINT/SIGTERM stop both. The command line
// parses the options and calls serve(), as vhost-user-backend's binary calls
// VhostUserDaemon::serve.
import { pino } from 'pino';
import { Backend, type BackendOptions, type SocketAccess } from '../heads/index.js';
import { DEFAULT_BLOCK_BYTES, Pool } from '../pool/index.js';
import { type NorthboundAt, startNorthbound } from './northbound.js';
import { notifyReady } from './sd-notify.js';

/** The pool, its dirs and the journal-loss switch, as the backend takes them (capacity and heads: all or none, for a pool created here). */
type BackendPassed = 'pool' | 'runDir' | 'stateDir' | 'capacityBytes' | 'headCount' | 'blockBytes' | 'acceptJournalLoss';

export interface ServeOptions extends Pick<BackendOptions, BackendPassed> {
  /** File mode of the shm objects of a pool created here. */
  mode?: number;
  access: SocketAccess;
  qmpTimeoutMs: number;
  fmSocket: boolean;
  /** The northbound, checked beforehand (checkNorthbound); null: none. */
  http: NorthboundAt | null;
  /** Called once signals are handled: whoever waits for "ready" may signal at once. */
  onReady: (ready: { headCount: number; url: string | null }) => void;
}

/** Runs until SIGINT or SIGTERM; attached QEMUs keep running and reconnect to the next backend. */
export async function serve(o: ServeOptions): Promise<void> {
  const logger = pino({ base: undefined }, pino.destination(2));
  const dirs = { runDir: o.runDir, stateDir: o.stateDir };
  if (o.mode !== undefined && o.capacityBytes !== undefined && o.headCount !== undefined && !Pool.exists(o.pool)) {
    // The backend creates pools 0600; a wider mode (QEMU as another user) is made here first.
    Pool.create({
      name: o.pool,
      capacityBytes: o.capacityBytes,
      blockBytes: o.blockBytes ?? DEFAULT_BLOCK_BYTES,
      headCount: o.headCount,
      stateDir: o.stateDir,
      mode: o.mode,
    }).close();
  }
  const backend = await Backend.start({
    pool: o.pool,
    ...dirs,
    capacityBytes: o.capacityBytes,
    headCount: o.headCount,
    blockBytes: o.blockBytes,
    access: o.access,
    logger,
    qmpTimeoutMs: o.qmpTimeoutMs,
    fmSocket: o.fmSocket,
    acceptJournalLoss: o.acceptJournalLoss === true,
  });
  let http: Awaited<ReturnType<typeof startNorthbound>> | null = null;
  if (o.http) {
    try {
      http = await startNorthbound(backend, o.http, dirs, logger);
    } catch (e) {
      await backend.stop();
      throw e;
    }
  }
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info(`${signal}: shutting down; attached QEMUs keep running and reconnect to the next backend`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    // Only now: whoever waits for "ready" may signal at once, and without a handler SIGTERM kills outright.
    o.onReady({ headCount: backend.headCount, url: http?.url ?? null });
  });
  // Only now: a manager may send SIGTERM the moment it reads READY=1.
  const notifyProblem = await notifyReady(`serving pool ${o.pool}: ${backend.headCount} head sockets`);
  if (notifyProblem) logger.warn(notifyProblem);
  await stopped;
  await http?.close();
  await backend.stop();
  logger.flush();
}
