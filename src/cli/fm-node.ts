// The fm commands' channel in Node: the FM-LD port found through sysfs and
// opened as a Duplex (fmapi/port.ts). The guest client has its own (fm-guest.ts).
import { existsSync } from 'node:fs';
import { findFmldPort, openPort } from '../fmapi/index.js';
import type { FmIo } from './fm.js';

export const nodeFmIo: FmIo = { findPort: () => findFmldPort(), exists: existsSync, open: openPort };
