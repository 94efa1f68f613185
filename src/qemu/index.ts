// Public surface of qemu: the QEMU a head runs (binary, arguments, CXL layout) and every id it is given.
export { type HeadArgsOptions, headArgs, headLayout, monitorArgs, parseStaticWindow, physBitsFor, type StaticWindow } from './args.js';
export { cacheDir, type QemuBinary, qemuArgv, resolveQemu } from './binary.js';
export { parseQemuVersion, type QemuFeatures, qemuFeatures, systemRamRefusal } from './features.js';
export { type LayoutBridge, MAX_SPARE_PORTS, rootDecoderFor } from './layout.js';
export * from './names.js';
export {
  type MtreeRegion,
  type PoolBackend,
  parseMtree,
  poolBackends,
  type QmpLike,
  type ReachOptions,
  reachability,
  rememberBackend,
} from './reach.js';
