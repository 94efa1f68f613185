// The backend's control socket (<run-dir>/<pool>/control.sock): operator
// requests to the running backend that no guest and no FM client may make
// (moving the FM-LD lease, injecting a CXL event record into one head). It listens through listener.ts's one
// uid-checked gate, admitting the backend's own uid only (not even root:
// the operator acts as the service user). One JSON line each way.
import { lstatSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { connect } from 'node:net';
import { controlSocketPath, PoolError } from '../pool/index.js';
import { INJECT_KINDS, type InjectKind, type InjectRequest } from './inject.js';
import { clearStaleSocket, listenAllowed } from './listener.js';

export type ControlRequest = { op: 'lease-takeover'; head: number; force: boolean } | ({ op: 'inject'; head: number } & InjectRequest);

export type ControlReply = { ok: true; message: string; detail?: Record<string, unknown> } | { ok: false; error: string };

/** Requests longer than this are not ours: the connection is dropped. */
const MAX_REQUEST = 4096;

function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('the request is not JSON');
  }
  const r = v as { op?: unknown; head?: unknown; force?: unknown; kind?: unknown; log?: unknown; fields?: unknown };
  if (r?.op !== 'lease-takeover' && r?.op !== 'inject') throw new Error(`unknown request ${JSON.stringify(r?.op)}`);
  if (!Number.isInteger(r.head) || (r.head as number) < 0) throw new Error('"head" must be a head number');
  const head = r.head as number;
  if (r.op === 'lease-takeover') return { op: 'lease-takeover', head, force: r.force === true };
  if (!INJECT_KINDS.includes(r.kind as InjectKind)) throw new Error(`"kind" must be one of ${INJECT_KINDS.join(', ')}`);
  const fields = (r.fields ?? {}) as Record<string, unknown>;
  if (typeof fields !== 'object' || Object.values(fields).some((x) => typeof x !== 'number' && typeof x !== 'string'))
    throw new Error('"fields" must map field names to numbers or text');
  // Field names and the log are checked against the record's table when it is built (inject.ts).
  return {
    op: 'inject',
    head,
    kind: r.kind as InjectKind,
    log: String(r.log ?? 'informational') as InjectRequest['log'],
    fields: fields as InjectRequest['fields'],
  };
}

export async function listenControl(
  runDir: string,
  pool: string,
  handle: (req: ControlRequest) => Promise<ControlReply>,
  onRejected: (reason: string) => void,
): Promise<Server> {
  const path = controlSocketPath(runDir, pool);
  await clearStaleSocket(path);
  const own = process.getuid?.() ?? 0;
  return listenAllowed(
    path,
    new Set([own]),
    (socket: Socket) => {
      let buf = '';
      socket.setEncoding('utf8');
      socket.on('error', () => socket.destroy());
      socket.on('data', (d: string) => {
        buf += d;
        if (buf.length > MAX_REQUEST) {
          socket.destroy();
          return;
        }
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        socket.pause();
        let reply: Promise<ControlReply>;
        try {
          reply = handle(parseRequest(buf.slice(0, nl)));
        } catch (e) {
          reply = Promise.resolve({ ok: false, error: (e as Error).message });
        }
        void reply.catch((e: Error) => ({ ok: false as const, error: e.message })).then((r) => socket.end(`${JSON.stringify(r)}\n`));
      });
      socket.resume();
    },
    onRejected,
  );
}

/** Sends one request to the pool's running backend and returns its reply. */
export function controlRequest(runDir: string, pool: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> {
  const path = controlSocketPath(runDir, pool);
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new PoolError('LOCKED', `the backend of pool "${pool}" did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.once('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (d: string) => {
      buf += d;
    });
    // The gate closes connections from other uids without a word (root's too): say whose backend it is.
    const refused = () => {
      let owner: number | null = null;
      try {
        owner = lstatSync(path).uid;
      } catch {
        // gone meanwhile
      }
      return new PoolError(
        'LOCKED',
        owner === null
          ? `the backend of pool "${pool}" closed the control connection without an answer (only its own uid may use it)`
          : `only uid ${owner} may take over this pool's lease (the backend of pool "${pool}" runs as uid ${owner}; this is uid ${process.getuid?.() ?? '?'})`,
      );
    };
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') {
        reject(refused());
      } else if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(new PoolError('NOT_FOUND', `no backend serves pool "${pool}" here (no control socket at ${path})`));
      } else reject(new PoolError('LOCKED', `cannot reach the backend of pool "${pool}" at ${path}: ${e.code ?? e.message}`));
    });
    s.once('close', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(refused());
      }
    });
  });
}
