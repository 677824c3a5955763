/**
 * The newest-revision index of a data file: for each oid, the file offset of its newest
 * record and that record's tid. Oids are dense, so two typed arrays indexed by oid hold it
 * (16 bytes an object, no per-object allocation); the tid lets a commit check conflicts
 * without reading the file.
 *
 * @module
 */

import { StorageIOError } from '../../errors.js';

const INITIAL_CAPACITY = 1024;

export class OidIndex {
  #offsets: Float64Array;
  #tids: Float64Array;
  /** One past the largest oid ever set. */
  #length = 0;
  #count = 0;

  constructor(capacity = INITIAL_CAPACITY) {
    this.#offsets = new Float64Array(capacity);
    this.#tids = new Float64Array(capacity);
  }

  /** Objects with a record. */
  get count(): number {
    return this.#count;
  }

  /** One past the largest oid with a record (or ever had one). */
  get length(): number {
    return this.#length;
  }

  /** Bytes the index occupies. */
  get byteSize(): number {
    return this.#offsets.byteLength + this.#tids.byteLength;
  }

  /** Offset of the newest record of `oid`, or 0 if it has none. */
  offset(oid: number): number {
    return oid < this.#length ? this.#offsets[oid]! : 0;
  }

  /** Tid of the newest record of `oid`, or 0 if it has none. */
  tid(oid: number): number {
    return oid < this.#length ? this.#tids[oid]! : 0;
  }

  set(oid: number, offset: number, tid: number): void {
    if (oid >= this.#offsets.length) this.#grow(oid + 1);
    if (oid >= this.#length) this.#length = oid + 1;
    if (this.#offsets[oid] === 0) this.#count++;
    this.#offsets[oid] = offset;
    this.#tids[oid] = tid;
  }

  /** Every oid with a record, ascending. */
  *oids(): IterableIterator<number> {
    const offsets = this.#offsets;
    for (let oid = 0; oid < this.#length; oid++) if (offsets[oid] !== 0) yield oid;
  }

  /** The raw arrays up to `length`, for saving. */
  arrays(): { offsets: Float64Array; tids: Float64Array } {
    return {
      offsets: this.#offsets.subarray(0, this.#length),
      tids: this.#tids.subarray(0, this.#length),
    };
  }

  /** An index over saved arrays (adopted, not copied). */
  static fromArrays(offsets: Float64Array, tids: Float64Array): OidIndex {
    const index = new OidIndex(0);
    index.#offsets = offsets;
    index.#tids = tids;
    index.#length = offsets.length;
    let count = 0;
    for (let i = 0; i < offsets.length; i++) if (offsets[i] !== 0) count++;
    index.#count = count;
    return index;
  }

  #grow(minimum: number): void {
    let capacity = Math.max(INITIAL_CAPACITY, this.#offsets.length * 2);
    while (capacity < minimum) capacity *= 2;
    let offsets: Float64Array;
    let tids: Float64Array;
    try {
      offsets = new Float64Array(capacity);
      tids = new Float64Array(capacity);
    } catch (error) {
      // An oid near the top of the range (in a file of billions of objects, or a file made
      // by hand) asks for tens of GiB: the engine's refusal is a RangeError without a code.
      throw new StorageIOError(
        `the index of oid ${minimum - 1} needs ${Math.ceil((capacity * 16) / 2 ** 30)} GiB of memory, more than the system gives`,
        { cause: error },
      );
    }
    offsets.set(this.#offsets);
    tids.set(this.#tids);
    this.#offsets = offsets;
    this.#tids = tids;
  }
}
