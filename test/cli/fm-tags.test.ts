// `cxl-mhd fm set-region-config | add-reference | remove-reference | tags`:
// the built CLI against a real CapacityManager (real shm pool, stub
// delivery) served on a Unix socket, human and --json output, and the
// device's refusals as one-line errors.
import { describe, expect, it } from 'vitest';
import { SelectionPolicy } from '../../src/fmapi/index.js';
import { add, MiB } from '../helpers/capacity.js';
import { fmRig as rig } from '../helpers/fm-rig.js';

const TAG = '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b';

describe('cxl-mhd fm: the r3.2 DCD commands', () => {
  it('set-region-config sets, region-config shows it; Unsupported while extents are held', async () => {
    const { m, fm } = await rig();
    expect(await fm('set-region-config', '--block-size', '4M', '--sanitize-on-release')).toMatchObject({
      code: 0,
      stdout: 'region 0: block size 4M, sanitize on release on\n',
    });
    expect((await fm('region-config', '--host', '1')).stdout).toMatch(/^region 0: .* block 4M, sanitized on release$/m);
    await m.initiateAdd(add(1, [[0, 4 * MiB]]));
    const r = await fm('set-region-config', '--block-size', '2M');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unsupported/);
    const j = await fm('--json', 'set-region-config', '--block-size', '3M');
    expect(j.stderr).toMatch(/InvalidInput/);
  });

  it('add-reference, tags (human and --json, paged), remove-reference; unknown tags refused', async () => {
    const { m, fm } = await rig();
    expect((await fm('add-reference', '--tag', TAG)).stderr).toMatch(/InvalidInput/);
    for (const h of [0, 2])
      await m.initiateAdd(add(h, [[8 * MiB, 2 * MiB]], { tag: TAG, selectionPolicy: SelectionPolicy.EnableSharedAccess }));
    await m.initiateAdd(add(1, [[0, 2 * MiB]], { tag: '00000000-0000-4000-8000-000000000001' }));
    expect(await fm('add-reference', '--tag', TAG)).toMatchObject({ code: 0, stdout: `tag ${TAG}: reference added\n` });
    const human = await fm('tags');
    expect(human.stdout).toMatch(/^2 tag\(s\), generation \d+$/m);
    expect(human.stdout).toContain('  00000000-0000-4000-8000-000000000001: held by head(s) 1\n');
    expect(human.stdout).toContain(`  ${TAG}: held by head(s) 0,2, FM reference\n`);
    const json = JSON.parse((await fm('--json', 'tags', '--start', '1', '--count', '5')).stdout);
    expect(json).toMatchObject({ start: 1, total: 2, tags: [{ tag: TAG, flags: 1, references: [0, 2], pending: [] }] });
    expect(await fm('--json', 'remove-reference', '--tag', TAG)).toMatchObject({ code: 0, stdout: `{"ok":true,"tag":"${TAG}"}\n` });
    expect((await fm('remove-reference', '--tag', TAG)).stderr).toMatch(/InvalidInput/);
    expect((await fm('add-reference', '--tag', '00000000-0000-0000-0000-000000000000')).stderr).toMatch(/zero UUID/);
  });
});
