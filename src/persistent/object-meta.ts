/**
 * The bookkeeping trove keeps for every persistent object, and the interface the persistent
 * layer needs from the connection that owns an object (the "jar", as ZODB calls it). The
 * connection layer sits above this one, so it is described here and implemented there.
 *
 * @module
 */

import type { Readable } from 'node:stream';
import type { Oid, Tid } from '../storage/types.js';

/** The key under which an object's {@link ObjectMeta} hangs on the raw object. */
export const META: unique symbol = Symbol('trove.meta');

/**
 * Set on the prototype of classes whose instances refuse writes (Broken, Blob): `true`, or a
 * function that says why for an object (the raw object), for the refusal's message.
 */
export const FROZEN: unique symbol = Symbol('trove.frozen');

/** Where an object is in its life. */
export enum ObjectState {
  /** Never committed: not in any connection yet; its whole state is written when stored. */
  Unsaved = 0,
  /** In a connection, state not loaded; the first access loads it. */
  Ghost = 1,
  /** In a connection, state loaded and equal to the revision `serial`. */
  Saved = 2,
  /** In a connection, state changed in the current transaction. */
  Changed = 3,
}

/** Whether a connection lets its objects be read or written now. */
export enum JarStatus {
  /** In a transaction that may write. */
  Writable = 0,
  /** In a read-only transaction or view. */
  ReadOnly = 1,
  /** Not in a transaction (a pooled connection between transactions), or closed. */
  Closed = 2,
}

/** What the persistent layer needs from the connection that owns an object. */
export interface Jar {
  /** Whether objects may be read or written now. */
  readonly status: JarStatus;
  /** A counter that grows with every object access, for least-recently-used eviction. */
  clock: number;
  /** Loads the state of a ghost (and sets its class). */
  activate(meta: ObjectMeta): void;
  /** Records that a saved object's state changed in this transaction. */
  registerChange(meta: ObjectMeta): void;
  /** Throws the error for the current status (ClosedError or ReadOnlyError). */
  refuse(write: boolean): never;
  /** Streams the content of the blob content object `oid`. */
  openBlob(oid: Oid): Readable;
}

/** The bookkeeping of one persistent object. */
export class ObjectMeta {
  /** The raw object behind the proxy; the state lives here. */
  readonly target: object;
  /** The proxy everyone else sees. */
  proxy: object;
  state: ObjectState;
  /** The object's id, once it is stored (or about to be, during a commit). */
  oid: Oid | undefined;
  /** The connection that owns the object, once it is stored or loaded. */
  jar: Jar | undefined;
  /** The tid of the revision the state was loaded from (or last committed as); 0 if none. */
  serial: Tid = 0;
  /** The jar's clock at the last access. */
  access = 0;
  /** Size of the stored record in bytes, for the cache's byte budget. */
  size = 0;
  /** Grows every time the state is dropped or replaced; views of older states go stale. */
  generation = 0;
  /** True for list-like classes whose proxy answers index access. */
  indexed = false;
  /** True for classes whose stored instances refuse writes (Blob, Broken). */
  frozen = false;
  /**
   * Keys that must be read and written through the prototype chain (accessors, read-only
   * properties) rather than on the raw object directly; undefined when there are none.
   */
  slowKeys: ReadonlySet<string | symbol> | undefined = undefined;
  /** Whether the class is known: ghosts made from a reference learn it when they load. */
  classKnown: boolean;
  /** Change-tracking views of nested values, by raw value. */
  views: WeakMap<object, object> | undefined;
  /**
   * The number of the last commit walk that found this object new (a walk meets an object
   * many times when it is shared; a number on the object is cheaper than a set of them).
   */
  walk = 0;
  /** True once a constructor ran for the object (made with `new`, or see constructOnLoad). */
  constructed = false;

  constructor(target: object, state: ObjectState, classKnown: boolean) {
    this.target = target;
    this.proxy = target;
    this.state = state;
    this.oid = undefined;
    this.jar = undefined;
    this.classKnown = classKnown;
    this.views = undefined;
  }
}

/**
 * The meta of a persistent object (its proxy, or a wrapper its constructor returned around
 * it), or undefined for anything else: an object that inherits from a persistent one
 * (`Object.create(obj)`) reads its META through its prototype, but is not that object.
 */
export function metaOf(value: unknown): ObjectMeta | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const meta = (value as { [META]?: unknown })[META];
  if (!(meta instanceof ObjectMeta)) return undefined;
  if (meta.proxy === value) return meta;
  // Not the proxy (rare): a wrapper its constructor returned, whose prototype is the class's,
  // or an object that inherits the META of its prototype (at any depth, so its prototype
  // has the same one). A prototype that cannot be asked for is no persistent object's.
  let proto: unknown;
  try {
    proto = Object.getPrototypeOf(value);
  } catch {
    return undefined;
  }
  return proto !== null && (proto as { [META]?: unknown })[META] === meta ? undefined : meta;
}
