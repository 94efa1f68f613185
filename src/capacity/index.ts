// Public surface of capacity: grants (FM-API backend), tagged allocations and their delivery to QEMU.
export { type AllocationView, allocationsOf } from './allocation-view.js';
export { type AddReleaser, addToHosts } from './allocations.js';
export {
  DcdDelivery,
  type Delivered,
  type Delivery,
  type DeliveryConfig,
  type DeliveryKind,
  deliveryFor,
  HotplugDelivery,
  type LabelledPiece,
  type Piece,
} from './delivery.js';
export { LSA_BYTES, lsaImage, type RegionLabel, readRegionLabel } from './lsa.js';
export {
  type CapacityEvent,
  CapacityManager,
  type CapacityOptions,
  type Grant,
  type GrantView,
  VIA,
} from './manager.js';
