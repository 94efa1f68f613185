// The FM-API's informational answers that follow from the pool alone
// (Identify, Get MHD Info, Get Head Info, Get DCD Info); CapacityManager
// serves them.
import {
  type DcdInfoResponse,
  FmError,
  type HeadInfoRequest,
  type HeadInfoResponse,
  type IdentifyInfo,
  type MhdInfoRequest,
  type MhdInfoResponse,
  RemovalPolicy,
  ReturnCode,
  SelectionPolicy,
} from '../fmapi/index.js';
import type { PoolState } from '../pool/index.js';

export function identifyInfo(serial: bigint): IdentifyInfo {
  // QEMU's cxl-type3 identity, so host tools recognise the device; the serial is the pool's.
  return { vendorId: 0x8086, deviceId: 0x0d93, subsystemVendorId: 0, subsystemId: 0, serialNumber: serial, componentType: 3 };
}

export function mhdInfo(state: PoolState, req: MhdInfoRequest): MhdInfoResponse {
  const n = state.headCount;
  if (req.startLd >= n) throw new FmError(ReturnCode.InvalidInput, `start LD ${req.startLd} is past the ${n} LDs`);
  // An MH-SLD: one LD per head, LD i behind head i.
  const ldMap = Array.from({ length: Math.min(req.ldMapListLimit, n - req.startLd) }, (_, i) => req.startLd + i);
  return { numLds: n, numHeads: n, startLd: req.startLd, ldMap };
}

export function headInfo(state: PoolState, req: HeadInfoRequest): HeadInfoResponse {
  const n = state.headCount;
  if (req.startHead >= n) throw new FmError(ReturnCode.InvalidInput, `start head ${req.startHead} is past the ${n} heads`);
  const heads = [];
  for (let h = req.startHead; h < Math.min(n, req.startHead + req.numHeads); h++) {
    const up = state.isAttached(h);
    // An emulated x8 link at 32 GT/s; "link up" means a QEMU is attached to the port.
    heads.push({
      port: h,
      maxLinkWidth: 8,
      negotiatedLinkWidth: up ? 8 : 0,
      supportedLinkSpeeds: 0b11111,
      maxLinkSpeed: 5,
      currentLinkSpeed: up ? 5 : 0,
      ltssmState: up ? 0x11 : 0,
      firstNegotiatedLane: 0,
      linkStateFlags: 0,
    });
  }
  return { heads };
}

export function dcdInfo(state: PoolState): DcdInfoResponse {
  const h = state.header;
  return {
    numHosts: h.headCount,
    addPolicyMask:
      (1 << SelectionPolicy.Free) |
      (1 << SelectionPolicy.Contiguous) |
      (1 << SelectionPolicy.Prescriptive) |
      (1 << SelectionPolicy.EnableSharedAccess),
    removalPolicyMask: (1 << RemovalPolicy.TagBased) | (1 << RemovalPolicy.Prescriptive),
    sanitizeMask: 0,
    totalCapacityBytes: h.capacityBytes,
    regionBlockSizeMasks: [1n << BigInt(Math.log2(h.blockBytes))],
  };
}
