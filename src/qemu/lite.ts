// The light surface of qemu: every id the product builds or parses (names.ts
// imports no other part), without the argument builder, the binary resolver
// or QMP (docs/design.md §2). The guest's FM client finds its port by one.
export * from './names.js';
