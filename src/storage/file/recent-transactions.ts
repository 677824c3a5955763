/**
 * The transactions a handle applied lately, with the oids each changed: what `changesSince`
 * answers from, so a connection starting a transaction drops only the objects changed since
 * its last one.
 *
 * @module
 */

import type { ChangesSince, Oid, Tid, TransactionChanges } from '../types.js';

/**
 * Kept at most: a connection idle for longer than this many transactions (or oids) is told
 * to flush its whole cache instead, which bounds the memory of a busy log.
 */
const MAX_RECENT_TRANSACTIONS = 10_000;
const MAX_RECENT_OIDS = 1_000_000;

/** The recent transactions of one handle's log, oldest first. */
export class RecentTransactions {
  #transactions: TransactionChanges[] = [];
  #oids = 0;
  /** Every transaction after this tid is kept. */
  #knownSince: Tid;

  /** Knows of no transaction after `tid` yet. */
  constructor(tid: Tid) {
    this.#knownSince = tid;
  }

  /**
   * Notes a transaction applied, the newest so far; drops the oldest beyond the bounds.
   * One that changed no object is not kept (a reservation of oids changes none).
   */
  add(tid: Tid, oids: readonly Oid[]): void {
    if (oids.length === 0) return;
    const transactions = this.#transactions;
    transactions.push({ tid, oids });
    this.#oids += oids.length;
    while (transactions.length > MAX_RECENT_TRANSACTIONS || this.#oids > MAX_RECENT_OIDS) {
      const dropped = transactions.shift()!;
      this.#oids -= dropped.oids.length;
      this.#knownSince = dropped.tid;
    }
  }

  /**
   * Forgets every transaction up to `tid`, for a log loaded again or replaced by a pack:
   * snapshots before it must reload every object, as what changed since them is unknown.
   */
  forget(tid: Tid): void {
    this.#transactions = [];
    this.#oids = 0;
    this.#knownSince = tid;
  }

  /** The transactions after `tid`, oldest first; 'flush' if some of them are forgotten. */
  since(tid: Tid): ChangesSince {
    if (tid < this.#knownSince) return 'flush';
    const transactions = this.#transactions;
    let low = 0;
    let high = transactions.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (transactions[middle]!.tid <= tid) low = middle + 1;
      else high = middle;
    }
    return transactions.slice(low);
  }
}
