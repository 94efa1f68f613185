// Request-parser fuzz of the Redfish service, in process (fastify.inject)
// over a real FmApiServer: 24,000 seeded random requests — methods, mangled
// paths, auth headers, content types, bodies from valid-looking to garbage.
// Every answer is one the service documents, every error a Redfish error
// body, never a 500; capacity only ever moves for a 201 connection.
import { describe, expect, it } from 'vitest';
import { BASIC, fakeNorthbound } from '../helpers/northbound.js';

const CASES = 24_000;
const CHUNKS = '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool/MemoryChunks';
const PATHS = [
  '/',
  '/ui/state',
  '/ui/app.js',
  '/redfish',
  '/redfish/v1',
  '/redfish/v1/',
  '/redfish/v1/odata',
  '/redfish/v1/Chassis',
  '/redfish/v1/Chassis/fakepool',
  '/redfish/v1/Chassis/fakepool/MemoryDomains/fakepool',
  CHUNKS,
  `${CHUNKS}/0M-256M`,
  `${CHUNKS}/1024M-256M`,
  '/redfish/v1/Chassis/fakepool/PCIeDevices/fakepool/CXLLogicalDevices/1',
  '/redfish/v1/Fabrics/CXL',
  '/redfish/v1/Fabrics/CXL/Endpoints/head0',
  '/redfish/v1/Fabrics/CXL/Connections',
  '/redfish/v1/Fabrics/CXL/Connections/c1',
  '/redfish/v1/Fabrics/CXL/Connections/window-0M-256M',
  '/redfish/v1/SessionService/Sessions',
  '/redfish/v1/EventService',
  '/redfish/v1/Registries/CxlMhd.1.0/Registry',
];
const METHODS = ['GET', 'GET', 'POST', 'POST', 'POST', 'DELETE', 'PATCH', 'PUT', 'HEAD', 'OPTIONS'] as const;
// 501: a `$` query parameter other than the ones ProtocolFeaturesSupported names (DSP0266).
const OK_STATUS = new Set([200, 201, 204, 400, 401, 404, 405, 409, 413, 414, 415, 501, 503]);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzRequests(seed: number, n: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const int = (max: number) => Math.floor(r() * max);
  const weird = () =>
    pick<unknown>([
      -1,
      0,
      1.5,
      2 ** 53,
      '256',
      null,
      true,
      [],
      {},
      'x'.repeat(int(300)),
      int(4096),
      int(8) * 256,
      '\u0000',
      { '@odata.id': pick(PATHS) },
    ]);
  const mutatePath = (p: string) => {
    switch (int(9)) {
      case 0:
        return `${p}/${encodeURIComponent(String.fromCharCode(int(0x2fff)))}`;
      case 1:
        return `${p}?$expand=*&x=${int(100)}`;
      case 2:
        return p.replace(/\//g, '//');
      case 3:
        return `${p}/../../etc/passwd`;
      case 4:
        return `${p}/${'a'.repeat(int(3000))}`;
      case 5:
        return `${p}%00`;
      case 6:
        return p.toUpperCase();
      default:
        return p;
    }
  };
  const chunkBody = () => {
    const b: Record<string, unknown> = {
      MemoryChunkSizeMiB: pick([256, 2, 512, weird()]),
      AddressRangeOffsetMiB: pick([int(16) * 256, int(5000), weird()]),
    };
    if (r() < 0.2) b[pick(['Name', 'Bogus', '__proto__', 'constructor', 'AddressRangeType'])] = weird();
    if (r() < 0.1) delete b.MemoryChunkSizeMiB;
    return b;
  };
  const connBody = () => ({
    ConnectionType: pick(['Memory', 'Memory', 'Storage', weird()]),
    MemoryChunkInfo: Array.from({ length: int(3) }, () => ({
      MemoryChunk: { '@odata.id': pick([`${CHUNKS}/0M-256M`, `${CHUNKS}/${int(8) * 256}M-256M`, weird()]) },
    })),
    Links: {
      InitiatorEndpoints: Array.from({ length: int(4) }, () => ({
        '@odata.id': `/redfish/v1/Fabrics/CXL/Endpoints/head${pick([0, 1, 2, 3, 99, -1, 'x'])}`,
      })),
    },
    ...(r() < 0.1 ? { Extra: weird() } : {}),
  });
  const body = (): string | undefined => {
    switch (int(10)) {
      case 0:
        return undefined;
      case 1:
        return '';
      case 2:
        return JSON.stringify(chunkBody()).slice(0, int(40));
      case 3:
        return Buffer.from(Array.from({ length: int(200) }, () => int(256))).toString('latin1');
      case 4:
        return `${'['.repeat(int(2000))}${']'.repeat(int(2000))}`;
      case 5:
      case 6:
        return JSON.stringify(connBody());
      default:
        return JSON.stringify(r() < 0.5 ? chunkBody() : { UserName: pick(['admin', 'x', weird()]), Password: pick(['secret', weird()]) });
    }
  };
  const out = [];
  for (let i = 0; i < n; i++) {
    const method = pick(METHODS);
    const url = mutatePath(pick(PATHS));
    const headers: Record<string, string> = {};
    const a = int(10);
    if (a < 6) headers.authorization = BASIC;
    else if (a === 6) headers.authorization = `Basic ${Buffer.from(`admin:${int(1e6)}`).toString('base64')}`;
    else if (a === 7) headers.authorization = `Basic ${'%'.repeat(int(20))}`;
    else if (a === 8) headers['x-auth-token'] = String(int(1e9));
    const b = method === 'GET' || method === 'HEAD' ? undefined : body();
    if (b !== undefined || r() < 0.3)
      headers['content-type'] = pick([
        'application/json',
        'application/json',
        'application/json; charset=utf-8',
        'text/plain',
        'application/x-www-form-urlencoded',
        'x/y',
      ]);
    out.push({ method, url, headers, payload: b });
  }
  return out;
}

describe('request fuzz', () => {
  it(`${CASES} random requests: documented statuses only, Redfish error bodies, never a 500`, async () => {
    const { nb, fake } = await fakeNorthbound();
    const heldExtents = () =>
      [...fake.extents.entries()]
        .flatMap(([h, list]) => list.map((e) => `${h}:${e.startDpa}:${e.len}`))
        .sort()
        .join(',');
    const seen = new Map<number, number>();
    for (const req of fuzzRequests(0xc71, CASES)) {
      if (req.url.split('?')[0]?.endsWith('/SSE')) continue;
      const before = heldExtents();
      const res = await nb.app.inject(req);
      seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
      expect(
        OK_STATUS.has(res.statusCode),
        `${req.method} ${req.url.slice(0, 200)} ${req.payload?.slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`,
      ).toBe(true);
      if (res.statusCode >= 400 && req.method !== 'HEAD') {
        const e = JSON.parse(res.body).error;
        expect(e['@Message.ExtendedInfo'].length, res.body).toBeGreaterThan(0);
        expect(typeof e.message).toBe('string');
      }
      const moved = (res.statusCode === 201 || res.statusCode === 204) && req.url.startsWith('/redfish/v1/Fabrics/CXL/Connections');
      // Only a successful connection POST or DELETE moves capacity; a refused request leaves none behind.
      if (!moved) expect(heldExtents(), `${req.method} ${req.url} → ${res.statusCode}`).toBe(before);
    }
    // After all that, capacity still moves.
    const ok = await nb.app.inject({
      method: 'POST',
      url: '/redfish/v1/Fabrics/CXL/Connections',
      headers: { authorization: BASIC },
      payload: {
        ConnectionType: 'Memory',
        MemoryChunkInfo: [{ MemoryChunk: { '@odata.id': `${CHUNKS}/0M-256M` } }],
        Links: { InitiatorEndpoints: [{ '@odata.id': '/redfish/v1/Fabrics/CXL/Endpoints/head2' }] },
      },
    });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(seen.get(400)).toBeGreaterThan(1000);
    expect(seen.get(401)).toBeGreaterThan(1000);
    expect(seen.get(200)).toBeGreaterThan(1000);
    expect((await nb.app.inject({ url: '/redfish/v1/Fabrics/CXL', headers: { authorization: BASIC } })).statusCode).toBe(200);
  });
});
