/**
 * An open data file shared by the storage and the blob streams reading it. After a pack
 * replaces the file, the old one stays open until the last stream reading it finishes.
 *
 * @module
 */

import * as fs from 'node:fs';
import { ClosedError } from '../../errors.js';

export class OpenFile {
  readonly fd: number;
  #users = 0;
  #retired = false;

  constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Registers a reader that needs the file open (a blob stream, an iterator). ClosedError if
   * the file was closed already: its descriptor may belong to another file by now.
   */
  acquire(): void {
    if (this.#retired && this.#users === 0) throw new ClosedError('the data file is closed');
    this.#users++;
  }

  /** Unregisters a reader; closes the file if it was retired and this was the last. */
  release(): void {
    this.#users--;
    if (this.#retired && this.#users === 0) fs.closeSync(this.fd);
  }

  /** The storage no longer uses the file: close it now, or when its last reader is done. */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    if (this.#users === 0) fs.closeSync(this.fd);
  }
}
