// Auth against its users file: a password check in flight while the file is
// re-read (as the watcher does within a second of any rewrite, e.g. an
// account just created over Redfish) is judged by what the file holds, not
// by which object held it, so an unchanged user is not refused by the race.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Auth, hashPassword, readUsersFile } from '../../src/http/auth.js';
import { tempDir } from '../helpers/pool.js';

describe('Auth', () => {
  it('a check in flight across a reload of the same users file succeeds; across a changed password it fails', async () => {
    const file = join(tempDir('cxl-mhd-auth-'), 'users');
    writeFileSync(file, `ops:${hashPassword('first password', 1024)}:Operator\n`, { mode: 0o600 });
    const auth = new Auth(readUsersFile(file).users);
    try {
      const pending = auth.check('ops', 'first password');
      auth.setUsers(readUsersFile(file).users); // the same file again: new Secret objects, same content
      expect(await pending).toBe(true);
      const again = auth.check('ops', 'other password');
      expect(await again).toBe(false);
      // A password changed while a check runs: the check fails, even with the old password.
      const stale = new Auth(readUsersFile(file).users);
      try {
        const inFlight = stale.check('ops', 'first password');
        writeFileSync(file, `ops:${hashPassword('second password', 1024)}:Operator\n`, { mode: 0o600 });
        stale.setUsers(readUsersFile(file).users);
        expect(await inFlight).toBe(false);
      } finally {
        stale.close();
      }
    } finally {
      auth.close();
    }
  });
});
