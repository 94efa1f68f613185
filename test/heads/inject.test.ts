// Per-head event injection (src/heads/inject.ts): the QMP arguments each
// record gets, what is refused before QEMU is asked, and the refusal on a
// QEMU whose records cannot name the head; through a fake QEMU.
import { afterEach, describe, expect, it } from 'vitest';
import { injectArgs } from '../../src/heads/index.js';
import { injectEvent } from '../../src/heads/inject.js';
import { QmpSession } from '../../src/qmp/index.js';
import { FakeQemu, ok } from '../helpers/fake-qemu.js';

const PATH = '/machine/peripheral/cxl-mhd-mem0';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function fake(version: { major: number; minor: number; micro: number }) {
  const { fake, socket } = FakeQemu.pair({ version });
  const qmp = await QmpSession.open(socket, { commandTimeoutMs: 2000 });
  cleanups.push(() => {
    qmp.close();
    fake.close();
  });
  return { fake, qmp };
}

describe('event records', () => {
  it('a General Media record: head-id from the head, the given fields, the rest at their defaults, sub-type always', () => {
    expect(injectArgs({ kind: 'media', log: 'warning', fields: { dpa: 0x1000, type: 1, 'ld-id': 0 } }, 2, PATH)).toEqual({
      command: 'cxl-inject-general-media-event',
      args: {
        path: PATH,
        log: 'warning',
        'head-id': 2,
        flags: 0,
        'sub-type': 0,
        'ld-id': 0,
        dpa: 0x1000,
        descriptor: 0,
        type: 1,
        'transaction-type': 0,
      },
    });
  });

  it('DRAM and Memory Module records use their own commands and fields', () => {
    const dram = injectArgs({ kind: 'dram', log: 'failure', fields: { dpa: 0, row: 7, 'component-id': 'dimm0' } }, 0, PATH);
    expect(dram.command).toBe('cxl-inject-dram-event');
    expect(dram.args).toMatchObject({ row: 7, 'component-id': 'dimm0', 'sub-type': 0 });
    const module = injectArgs({ kind: 'module', log: 'fatal', fields: { temperature: 85 } }, 1, PATH);
    expect(module.command).toBe('cxl-inject-memory-module-event');
    expect(module.args).toMatchObject({ 'head-id': 1, temperature: 85, 'health-status': 0, 'life-used': 0 });
    expect(module.args).not.toHaveProperty('dpa');
  });

  it('refuses a field the record lacks, a missing DPA, text for a number and an unknown log', () => {
    expect(() => injectArgs({ kind: 'module', log: 'fatal', fields: { dpa: 1 } }, 0, PATH)).toThrow(/module event record has no field dpa/);
    expect(() => injectArgs({ kind: 'media', log: 'fatal', fields: {} }, 0, PATH)).toThrow(/needs --dpa/);
    expect(() => injectArgs({ kind: 'media', log: 'fatal', fields: { dpa: 'x' } }, 0, PATH)).toThrow(/--dpa must be a number/);
    expect(() => injectArgs({ kind: 'media', log: 'loud' as 'fatal', fields: { dpa: 0 } }, 0, PATH)).toThrow(/unknown log "loud"/);
  });
});

describe('injecting through QMP', () => {
  it('QEMU 11.1: one cxl-inject command with the head id', async () => {
    const { fake: f, qmp } = await fake({ major: 11, minor: 1, micro: 3 });
    f.handle('cxl-inject-general-media-event', () => ok());
    expect(await injectEvent(qmp, 1, PATH, { kind: 'media', log: 'informational', fields: { dpa: 0 } })).toMatch(
      /head 1: media event record/,
    );
    expect(f.received.at(-1)).toMatchObject({ execute: 'cxl-inject-general-media-event', arguments: { 'head-id': 1, dpa: 0 } });
  });

  it('QEMU 10.0: refused without asking QEMU, saying what is missing', async () => {
    const { fake: f, qmp } = await fake({ major: 10, minor: 0, micro: 13 });
    await expect(injectEvent(qmp, 1, PATH, { kind: 'media', log: 'informational', fields: { dpa: 0 } })).rejects.toThrow(
      /QEMU 10\.0\.13, whose cxl-inject-\*-event has no head-id or ld-id .*needs QEMU >= 11\.1/,
    );
    expect(f.received.map((c) => c.execute)).toEqual(['qmp_capabilities']);
  });
});
