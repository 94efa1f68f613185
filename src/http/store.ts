// The northbound's own state: memory chunks defined over Redfish and the
// connections it made, kept in one 0600 JSON file in the state dir so they
// survive a backend restart. Capacity itself lives in the pool; this file
// only names ranges and remembers which POST made which grants.
import { JsonFile } from './jsonfile.js';

export interface ChunkDef {
  offset: number;
  size: number;
  /** One tag per chunk: every head it is connected to gets its extents under this tag. */
  tag: string;
  created: string;
}

export interface ConnectionDef {
  id: string;
  chunks: string[];
  heads: number[];
  shared: boolean;
  created: string;
}

interface StoreBody {
  version: 1;
  nextConnection: number;
  chunks: Record<string, ChunkDef>;
  connections: Record<string, ConnectionDef>;
}

const MiB = 2 ** 20;

/** Chunk ids name their range in MiB, so a grant made elsewhere over the same range is the same chunk. */
export function chunkId(offset: number, size: number): string {
  return `${offset / MiB}M-${size / MiB}M`;
}

/**
 * A MemoryRegion of a head's LD stands for one grant: a tagged allocation is
 * one region (`tag-<uuid>`), whatever its extents; an untagged grant or a
 * static window is named by its range like its chunk.
 */
export function regionId(tag: string | null, offset: number, size: number, kind: 'window' | 'grant' = 'grant'): string {
  return tag ? `tag-${tag}` : `${kind}-${chunkId(offset, size)}`;
}

export class Store {
  private body: StoreBody = { version: 1, nextConnection: 1, chunks: {}, connections: {} };
  private readonly file: JsonFile<StoreBody>;

  constructor(path: string | null) {
    this.file = new JsonFile(path, 'northbound state');
    const b = this.file.read();
    if (b?.version === 1 && b.chunks && b.connections) this.body = b;
  }

  get chunks(): [string, ChunkDef][] {
    return Object.entries(this.body.chunks);
  }

  chunk(id: string): ChunkDef | undefined {
    return Object.hasOwn(this.body.chunks, id) ? this.body.chunks[id] : undefined;
  }

  get connections(): ConnectionDef[] {
    return Object.values(this.body.connections);
  }

  connection(id: string): ConnectionDef | undefined {
    return Object.hasOwn(this.body.connections, id) ? this.body.connections[id] : undefined;
  }

  addChunk(offset: number, size: number, tag: string): string {
    const id = chunkId(offset, size);
    this.body.chunks[id] = { offset, size, tag, created: new Date().toISOString() };
    this.save();
    return id;
  }

  removeChunk(id: string): void {
    delete this.body.chunks[id];
    this.save();
  }

  addConnection(c: Omit<ConnectionDef, 'id' | 'created'>): ConnectionDef {
    const def = { id: `c${this.body.nextConnection++}`, created: new Date().toISOString(), ...c };
    this.body.connections[def.id] = def;
    this.save();
    return def;
  }

  removeConnection(id: string): void {
    if (!this.connection(id)) return;
    delete this.body.connections[id];
    this.save();
  }

  /** The last failure to write the file, if any (the service keeps running from memory). */
  get lastError(): Error | null {
    return this.file.lastError;
  }

  /**
   * Writes happen off the request path, coalesced: a connection's 201 does not
   * wait for the disk. A crash in between loses only names (the grants stay in
   * the pool and show up as `grant-…` connections).
   */
  private save(): void {
    this.onChange();
    this.file.save(() => this.body);
  }

  /** Called on every change (the context's cached model goes stale). */
  onChange: () => void = () => {};

  /** Resolves once everything changed so far is on disk. */
  flush(): Promise<void> {
    return this.file.flush();
  }
}
