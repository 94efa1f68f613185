// The light surface of capacity: what may be imported without loading the
// manager, the deliveries and the FM-API (docs/design.md §2). `status` reads it.
export { type AllocationView, allocationsOf } from './allocation-view.js';
