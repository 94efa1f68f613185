// The live pool page: static HTML, JS and CSS shipped in the package
// (src/http/page, nothing fetched at run time) and the one JSON document it
// redraws from, /ui/state.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../../context.js';
import { resource } from '../../plugins/protocol.js';

// The files stay in src/http/page. This module runs from src/http/routes/ui
// (tests), dist/src/http/routes/ui (tsc's output) or dist/src/cli/chunks
// (the bundled command line), so the page is looked for upwards from here.
const PAGE_DIR = (() => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
    const found = [join(dir, 'page'), join(dir, 'src', 'http', 'page')].find((d) => existsSync(join(d, 'index.html')));
    if (found) return found;
  }
  return undefined;
})();

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/ui/app.js': 'app.js',
  '/ui/app.css': 'app.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export function pageState(ctx: Context): Record<string, unknown> {
  const m = ctx.model();
  const s = m.snap.status;
  return {
    pool: ctx.pool,
    capacityBytes: s.capacityBytes,
    blockBytes: s.blockBytes,
    freeBytes: s.freeBytes,
    fmldOwner: s.fmldOwner,
    lastEventId: ctx.hub.lastId,
    segments: m.segments(),
    quarantined: m.holdings
      .filter((h) => h.state === 'quarantined')
      .map((h) => ({ head: h.head, offset: h.offset, len: h.len, reason: h.reason ?? null })),
    heads: s.heads.map((h) => {
      const r = m.snap.heads.find((x) => x.head === h.id);
      return {
        head: h.id,
        attached: h.attached,
        phase: r?.phase ?? 'detached',
        reason: r?.reason ?? null,
        pid: h.pid ?? r?.pid ?? null,
        delivery: r?.delivery ?? null,
        grantedBytes: h.grantedBytes,
        sharedBytes: h.sharedBytes,
        fmld: s.fmldOwner === h.id,
      };
    }),
  };
}

export const pageRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const cache = new Map<string, Buffer>();
  for (const [url, file] of Object.entries(ASSETS)) {
    resource(app, url, {
      GET: {
        handler: async (_req, reply) => {
          if (!PAGE_DIR) throw new Error('the page files (src/http/page) are missing from this installation');
          let body = cache.get(file);
          if (!body) {
            body = readFileSync(join(PAGE_DIR, file));
            cache.set(file, body);
          }
          reply
            .type(TYPES[file.split('.').pop() as string] as string)
            .header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
            .header('X-Content-Type-Options', 'nosniff')
            .header('Cache-Control', 'no-cache');
          return body;
        },
      },
    });
  }
  resource(app, '/ui/state', { GET: { handler: async () => pageState(ctx) } });
};
