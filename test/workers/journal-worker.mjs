// The pool's writer for the journal crash tests: takes the writer lock,
// recovers, then claims and releases blocks of head 0 as fast as it can,
// yielding between operations so compaction runs as in the backend. After
// each operation returns (journaled, fsynced) it prints one line, so the
// parent knows exactly what was acknowledged when it kills us (or when a
// CXL_MHD_FAULT point kills us inside compaction).
import { writeSync } from 'node:fs';
import { Pool } from '../../dist/src/pool/index.js';

const [name, stateDir, opsText, seedText] = process.argv.slice(2);
let seed = Number(seedText) >>> 0;
const rand = (n) => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
};

const pool = Pool.open({ name, stateDir });
pool.lockWriter();
pool.recoverFromJournal();
if (!pool.state.isAttached(0)) pool.registerHead(0, process.pid);
const say = (line) => writeSync(1, `${line}\n`);
say('ready');
const blocks = pool.state.blockCount;
const held = new Set(pool.state.blocksOf(0));
for (let i = 0; i < Number(opsText); i++) {
  if (held.size > 0 && rand(2) === 0) {
    const b = [...held][rand(held.size)];
    say(`? - ${b}`);
    pool.release(0, { first: b, count: 1 }, { kind: 'dynamic', tag: 'x' });
    held.delete(b);
    say(`- ${b}`);
  } else {
    let b = rand(blocks);
    while (held.has(b)) b = (b + 1) % blocks;
    say(`? + ${b}`);
    pool.claim(0, { first: b, count: 1 }, { shared: rand(3) === 0 }, { kind: 'dynamic', tag: 'x', delivery: 'dcd' });
    held.add(b);
    say(`+ ${b}`);
  }
  await new Promise((r) => setImmediate(r));
}
say(`done ${pool.compactions}`);
pool.close();
