// The guest FM client: `cxl-mhd fm` without Node. The same commands, codecs
// and output as the Node CLI (../fm.ts, ../fm-tags.ts, ../program.ts), run by
// QuickJS inside one static binary (guest/fm-main.c, built by
// scripts/build-fm-client.mjs). `cxl-mhd-fm identify` is `cxl-mhd fm identify`;
// a leading `fm` is accepted too.
import './process.js';
import * as std from 'qjs:std';
import { addFmCommands } from '../fm.js';
import { addTagCommands } from '../fm-tags.js';
import { newProgram, runProgram } from '../program.js';
import { quickjsFmIo } from './channel.js';

declare const scriptArgs: string[];

const args = scriptArgs.slice(1);
if (args[0] !== 'fm') args.unshift('fm');
const program = newProgram();
addFmCommands(program, quickjsFmIo, addTagCommands);
runProgram(program, args).then(
  (code) => std.exit(code),
  (e) => {
    console.error(`cxl-mhd: internal error: ${String(e)}`);
    std.exit(1);
  },
);
