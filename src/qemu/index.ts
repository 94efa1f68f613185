// Public surface of qemu: the QEMU a head runs (binary, arguments) and every id it is given.
export { fixedWindowBytes, type HeadArgsOptions, headArgs, parseStaticWindow, type StaticWindow } from './args.js';
export { cacheDir, type QemuBinary, qemuArgv, resolveQemu } from './binary.js';
export * from './names.js';
