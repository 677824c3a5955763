/**
 * Transaction: what `db.transaction(fn)` and `db.read(fn)` hand to `fn`.
 *
 * @module
 */

import { ClosedError, InvalidArgumentError } from '../errors.js';
import type { Persistent } from '../persistent/persistent.js';
import type { PersistentMap } from '../persistent/persistent-map.js';
import { MAX_OID } from '../storage/storage.js';
import type { Oid, Tid } from '../storage/types.js';
import { describe } from '../util/validate.js';
import type { Connection } from './connection.js';

/** Ends a transaction handle. @internal */
export const END_TRANSACTION: unique symbol = Symbol('trove.endTransaction');

/** Checks an oid argument of the public API. @internal */
export function expectObjectId(oid: unknown, argument = 'oid'): Oid {
  if (typeof oid !== 'number' || !Number.isInteger(oid) || oid < 0 || oid > MAX_OID) {
    throw new InvalidArgumentError(
      `${argument} must be an oid (an integer from 0 to ${MAX_OID}), got ${describe(oid)}`,
      {
        argument,
      },
    );
  }
  return oid;
}

/**
 * One transaction: a consistent snapshot of the database, plus this transaction's own
 * uncommitted changes. Objects read through it belong to it; using them (or it) after the
 * transaction ended throws ClosedError.
 */
export class Transaction {
  readonly #connection: Connection;
  readonly #readOnly: boolean;
  #ended = false;

  // Private: only a Database makes one, through `create`, for `transaction` and `read`.
  private constructor(connection: Connection, readOnly: boolean) {
    this.#connection = connection;
    this.#readOnly = readOnly;
  }

  /** @internal A transaction on `connection`, which has begun it. */
  static create(connection: Connection, readOnly: boolean): Transaction {
    return new Transaction(connection, readOnly);
  }

  /** True for `db.read` transactions, which cannot change anything. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** The tid of the snapshot this transaction reads. */
  get snapshotTid(): Tid {
    return this.#open().snapshot;
  }

  /** The root object of the database. */
  get root(): PersistentMap<string, any> {
    return this.#open().root() as PersistentMap<string, any>;
  }

  /** The stored object with this oid, loaded. NotFoundError if there is none. */
  getObject<T extends object = Persistent>(oid: Oid): T {
    const connection = this.#open();
    return connection.getObject(expectObjectId(oid)) as T;
  }

  /**
   * Makes the commit fail with a ConflictError if `obj`, which this transaction only read,
   * is changed by another transaction before this one commits (so decisions based on it
   * stay valid). If the transaction writes `obj` too, its write is not merged with such a
   * change (as its class would otherwise): the commit fails the same way.
   */
  readCurrent(obj: Persistent): void {
    this.#open().readCurrent(obj);
  }

  /** @internal */
  [END_TRANSACTION](): void {
    this.#ended = true;
  }

  #open(): Connection {
    if (this.#ended) throw new ClosedError('this transaction has ended');
    return this.#connection;
  }
}
