/**
 * The newest-revision index of a data file: for each oid, the file offset of its newest
 * record and that record's tid; the tid lets a commit check conflicts without reading the
 * file.
 *
 * Oids are handed out in order and never reused, so the objects alive at any time fill
 * runs of them, and the runs of those dropped since stay empty for good. The index is kept
 * in pages of PAGE_OIDS oids, made at the first record of one of theirs: 16 bytes an
 * object and no per-object allocation where oids are dense, and nothing for a run of oids
 * none of which has a record (objects a pack dropped, or oids reserved by handles and never
 * used). An array by oid held 16 bytes for every oid ever handed out, live or not.
 *
 * @module
 */

import { MAX_OID } from '../oid-limit.js';

/** Oids in a page: a power of two, so an oid's page and slot are a shift and a mask. */
export const PAGE_OIDS = 1024;
const PAGE_SHIFT = 10;
const SLOT_MASK = PAGE_OIDS - 1;

/**
 * A page: the offsets of its oids' newest records (slots 0 to PAGE_OIDS - 1), then their
 * tids. One array, not two: a lookup touches one object.
 */
export type IndexPage = Float64Array;

export class OidIndex {
  /** By page number; undefined for a page none of whose oids has a record. */
  readonly #pages: (IndexPage | undefined)[] = [];
  /** Pages made (not undefined in #pages). */
  #pageCount = 0;
  /** One past the largest oid with a record. */
  #length = 0;
  #count = 0;

  /** Objects with a record. */
  get count(): number {
    return this.#count;
  }

  /** One past the largest oid with a record. */
  get length(): number {
    return this.#length;
  }

  /** Pages made. */
  get pageCount(): number {
    return this.#pageCount;
  }

  /** Bytes the index occupies (its pages, and the table of them). */
  get byteSize(): number {
    return this.#pageCount * PAGE_OIDS * 16 + this.#pages.length * 8;
  }

  /** Offset of the newest record of `oid`, or 0 if it has none. */
  offset(oid: number): number {
    if (!(oid < this.#length)) return 0;
    return this.#pages[oid >>> PAGE_SHIFT]?.[oid & SLOT_MASK] ?? 0;
  }

  /** Tid of the newest record of `oid`, or 0 if it has none. */
  tid(oid: number): number {
    if (!(oid < this.#length)) return 0;
    return this.#pages[oid >>> PAGE_SHIFT]?.[PAGE_OIDS + (oid & SLOT_MASK)] ?? 0;
  }

  /** Records `offset` (never 0: the file header is there) and `tid` as the newest of `oid`. */
  set(oid: number, offset: number, tid: number): void {
    const page = this.#pages[oid >>> PAGE_SHIFT] ?? this.#makePage(oid >>> PAGE_SHIFT);
    const slot = oid & SLOT_MASK;
    if (page[slot] === 0) this.#count++;
    page[slot] = offset;
    page[PAGE_OIDS + slot] = tid;
    if (oid >= this.#length) this.#length = oid + 1;
  }

  /** Every oid with a record, ascending; a page made meanwhile is visited if it lies ahead. */
  *oids(): IterableIterator<number> {
    for (let number = 0; number < this.#pages.length; number++) {
      const page = this.#pages[number];
      if (page === undefined) continue;
      const first = number * PAGE_OIDS;
      for (let slot = 0; slot < PAGE_OIDS; slot++) if (page[slot] !== 0) yield first + slot;
    }
  }

  /** The pages that exist, ascending by page number, for saving. */
  *pages(): IterableIterator<{ readonly number: number; readonly page: IndexPage }> {
    for (let number = 0; number < this.#pages.length; number++) {
      const page = this.#pages[number];
      if (page !== undefined) yield { number, page };
    }
  }

  /**
   * An index over saved pages (adopted, not copied): page i is `data`'s i-th run of
   * 2 * PAGE_OIDS values, with page number `numbers[i]`; the numbers must ascend. Undefined
   * if a page has no record, or one for an oid past MAX_OID: pages an index never makes.
   */
  static fromPages(numbers: Uint32Array, data: Float64Array): OidIndex | undefined {
    const index = new OidIndex();
    for (let i = 0; i < numbers.length; i++) {
      const number = numbers[i]!;
      const page = data.subarray(i * 2 * PAGE_OIDS, (i + 1) * 2 * PAGE_OIDS);
      const countBefore = index.#count;
      for (let slot = 0; slot < PAGE_OIDS; slot++) {
        if (page[slot] === 0) continue;
        index.#count++;
        index.#length = number * PAGE_OIDS + slot + 1;
      }
      if (index.#count === countBefore || index.#length > MAX_OID + 1) return undefined;
      index.#place(number, page);
    }
    return index;
  }

  #makePage(number: number): IndexPage {
    const page = new Float64Array(2 * PAGE_OIDS);
    this.#place(number, page);
    return page;
  }

  #place(number: number, page: IndexPage): void {
    // Filled up to the page, not assigned past the end: an array with holes is slower to
    // read, and this one is read at every load and commit.
    while (this.#pages.length < number) this.#pages.push(undefined);
    this.#pages[number] = page;
    this.#pageCount++;
  }
}
