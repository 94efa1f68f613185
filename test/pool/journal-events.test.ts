// Journals written before the typed journal events (the same JSON lines)
// still replay, and recovery reads their notes by name.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { grantsFromJournal, unfinishedAdds } from '../../src/heads/index.js';
import { readJournal, replayJournal } from '../../src/pool/index.js';
import { tempDir } from '../helpers/pool.js';

// Lines as an earlier backend wrote them (2 MiB blocks, 1 GiB, 2 heads).
const OLD = [
  '{"seq":1,"time":"2026-11-01T00:00:00.000Z","op":"pool-create","args":{"capacityBytes":1073741824,"blockBytes":2097152,"headCount":2,"createdMs":1,"mode":384},"result":{"ok":true}}',
  '{"seq":2,"time":"2026-11-01T00:00:01.000Z","op":"head-register","args":{"head":1,"pid":4242},"result":{"ok":true}}',
  '{"seq":3,"time":"2026-11-01T00:00:02.000Z","op":"lease-acquire","args":{"head":1},"result":{"ok":true,"acquired":true,"owner":1}}',
  '{"seq":4,"time":"2026-11-01T00:00:03.000Z","op":"note","args":{"event":"fm-add-begin","head":1,"pieces":[{"offset":0,"len":268435456}],"shared":false,"tag":"00000000-0000-0000-0000-000000000000","delivery":"dcd"},"result":{"ok":true}}',
  '{"seq":5,"time":"2026-11-01T00:00:04.000Z","op":"claim","args":{"kind":"dynamic","tag":"00000000-0000-0000-0000-000000000000","delivery":"dcd","tx":4,"head":1,"first":0,"count":128,"shared":false},"result":{"ok":true}}',
  '{"seq":6,"time":"2026-11-01T00:00:05.000Z","op":"note","args":{"event":"fm-add-end","tx":4,"ok":true,"devices":[null]},"result":{"ok":true}}',
  '{"seq":7,"time":"2026-11-01T00:00:06.000Z","op":"note","args":{"event":"fm-add-begin","head":1,"pieces":[{"offset":536870912,"len":268435456}],"shared":true,"tag":"6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b","delivery":"dcd"},"result":{"ok":true}}',
  '{"seq":8,"time":"2026-11-01T00:00:07.000Z","op":"claim","args":{"kind":"dynamic","tag":"6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b","delivery":"dcd","tx":7,"head":1,"first":256,"count":128,"shared":true},"result":{"ok":true}}',
  '{"seq":9,"time":"2026-11-01T00:00:08.000Z","op":"note","args":{"event":"attach-refused","head":0,"pid":99,"reason":"no"},"result":{"ok":true}}',
];

describe('journal events', () => {
  it('an earlier journal replays: state, grants and the add that never answered', () => {
    const path = join(tempDir(), 'journal.jsonl');
    writeFileSync(path, `${OLD.join('\n')}\n`);
    const entries = readJournal(path);
    const { state, lastSeq } = replayJournal(entries);
    expect(lastSeq).toBe(9);
    expect(state.isAttached(1)).toBe(true);
    expect(state.lease().owner).toBe(1);
    expect(state.blocksOf(1)).toHaveLength(256);
    const more = { delivery: 'dcd', device: null, releasing: false };
    expect(grantsFromJournal(entries, 1)).toEqual([
      { offset: 0, len: 256 * 2 ** 20, tag: '00000000-0000-0000-0000-000000000000', shared: false, ...more },
      { offset: 512 * 2 ** 20, len: 256 * 2 ** 20, tag: '6f1d0e4a-2b6c-4d1e-9a0b-3c5d7e9f1a2b', shared: true, ...more },
    ]);
    expect(unfinishedAdds(entries)).toEqual([{ tx: 7, head: 1, ranges: [{ first: 256, count: 128 }] }]);
  });
});
