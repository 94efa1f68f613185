// The backend's listening Unix sockets: one per head port
// (<run-dir>/<pool>/head<N>.sock) and the host FM-API socket (fm.sock).
// Owns their creation with safe permissions, stale-socket recovery, and the
// one peer-credential gate (listenAllowed) every one of them goes through.
import { chmodSync, chownSync, existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SocketPathError, UsageError } from '../errors/index.js';
import { native } from '../native/index.js';
import { headSocketPath, makeSafeDir, poolRunDir } from '../pool/index.js';

export interface SocketAccess {
  /** Group allowed to connect (name or gid): sockets become 0660 with that group. */
  group?: string;
  /** Uids allowed to connect; default: the backend's own uid. root is always allowed. */
  allowedUids?: number[];
}

export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new UsageError(`socket group "${group}" does not exist`);
}

/** True if something accepts connections on `path` (a live backend). */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface PeerInfo {
  pid: number;
  uid: number;
  gid: number;
}

export function peerOf(socket: Socket): PeerInfo {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('connection has no file descriptor');
  return native.peerCred(fd);
}

/**
 * Listens on every head socket. Refuses to start if another process is
 * already listening on one (a second backend); removes sockets left by a
 * crashed backend.
 */
export async function listenHeads(
  runDir: string,
  pool: string,
  headCount: number,
  access: SocketAccess,
  onConnection: (head: number, socket: Socket, peer: PeerInfo) => void,
  onRejected: (head: number, reason: string) => void,
): Promise<Server[]> {
  // The run dir itself only needs to be traversable (0711, when we create it);
  // the pool's own dir below it is what guards the sockets.
  const dir = poolRunDir(runDir, pool);
  makeSafeDir(dir, 'run directory', 0o700);
  const gid = access.group !== undefined ? resolveGroup(access.group) : undefined;
  if (gid !== undefined) {
    // Group members need to traverse the directory to reach the sockets.
    chownSync(dir, process.getuid?.() ?? 0, gid);
    chmodSync(dir, 0o750);
  } else {
    chmodSync(dir, 0o700);
  }
  const allowed = allowedUids(access);
  const servers: Server[] = [];
  try {
    for (let head = 0; head < headCount; head++) {
      const path = headSocketPath(runDir, pool, head);
      await clearStaleSocket(path);
      const server = await listenAllowed(
        path,
        allowed,
        (socket, peer) => onConnection(head, socket, peer),
        (reason) => onRejected(head, reason),
      );
      if (gid !== undefined) {
        chownSync(path, process.getuid?.() ?? 0, gid);
        chmodSync(path, 0o660);
      }
      servers.push(server);
    }
  } catch (e) {
    await closeServers(servers, runDir, pool, headCount);
    throw e;
  }
  return servers;
}

/** Removes a socket left by a crashed backend; refuses a live one or anything that is not a socket. */
export async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket())
    throw new SocketPathError('CXLMHD_ERR_SOCKET_PATH', `${path} exists and is not a socket; refusing to replace it`);
  if (await socketIsLive(path)) throw new SocketPathError('CXLMHD_ERR_SOCKET_IN_USE', `${path} is served by another process`);
  unlinkSync(path);
}

/** Uids that may connect: the configured list (default: our own uid), and root. */
export function allowedUids(access: SocketAccess): Set<number> {
  return new Set([...(access.allowedUids ?? [process.getuid?.() ?? 0]), 0]);
}

/**
 * Listens on `path`, created 0600 from the start, and hands on only
 * connections whose peer uid is allowed; the others are closed at once and
 * reported. Connections arrive paused: the caller decides when to read.
 */
export async function listenAllowed(
  path: string,
  allowed: Set<number>,
  onConnection: (socket: Socket, peer: PeerInfo) => void,
  onRejected: (reason: string) => void,
): Promise<Server> {
  const server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (socket) => {
    let peer: PeerInfo;
    try {
      peer = peerOf(socket);
    } catch (e) {
      socket.destroy();
      onRejected(`cannot read peer credentials: ${(e as Error).message}`);
      return;
    }
    if (!allowed.has(peer.uid)) {
      socket.destroy();
      onRejected(`connection from uid ${peer.uid} (pid ${peer.pid}) refused: not an allowed uid`);
      return;
    }
    onConnection(socket, peer);
  });
  await listenPrivately(server, path);
  return server;
}

/** Listens on a Unix socket created 0600 from the start: no window where others could connect. */
function listenPrivately(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o177);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(old);
    }
  });
}

export async function closeServers(servers: Server[], runDir: string, pool: string, headCount: number): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  for (let head = 0; head < headCount; head++) {
    const p = headSocketPath(runDir, pool, head);
    try {
      if (lstatSync(p).isSocket()) unlinkSync(p);
    } catch {
      // already gone
    }
  }
}
