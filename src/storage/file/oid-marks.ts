/**
 * A set of oids for a pass over a file's objects (a pack's objects that exist, and those it
 * keeps), in pages made at their first oid as the index's are (see oid-index.ts): a byte
 * array by oid spanned every oid ever handed out, gigabytes in a file with one near the top
 * of the range.
 *
 * @module
 */

import { PAGE_OIDS } from './oid-index.js';

export class OidMarks {
  /** By page number (oid / PAGE_OIDS); undefined for a page with no oid marked. */
  readonly #pages: (Uint8Array | undefined)[] = [];

  has(oid: number): boolean {
    return this.#pages[Math.floor(oid / PAGE_OIDS)]?.[oid % PAGE_OIDS] === 1;
  }

  /** Marks `oid`; false if it was marked already. */
  add(oid: number): boolean {
    const number = Math.floor(oid / PAGE_OIDS);
    while (this.#pages.length <= number) this.#pages.push(undefined);
    let page = this.#pages[number];
    if (page === undefined) {
      page = new Uint8Array(PAGE_OIDS);
      this.#pages[number] = page;
    }
    if (page[oid % PAGE_OIDS] === 1) return false;
    page[oid % PAGE_OIDS] = 1;
    return true;
  }

  /** The marked oids, ascending. */
  *oids(): IterableIterator<number> {
    for (let number = 0; number < this.#pages.length; number++) {
      const page = this.#pages[number];
      if (page === undefined) continue;
      for (let slot = 0; slot < PAGE_OIDS; slot++)
        if (page[slot] === 1) yield number * PAGE_OIDS + slot;
    }
  }
}
