/**
 * Blob: binary content stored in the database, streamed in and out, never held whole in
 * memory.
 *
 * A Blob is a small persistent object (its size, and a reference to its content); the
 * content is a separate record of raw bytes that the storage writes from a staged copy and
 * reads back as a stream. Blobs are immutable: new content is a new Blob.
 *
 * @module
 */

import { pipeline, Readable, Transform } from 'node:stream';
import { registerClass } from '../codec/class-registry.js';
import { CorruptionError, InvalidArgumentError } from '../errors.js';
import { bytesStream } from '../storage/bytes-stream.js';
import type { StagedBlob } from '../storage/types.js';
import { describe } from '../util/validate.js';
import { META, type ObjectMeta } from './object-meta.js';
import { FROZEN, Persistent, readTarget } from './persistent.js';

/** What a blob's content is made from before it is stored. */
export type BlobSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Where an unsaved Blob keeps its source (volatile: never stored). */
export const BLOB_SOURCE: unique symbol = Symbol('trove.blobSource');
/** Where new blob content keeps its staged bytes until the commit stores them. */
export const STAGED: unique symbol = Symbol('trove.staged');

/** The raw-bytes record of a blob's content. Only the storage reads it, as a stream. */
export class BlobContent extends Persistent {
  declare [STAGED]: StagedBlob | undefined;
}

interface BlobTarget {
  /** Named so that it does not shadow the `size` getter, which checks it is known. */
  sizeInBytes: number;
  content: BlobContent | undefined;
  [BLOB_SOURCE]?: BlobSource | undefined;
}

/** True while Blob.from makes its blob: the only maker of blobs (see the constructor). */
let makingBlob = false;

/**
 * Binary content of any size, stored in the database and read back as a stream. Create one
 * with {@link Blob.from} and store it like any value of a persistent object.
 */
export class Blob extends Persistent {
  /**
   * Refused (InvalidArgumentError): a blob is made with {@link Blob.from}, which gives it
   * its content (called on a subclass, it makes one of that class). Made with `new`, it
   * would have none: no size, nothing to store or read. (A stored blob of a class made by
   * its constructor when loaded, `constructOnLoad`, is made so, and has its content.)
   * Protected, so that `new Blob()` does not compile either.
   */
  protected constructor() {
    super();
    if (!makingBlob && (this as unknown as { [META]: ObjectMeta })[META].oid === undefined) {
      throw new InvalidArgumentError('make a Blob with Blob.from(source), which gives it content');
    }
  }

  /**
   * A new blob with the bytes of `source`: a Uint8Array, or a Node Readable (or any
   * iterable or async iterable) of byte chunks. A stream is read when the blob is committed.
   */
  static from<T extends Blob = Blob>(
    // The class by its prototype: a construct signature would refuse the protected
    // constructor of a subclass.
    // biome-ignore lint/suspicious/noConfusingVoidType: `this` is void in an unbound call (`const from = Blob.from`)
    this: { readonly prototype: T } | void,
    source: BlobSource,
  ): T {
    const isBytes = source instanceof Uint8Array;
    const isIterable =
      typeof source === 'object' &&
      source !== null &&
      (Symbol.asyncIterator in source || Symbol.iterator in (source as object));
    if (!isBytes && !isIterable) {
      throw new InvalidArgumentError(
        `source must be a Uint8Array, a readable stream or an iterable of bytes, got ${describe(source)}`,
        { argument: 'source' },
      );
    }
    refuseSpentStream(source);
    // Called on a subclass, it makes one of that subclass; called unbound, a Blob.
    // biome-ignore lint/complexity/noThisInStatic: the class it was called on, a subclass too
    const cls = (typeof this === 'function' ? this : Blob) as unknown as new () => T;
    if ((cls as unknown) !== Blob && !(cls.prototype instanceof Blob)) {
      throw new InvalidArgumentError(
        `Blob.from makes a Blob or an instance of a subclass of Blob, not of ${describe(cls)}`,
        { argument: 'this' },
      );
    }
    let blob: T;
    makingBlob = true;
    try {
      blob = new cls();
    } finally {
      makingBlob = false;
    }
    const target = (blob as unknown as { [META]: ObjectMeta })[META].target as BlobTarget;
    // The blob is immutable, so its state is set on the raw object, not through the proxy.
    target.sizeInBytes = isBytes ? (source as Uint8Array).byteLength : -1;
    target[BLOB_SOURCE] = isBytes ? Uint8Array.from(source as Uint8Array) : source;
    return blob;
  }

  /**
   * The size in bytes. For a blob made from a stream, known once it is stored; before that,
   * reading it throws InvalidArgumentError.
   */
  get size(): number {
    const size = readTarget<BlobTarget>(this).sizeInBytes;
    if (size < 0) {
      throw new InvalidArgumentError(
        'the size of a blob made from a stream is known once it is committed',
      );
    }
    return size;
  }

  /** The content as a Node Readable stream of byte chunks. */
  stream(): Readable {
    const target = readTarget<BlobTarget>(this);
    const meta = (target as unknown as { [META]: ObjectMeta })[META];
    const content = target.content;
    if (content !== undefined) {
      const contentMeta = (content as unknown as { [META]: ObjectMeta })[META];
      if (contentMeta.jar !== undefined && contentMeta.oid !== undefined) {
        return ofLength(
          contentMeta.jar.openBlob(contentMeta.oid),
          target.sizeInBytes,
          contentMeta.oid,
        );
      }
    }
    const source = target[BLOB_SOURCE];
    if (source instanceof Uint8Array && meta.jar === undefined) {
      // (Copies: a reader may change the chunks it is given, and these are what will be
      // committed.)
      return bytesStream(source);
    }
    throw new InvalidArgumentError(
      source instanceof Uint8Array
        ? 'this blob is not stored yet (its commit did not finish): commit it first'
        : 'this blob was made from a stream and is not stored yet: commit it first',
    );
  }

  /**
   * `{ size }` for JSON.stringify (`size` null while unknown). The content is not JSON;
   * walking into it would load blob bytes as an object record.
   */
  toJSON(): { size: number | null } {
    const size = readTarget<BlobTarget>(this).sizeInBytes;
    return { size: size < 0 ? null : size };
  }

  /** The whole content in memory (for small blobs; use stream() for large ones). */
  async bytes(): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.stream()) chunks.push(chunk as Uint8Array);
    return Buffer.concat(chunks);
  }

  /** `Blob`, for `Object.prototype.toString`. */
  get [Symbol.toStringTag](): string {
    return 'Blob';
  }
}

/**
 * `content` as it streams, failing with CorruptionError at its end if it did not hold the
 * `size` bytes the blob says (a damaged or hand-made file: the checksums of each record
 * hold, but the blob and its content disagree), so that a short read is never taken whole.
 */
function ofLength(content: Readable, size: number, oid: number): Readable {
  let seen = 0;
  const checked = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.byteLength;
      done(null, chunk);
    },
    flush(done) {
      done(
        seen === size
          ? null
          : new CorruptionError(
              `the content of a blob (object ${oid}) holds ${seen} bytes; the blob says ${size}`,
            ),
      );
    },
  });
  // Either end's failure or early close ends both: the content's own (a CorruptionError)
  // is the stream's, and a reader that stops early releases the content's file.
  pipeline(content, checked, () => {});
  return checked;
}

/** One-shot sources (streams, iterators) that staging has read: a second read finds nothing. */
const consumedSources = new WeakSet<object>();

/**
 * Refuses a one-shot source that was read before: a stream something read from (or that
 * ended, or was destroyed), or a stream or iterator a commit staged already. What is left of
 * it is not the content: a transaction run again after a conflict, say, would pass the
 * source its first run read, and store an empty blob.
 *
 * @internal
 */
function refuseSpentStream(source: BlobSource): void {
  const stream = source as Partial<Readable>;
  if (
    consumedSources.has(source) ||
    stream.readableDidRead === true ||
    stream.readableEnded === true ||
    (stream.destroyed === true && typeof stream.readableDidRead === 'boolean') ||
    // A web stream with a reader already: something else reads it.
    (source as { locked?: unknown }).locked === true ||
    // A web stream something read from (Node's streams answer that too).
    (typeof (source as { getReader?: unknown }).getReader === 'function' &&
      Readable.isDisturbed(source as never))
  ) {
    throw new InvalidArgumentError(
      'source is a stream or iterator that was read already (or ended, or was destroyed): make a new one',
      { argument: 'source' },
    );
  }
}

/**
 * Takes `source` for staging, which reads it now: refuses it if it was read before (see
 * refuseSpentStream), then notes it as read if it can be read only once: a stream, or an
 * iterator (an object whose iteration returns itself, as generators do). Bytes and arrays of
 * chunks read the same every time.
 *
 * @internal
 */
export function takeSourceForStaging(source: BlobSource): void {
  refuseSpentStream(source);
  if (source instanceof Uint8Array || Array.isArray(source)) return;
  const iterable = source as {
    [Symbol.iterator]?: () => unknown;
    [Symbol.asyncIterator]?: () => unknown;
    getReader?: unknown;
  };
  const iterateAsync = iterable[Symbol.asyncIterator];
  const iterate = iterable[Symbol.iterator];
  // Streams first: asking a web stream for its iterator would lock it.
  const oneShot =
    source instanceof Readable ||
    typeof iterable.getReader === 'function' ||
    (typeof iterateAsync === 'function' && iterateAsync.call(source) === source) ||
    (typeof iterate === 'function' && iterate.call(source) === source);
  if (oneShot) consumedSources.add(source);
}

/**
 * The source of a blob not yet stored, and a setter for what staging learned: the size and
 * the content object to store.
 *
 * @internal
 */
export function pendingBlob(
  meta: ObjectMeta,
): { source: BlobSource; settle(size: number, content: BlobContent): void } | undefined {
  const target = meta.target as BlobTarget;
  if (target.content !== undefined || target[BLOB_SOURCE] === undefined) return undefined;
  return {
    source: target[BLOB_SOURCE],
    settle(size, content) {
      target.sizeInBytes = size;
      target.content = content;
      delete target[BLOB_SOURCE];
    },
  };
}

Object.defineProperty(Blob.prototype, FROZEN, { value: true });
Object.defineProperty(BlobContent.prototype, FROZEN, { value: true });
registerClass(Blob, 'trove.Blob');
registerClass(BlobContent, 'trove.BlobContent');
