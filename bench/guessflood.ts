// Password guessing against the northbound must not slow the FM-API for
// everyone (issue 18): FM-API Identify over fm.sock, p99, while clients
// flood Redfish with wrong Basic passwords of an scrypt user and unknown
// user names, next to the same Identify with nobody guessing (goal ≤ 1.5×).
// Also the cost of one wrong guess for an unknown user next to one for a
// real user (goal: equal; user names are not told apart by timing).
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { FmClient, openPort } from '../src/fmapi/index.js';
import { Backend } from '../src/heads/index.js';
import { Auth, loadUsers } from '../src/http/auth.js';
import { hashPassword, Northbound } from '../src/http/index.js';
import { headArgs } from '../src/qemu/index.js';
import { Leftovers } from './cleanup.js';
import { pct, type Report, startHeadQemu } from './common.js';
import { backendView } from './northbound.js';

const GiB = 2 ** 30;

async function identifies(client: FmClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.identify();
    out.push(performance.now() - t0);
  }
  return out;
}

export async function benchGuessFlood(report: Report): Promise<void> {
  const left = new Leftovers();
  const { base, runDir, stateDir, pool } = left.workspace('guess');
  const usersFile = join(base, 'users');
  let flooding = true;
  try {
    writeFileSync(usersFile, `bench:${hashPassword('the right one')}\n`, { mode: 0o600 });
    const backend = await Backend.start({
      pool,
      runDir,
      stateDir,
      capacityBytes: GiB,
      headCount: 1,
      logger: pino({ level: 'silent' }),
      fmSocket: true,
    });
    left.stop(() => backend.stop());
    const nb = new Northbound({ deps: backendView(backend), users: usersFile, stateFile: null });
    left.stop(() => nb.close());
    const mon = join(base, 'mon0.sock');
    const args = headArgs({ pool, head: 0, runDir, capacityBytes: GiB, delivery: 'dcd', sparePorts: 0, memory: '128M' });
    await startHeadQemu(mon, args, left);
    const url = await nb.listen('127.0.0.1', 0);
    const client = new FmClient(await openPort(join(runDir, pool, 'fm.sock')), { timeoutMs: 30_000 });
    await identifies(client, 50);
    const idle = await identifies(client, 1000);

    let guesses = 0;
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const guess = (i: number) =>
      new Promise<void>((resolve) => {
        const user = i % 2 ? 'bench' : `nobody${i}`;
        const auth = `Basic ${Buffer.from(`${user}:guess${i}`).toString('base64')}`;
        const req = request(`${url}/redfish/v1/Chassis`, { agent, headers: { authorization: auth } }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', () => resolve());
        req.end();
      });
    const floods = [...Array(8).keys()].map(async (k) => {
      for (let i = k; flooding; i += 8) {
        await guess(i);
        guesses++;
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const before = guesses;
    const t0 = performance.now();
    const busy = await identifies(client, 1000);
    const rate = ((guesses - before) * 1000) / (performance.now() - t0);
    flooding = false;
    await Promise.all(floods);
    agent.destroy();
    client.close();
    report(
      `FM Identify p99 under ${Math.round(rate)} guesses/s (goal ≤ 1.5×)`,
      pct(busy, 99),
      'ms',
      'FM Identify p99, nobody guessing',
      pct(idle, 99),
      false,
    );
    report('FM Identify p50 under the guess flood', pct(busy, 50), 'ms', 'FM Identify p50, nobody guessing', pct(idle, 50), false);

    // One check at a time, well inside the rate limit: an unknown name against a real one.
    const auth = new Auth(loadUsers(usersFile), { maxHashChecksPerSecond: 1000 });
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 20; i++) {
      let t = performance.now();
      await auth.check(`nobody${i}`, 'x');
      unknown.push(performance.now() - t);
      t = performance.now();
      await auth.check('bench', `x${i}`);
      wrong.push(performance.now() - t);
    }
    auth.close();
    report('wrong guess, unknown user name, p50', pct(unknown, 50), 'ms', 'wrong guess, real user name, p50', pct(wrong, 50), false);
  } finally {
    flooding = false;
    await left.clean();
  }
}
