/**
 * The files of blobs staged by one handle: blob content streamed to disk before the commit
 * that stores it, so a commit never holds a blob in memory.
 *
 * Each file is named after the handle's blob owner file (see temporary-files' ownedPath),
 * whose lock marks them all in use: an open by another handle removes the files of owners
 * no one holds (a process that died), and leaves these alone.
 *
 * @module
 */

import * as fs from 'node:fs';
import { ClosedError, TroveError } from '../../errors.js';
import type { StagedBlob } from '../types.js';
import { ioError, writeFullyLater } from './file-ops.js';
import {
  createTemporary,
  discardTemporary,
  ownedPath,
  renewedOwner,
  type TemporaryFile,
} from './temporary-files.js';

/** A staged blob's file. */
interface StagedFile {
  readonly path: string;
  /** Commits holding it (queued or being written). */
  readers: number;
  /** Discarded: removed once no commit holds it. */
  discarded: boolean;
}

/** The staged blobs of one handle of the data file at `dataPath`. */
export class StagedBlobs {
  readonly #dataPath: string;
  /** The file of each staged blob, closed once staged: a commit opens it again to read it. */
  readonly #files = new WeakMap<StagedBlob, StagedFile>();
  /** The owner file, made and locked at the first staging, removed at close. */
  #owner: TemporaryFile | undefined;
  #staged = 0;
  /** Files of stagings stopped during a write, gone once it is done (see close). */
  readonly #going = new Set<Promise<void>>();

  constructor(dataPath: string) {
    this.#dataPath = dataPath;
  }

  /**
   * Writes `chunks` to a new staged file. When `stopped` is aborted (the storage closes), the
   * file goes at once, or after a write under way, and the staging fails with ClosedError
   * when its source next gives a chunk (or ends): a source that never does cannot keep it.
   */
  async stage(chunks: AsyncIterable<Uint8Array>, stopped: AbortSignal): Promise<StagedBlob> {
    // The source is asked for its first chunk before anything is awaited: a stream already
    // flowing would otherwise pour its data out unheard, and none be stored.
    const source = chunks[Symbol.asyncIterator]();
    let next = source.next();
    next.catch(() => undefined); // (Awaited below, once the file is made.)
    let file: TemporaryFile;
    try {
      // The owner first, locked: from then on its blobs are in use (one step, as there).
      this.#owner =
        this.#owner === undefined
          ? createTemporary(this.#dataPath, 'blob')
          : renewedOwner(this.#owner, this.#dataPath, 'blob');
      const path = ownedPath(this.#owner, ++this.#staged);
      file = { path, fd: fs.openSync(path, 'wx', 0o644) };
    } catch (error) {
      // Not awaited: the source's return waits for the chunk asked for, which a stalled
      // upload may never give; its own failure is not this one.
      source.return?.()?.catch(() => undefined);
      throw ioError('staging a blob for', this.#dataPath, error);
    }
    let size = 0;
    let writing = false;
    let discarded = false;
    let gone: (() => void) | undefined;
    const discard = () => {
      if (discarded) return;
      discarded = true;
      discardTemporary(file);
      gone?.();
    };
    // A write under way finishes first (its descriptor must not be closed under it): the
    // loop discards the file after it, and close() waits for that.
    const stop = () => {
      if (!writing) {
        discard();
        return;
      }
      const going = new Promise<void>((resolve) => {
        gone = resolve;
      });
      this.#going.add(going);
      void going.then(() => this.#going.delete(going));
    };
    stopped.addEventListener('abort', stop);
    const closed = () => new ClosedError('the storage was closed while a blob was being staged');
    try {
      if (stopped.aborted) throw closed();
      for (let step = await next; step.done !== true; step = await next) {
        if (stopped.aborted) throw closed();
        const chunk = step.value;
        writing = true;
        await writeFullyLater(file.fd, chunk, size);
        writing = false;
        if (stopped.aborted) throw closed();
        size += chunk.byteLength;
        next = source.next();
      }
      if (stopped.aborted) throw closed();
    } catch (error) {
      // The file first: a source whose return never settles must not keep it.
      discard();
      await source.return?.()?.catch(() => undefined);
      // The source's own failure (an upload cut off) is the application's, passed on as it
      // is; only the system's refusal to write is an I/O error of the storage.
      throw writing && !(error instanceof TroveError)
        ? ioError('staging a blob for', this.#dataPath, error)
        : error;
    } finally {
      stopped.removeEventListener('abort', stop);
    }
    fs.closeSync(file.fd);
    const staged: StagedBlob = { size };
    this.#files.set(staged, { path: file.path, readers: 0, discarded: false });
    return staged;
  }

  /** Removes the file of `blob`, or has it removed once no commit holds it. */
  async discard(blob: StagedBlob): Promise<void> {
    const file = this.#files.get(blob);
    if (file === undefined || file.discarded) return;
    file.discarded = true;
    // A commit holding it: removed when that commit is done (a descriptor closed under a
    // read may be another file's by then, and its bytes would be stored as the blob's).
    if (file.readers > 0) return;
    this.#files.delete(blob);
    try {
      await fs.promises.rm(file.path, { force: true });
    } catch (error) {
      throw ioError('removing a staged blob of', this.#dataPath, error);
    }
  }

  /**
   * Holds the file of `blob` for a commit, until `unpin`, even if it is discarded meanwhile.
   * False (holding nothing) when it is not a blob staged here, or was discarded.
   */
  pin(blob: StagedBlob): boolean {
    const file = this.#files.get(blob);
    if (file === undefined || file.discarded) return false;
    file.readers++;
    return true;
  }

  /**
   * Lets go of a staged blob a commit held; removes its file if it was discarded meanwhile
   * (a failure to is left to the next open, as the file is unlocked from then on).
   */
  async unpin(blob: StagedBlob): Promise<void> {
    const file = this.#files.get(blob)!;
    file.readers--;
    if (file.readers === 0 && file.discarded) {
      this.#files.delete(blob);
      await fs.promises.rm(file.path, { force: true }).catch(() => undefined);
    }
  }

  /** The path of the file of `blob`, which a commit holds (see pin). */
  pathOf(blob: StagedBlob): string {
    return this.#files.get(blob)!.path;
  }

  /**
   * Gives up the owner file at close, once the files of stagings stopped during a write are
   * gone: the staged blobs are discarded next (Storage.close), and an open meanwhile removes
   * their files.
   */
  async close(): Promise<void> {
    await Promise.all(this.#going);
    if (this.#owner !== undefined) discardTemporary(this.#owner);
    this.#owner = undefined;
  }
}
