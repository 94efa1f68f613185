// One head's worth of random claims and releases against a shared pool,
// for the multi-process stress test. Prints a JSON summary of what it
// believes it holds, so the parent can compare with shared memory.
import { Pool, PoolError } from '../../dist/src/pool/index.js';

const [name, stateDir, headText, opsText, seedText] = process.argv.slice(2);
const head = Number(headText);
const ops = Number(opsText);
let seed = Number(seedText) >>> 0;
const rand = (n) => {
  // xorshift32: deterministic per worker, different across workers
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
};

const pool = Pool.open({ name, stateDir });
const blocks = pool.state.blockCount;
const held = []; // ranges this head claimed and has not released
const stats = { claims: 0, conflicts: 0, releases: 0, sharedClaims: 0 };
for (let i = 0; i < ops; i++) {
  if (held.length > 0 && rand(100) < 45) {
    const [r] = held.splice(rand(held.length), 1);
    pool.release(head, r);
    stats.releases++;
    continue;
  }
  const count = 1 + rand(8);
  const r = { first: rand(blocks - count + 1), count };
  const shared = rand(4) === 0;
  try {
    pool.claim(head, r, { shared });
    held.push(r);
    stats.claims++;
    if (shared) stats.sharedClaims++;
  } catch (e) {
    if (!(e instanceof PoolError) || e.code !== 'CONFLICT') throw e;
    stats.conflicts++;
  }
}
const heldBlocks = held.reduce((n, r) => n + r.count, 0);
pool.close();
process.stdout.write(`${JSON.stringify({ head, heldBlocks, ...stats })}\n`);
