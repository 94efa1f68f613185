// A thin adapter from today's Backend to the northbound's contract
// (NorthboundDeps): snapshots from the pool status and head records, and
// events derived by comparing each head record the backend reports (its
// onChange hook) with the previous one, plus the lease. It goes once the
// backend publishes the contract's events itself.
import { join } from 'node:path';
import type { Backend, HeadRecord } from '../heads/index.js';
import type { BackendEvent, NorthboundDeps, StampedEvent } from '../http/index.js';
import { poolRunDir, poolStatus } from '../pool/index.js';
import { headSerial } from '../qemu/args.js';

const grantKey = (g: { offset: number; len: number }) => `${g.offset}:${g.len}`;

export function backendDeps(backend: Backend, runDir: string): NorthboundDeps {
  const pool = backend.opts.pool;
  const listeners = new Set<(e: StampedEvent) => void>();
  const last = new Map<number, HeadRecord>();
  for (let h = 0; h < backend.headCount; h++) {
    const r = backend.headRecord(h);
    if (r) last.set(h, r);
  }
  let lease = backend.pool.state.lease();
  let seq = 0;
  const emit = (e: BackendEvent) => {
    const stamped = { ...e, seq: ++seq, at: new Date().toISOString() } as StampedEvent;
    for (const l of listeners) l(stamped);
  };

  const previous = backend.onChange;
  backend.onChange = (head, rec) => {
    previous(head, rec);
    const before = last.get(head);
    last.set(head, rec);
    const nowLease = backend.pool.state.lease();
    if (lease.owner !== null && (nowLease.owner !== lease.owner || nowLease.epoch !== lease.epoch)) {
      emit({ kind: 'lease-released', head: lease.owner, epoch: lease.epoch });
    }
    if (before?.phase !== rec.phase) {
      if (rec.phase === 'attached') {
        emit({
          kind: 'head-attached',
          head,
          pid: rec.pid ?? 0,
          fmld: rec.fmld,
          delivery: (rec.delivery as 'hotplug' | 'dcd' | null) ?? null,
        });
      } else if (rec.phase === 'detached' && before?.phase === 'attached') {
        emit({ kind: 'head-detached', head, pid: rec.pid, reason: rec.reason ?? 'detached' });
      } else if (rec.phase === 'refused') {
        emit({ kind: 'head-refused', head, pid: rec.pid, reason: rec.reason ?? 'refused' });
      }
    }
    if (nowLease.owner !== null && (nowLease.owner !== lease.owner || nowLease.epoch !== lease.epoch)) {
      emit({ kind: 'lease-acquired', head: nowLease.owner, epoch: nowLease.epoch });
    }
    lease = nowLease;
    const had = new Map((before?.grants ?? []).map((g) => [grantKey(g), g]));
    const has = new Map(rec.grants.map((g) => [grantKey(g), g]));
    const tag = (t: string) => (/^0{8}-/.test(t) ? null : t);
    for (const [k, g] of has) {
      if (!had.has(k))
        emit({ kind: 'capacity-added', head, offset: g.offset, len: g.len, shared: g.shared, tag: tag(g.tag), via: 'fm-api' });
    }
    for (const [k, g] of had) {
      if (!has.has(k)) emit({ kind: 'capacity-released', head, offset: g.offset, len: g.len, tag: tag(g.tag), via: 'fm-api' });
    }
  };

  return {
    pool,
    serial: `0x${headSerial(pool, 0xffff).toString(16)}`,
    fmSocketPath: join(poolRunDir(runDir, pool), 'fm.sock'),
    snapshot: () => {
      const heads: HeadRecord[] = [];
      for (let h = 0; h < backend.headCount; h++) {
        const r = backend.headRecord(h);
        if (r) heads.push(r);
      }
      return { status: poolStatus(backend.pool), heads };
    },
    subscribe: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}
