// Public surface of capacity: grants (FM-API backend) and their delivery to QEMU.
export {
  DcdDelivery,
  type Delivered,
  type Delivery,
  type DeliveryConfig,
  type DeliveryKind,
  deliveryFor,
  HotplugDelivery,
  type Piece,
} from './delivery.js';
export {
  type CapacityEvent,
  CapacityManager,
  type CapacityOptions,
  type Grant,
  type GrantView,
  VIA,
} from './manager.js';
