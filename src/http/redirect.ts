// A plain-HTTP request that reaches the HTTPS port: the first byte of a TLS
// connection is a handshake record (0x16), anything else is taken as HTTP
// and answered with one 308 to the same path over https, no body and the
// connection closed. Nothing of the service is served over plain HTTP; a
// client (or DMTF's Protocol Validator) that starts with http:// is moved
// to TLS, where the target's own authentication applies.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

const TLS_HANDSHAKE = 0x16;

/** Makes `tls` answer plain HTTP on its port with a redirect to `origin()` (the https://host:port the service listens on). */
export function redirectPlainHttp(tls: HttpsServer, origin: () => string, headersTimeoutMs: number): void {
  const plain = createServer(
    { headersTimeout: headersTimeoutMs, requestTimeout: headersTimeoutMs },
    (req: IncomingMessage, res: ServerResponse) => {
      // Only the path of the request goes into Location: a Host header cannot send the client elsewhere.
      const path = (req.url ?? '/').startsWith('/') ? (req.url ?? '/') : '/';
      res.writeHead(308, { Location: `${origin()}${path}`, 'Content-Length': '0', Connection: 'close', 'Cache-Control': 'no-cache' });
      res.end();
    },
  );
  const handshake = tls.listeners('connection') as ((s: Socket) => void)[];
  tls.removeAllListeners('connection');
  tls.on('connection', (sock: Socket) => {
    // A client that connects and sends nothing is cut off like a slow request head (the TLS handshake timer starts only later).
    sock.setTimeout(headersTimeoutMs, () => sock.destroy());
    sock.once('readable', () => {
      sock.setTimeout(0);
      const first = sock.read(1) as Buffer | null;
      if (first === null) {
        sock.destroy();
        return;
      }
      // Put the byte back: the TLS socket that wraps this one reads what is buffered first.
      sock.unshift(first);
      if (first[0] === TLS_HANDSHAKE) for (const l of handshake) l.call(tls, sock);
      else plain.emit('connection', sock);
    });
  });
}
