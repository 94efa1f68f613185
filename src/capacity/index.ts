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
export { CapacityManager, type CapacityOptions, type Grant, type GrantView, grantsFromJournal, unfinishedAdds } from './manager.js';
