/**
 * Database: the handle `open()` returns. Two APIs over one model:
 *
 * - Durus style, on one default connection: `db.root`, `await db.commit()`, `db.abort()`.
 *   A transaction is always open on it; commit and abort end it and start the next, which
 *   sees what others committed in the meantime.
 * - Concurrent style: `db.transaction(fn)` runs `fn` on a pooled connection and commits,
 *   retrying on a fresh snapshot when another transaction conflicts; `db.read(fn)` runs a
 *   read-only snapshot.
 *
 * @module
 */

import {
  ClosedError,
  ConflictError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
  ReadOnlyError,
} from '../errors.js';
import { JarStatus } from '../persistent/object-meta.js';
import type { Persistent } from '../persistent/persistent.js';
import type { PersistentMap } from '../persistent/persistent-map.js';
import type { IntegrityReport, Storage } from '../storage/storage.js';
import { StorageConflictError } from '../storage/storage.js';
import { keptMeta } from '../storage/transaction-meta.js';
import {
  type BackupOptions,
  type BackupResult,
  type Oid,
  type PackOptions,
  type PackResult,
  ROOT_OID,
  type StorageStats,
  type Tid,
  type TransactionMeta,
} from '../storage/types.js';
import { sleep } from '../util/event-loop.js';
import {
  expectFunction,
  expectOptionalBoolean,
  expectOptionalText,
  expectOptions,
  expectPositiveInteger,
  type OptionKeys,
} from '../util/validate.js';
import { Connection, emptyRootData } from './connection.js';
import type { CacheCounters, CacheLimits } from './object-cache.js';
import { END_TRANSACTION, expectObjectId, Transaction } from './transaction.js';

/** Options of a database handle (the storage-independent part of `open`'s options). */
export interface DatabaseOptions {
  /** Loaded objects each connection keeps in its cache (default 100,000). */
  cacheSize?: number | undefined;
  /** Bytes of loaded state each connection keeps in its cache (default 256 MiB). */
  cacheBytes?: number | undefined;
  /**
   * Idle connections kept for `transaction` and `read` (default 64). Size it to the number of
   * transactions that run at once: a connection beyond it is closed when its transaction
   * ends, and the next one starts with an empty cache. Each idle connection keeps its cache.
   */
  poolSize?: number | undefined;
}

/** @internal The keys of {@link DatabaseOptions}, for the entry points that take them. */
export const DATABASE_OPTION_KEYS: OptionKeys<DatabaseOptions> = {
  cacheSize: true,
  cacheBytes: true,
  poolSize: true,
};

const TRANSACTION_META_KEYS: OptionKeys<TransactionMeta> = { note: true, user: true };
const TRANSACTION_OPTION_KEYS: OptionKeys<TransactionOptions> = {
  ...TRANSACTION_META_KEYS,
  attempts: true,
};

/**
 * The cache limits and pool size `options` ask for; InvalidArgumentError if one is not a
 * positive integer. `open(path)` checks them before it opens (or creates) the file.
 *
 * @internal
 */
export function checkDatabaseOptions(options: DatabaseOptions): {
  limits: CacheLimits;
  poolSize: number;
} {
  const positive = (value: number | undefined, fallback: number, argument: string) =>
    value === undefined ? fallback : expectPositiveInteger(value, argument);
  return {
    limits: {
      objects: positive(options.cacheSize, DEFAULT_CACHE_SIZE, 'options.cacheSize'),
      bytes: positive(options.cacheBytes, DEFAULT_CACHE_BYTES, 'options.cacheBytes'),
    },
    poolSize: positive(options.poolSize, DEFAULT_POOL_SIZE, 'options.poolSize'),
  };
}

/** Options of `db.transaction`. */
export interface TransactionOptions extends TransactionMeta {
  /**
   * How many times to run `fn` in all when commits conflict (default 3). Each retry runs on a
   * fresh snapshot. `Infinity` retries until the commit succeeds.
   */
  attempts?: number | undefined;
}

/** Options of `db.integrityCheck`. */
export interface IntegrityCheckOptions {
  /** Throw an IntegrityError (listing the failures) instead of returning a failed report. */
  throwOnFailure?: boolean | undefined;
}

/** Options of `db.commit`. */
export type CommitOptions = TransactionMeta;

/** What `db.stats()` reports. */
export interface DatabaseStats {
  /** Object caches of all connections together. */
  readonly cache: CacheCounters & {
    /** Loaded objects held now. */
    readonly objects: number;
    /** Bytes of loaded state held now. */
    readonly bytes: number;
  };
  /** Connections. */
  readonly connections: {
    /** In use by a transaction (or by the default connection's work) now. */
    readonly active: number;
    /** Idle in the pool, kept for the next transactions. */
    readonly idle: number;
  };
  /** The storage's counters. */
  readonly storage: StorageStats;
}

/**
 * How many open databases use each storage: several handles may share one (two handles on
 * one MemoryStorage are how one process sees what "another process" committed); the
 * storage closes when the last of them does.
 */
const storageUsers = new WeakMap<Storage, number>();

const DEFAULT_CACHE_SIZE = 100_000;
const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;
// Enough for many concurrent async writers (group commit) to each find a warm connection;
// idle connections only hold their caches, which were in memory while they ran anyway.
const DEFAULT_POOL_SIZE = 64;
const DEFAULT_ATTEMPTS = 3;

function checkTransactionMeta(options: TransactionMeta): TransactionMeta {
  return keptMeta({
    note: expectOptionalText(options.note, 'options.note'),
    user: expectOptionalText(options.user, 'options.user'),
  });
}

/** Waits a little, longer after each failed attempt, so contending writers spread out. */
function backOff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(2 ** attempt, 64);
  return sleep(ms);
}

/**
 * After a transaction whose start released ghosts of its connection's cache (see
 * ObjectCache#takeReleased): a turn of the event loop, so that they can be collected. Most
 * reads do not wait for I/O, and a loop of them never ended its job. (A connection closed
 * meanwhile has nothing to give back.)
 */
async function afterReleasedGhosts(connection: Connection): Promise<void> {
  if (connection.cache.takeReleased()) await new Promise((resolve) => setImmediate(resolve));
}

/** An open database. Create one with `open()`. */
export class Database {
  /** The storage this database reads and writes. */
  readonly storage: Storage;
  readonly #limits: CacheLimits;
  readonly #poolSize: number;
  readonly #default: Connection;
  readonly #idle: Connection[] = [];
  readonly #active = new Set<Connection>();
  readonly #retired: CacheCounters = { hits: 0, misses: 0, evictions: 0 };
  #defaultCommit: Promise<unknown> = Promise.resolve();
  /** Whether a commit of the default connection is under way (its changes collected). */
  #defaultCommitting = false;
  /** Commits of the default connection requested while another was under way, not begun. */
  #defaultCommitsWaiting = 0;
  /** The conflicts that discarded the default connection's changes: a count, and the last. */
  #defaultDiscards = 0;
  #lastDiscard: ConflictError | undefined;
  #closing: Promise<void> | undefined;

  // Private: `open()` makes databases, through `create`.
  private constructor(storage: Storage, options: DatabaseOptions = {}) {
    this.storage = storage;
    ({ limits: this.#limits, poolSize: this.#poolSize } = checkDatabaseOptions(options));
    this.#default = new Connection(storage, { cache: this.#limits });
    storageUsers.set(storage, (storageUsers.get(storage) ?? 0) + 1);
  }

  /** @internal A database on `storage`; `start` it before use. */
  static create(storage: Storage, options?: DatabaseOptions): Database {
    return new Database(storage, options);
  }

  /** @internal Creates the root if the storage has none, and opens the default transaction. */
  async start(): Promise<this> {
    if (!this.storage.readOnly) await this.#ensureRoot();
    this.#default.begin(this.storage.readOnly ? JarStatus.ReadOnly : JarStatus.Writable);
    return this;
  }

  /** True when the database refuses writes. */
  get readOnly(): boolean {
    return this.storage.readOnly;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  // ---- Durus style -----------------------------------------------------------------------

  /** The root object (a PersistentMap) of the default connection. */
  get root(): PersistentMap<string, any> {
    this.#checkOpen();
    return this.#default.root() as PersistentMap<string, any>;
  }

  /** The stored object with this oid, loaded, on the default connection. */
  getObject<T extends object = Persistent>(oid: Oid): T {
    this.#checkOpen();
    return this.#default.getObject(expectObjectId(oid)) as T;
  }

  /**
   * Commits the default connection's changes and starts its next transaction. If another
   * transaction committed a conflicting change, this throws ConflictError and the changes
   * are discarded (objects show the newest committed state, as after `abort()`), and so
   * does every commit that was called before and waits for this one (the changes it was to
   * store are gone); any other failure leaves the changes pending, so they can be fixed and
   * committed again. Commits called while one runs go one after another, each storing every
   * change made by the time it starts: one that finds nothing left to store (an earlier one
   * took it) stores nothing, its `note` included, and returns the last tid. A commit that
   * was stored resolves with its tid even if reading what others committed meanwhile fails
   * after it (an I/O error): the next commit() or abort() reads it again.
   */
  async commit(options?: CommitOptions): Promise<Tid> {
    this.#checkOpen();
    const meta = checkTransactionMeta(
      expectOptions<CommitOptions>(options, 'options', TRANSACTION_META_KEYS),
    );
    const discards = this.#defaultDiscards;
    const start = async (): Promise<Tid> => {
      // A commit that waited behind one whose conflict discarded the changes (every change,
      // those made after it began too) has lost the changes it was asked to store.
      if (this.#defaultDiscards !== discards) {
        const conflict = this.#lastDiscard!;
        throw new ConflictError(
          `the changes this commit was to store were discarded by an earlier commit's conflict: ${conflict.message}`,
          {
            kind: conflict.kind,
            ...(conflict.oid === undefined ? {} : { oid: conflict.oid }),
            ...(conflict.className === undefined ? {} : { className: conflict.className }),
            cause: conflict,
          },
        );
      }
      this.#defaultCommitting = true;
      try {
        const tid = await this.#default.commit(meta);
        this.#syncDefault();
        return tid;
      } catch (error) {
        if (error instanceof ConflictError && !this.closed) {
          this.#default.abort();
          this.#defaultDiscards++;
          this.#lastDiscard = error;
          this.#syncDefault();
          // Its stack formatted now, and its causes' (a resolveConflict that threw): until
          // then the engine keeps the frames they were thrown through, which hold the
          // discarded changes (a new blob's staged bytes on disk, megabytes maybe) for as
          // long as this error is kept. (A stack formatter of the application's that throws
          // must not replace the conflict.)
          let part: unknown = error;
          for (let depth = 0; part instanceof Error && depth < 8; depth++) {
            try {
              void part.stack;
            } catch {}
            part = part.cause;
          }
        }
        throw error;
      } finally {
        this.#defaultCommitting = false;
      }
    };
    // Commits of the default connection run one after another, in call order. One that can
    // begin at once collects the changes now, before this returns (unless it stages a blob
    // first): a close() called right after it leaves them to it. (A commit waiting for an
    // earlier one runs even when close() is called meanwhile: close waits for it.)
    let run: Promise<Tid>;
    if (!this.#defaultCommitting && this.#defaultCommitsWaiting === 0) {
      run = start();
    } else {
      this.#defaultCommitsWaiting++;
      run = this.#defaultCommit.then(() => {
        this.#defaultCommitsWaiting--;
        return start();
      });
    }
    this.#defaultCommit = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts the default connection's next transaction after a commit, stored or discarded.
   * A failure to read what others committed meanwhile (a transient I/O error) must not take
   * the place of the commit's own outcome: a stored commit reported failed would be stored
   * again, and a conflict reported as an I/O error would leave the commits waiting behind it
   * to resolve as if they had stored the changes it discarded. The connection then starts
   * over from the storage's last tid, every unchanged object loaded afresh when next used
   * (where a lasting I/O error is reported); the next commit() or abort() reads on as usual.
   */
  #syncDefault(): void {
    try {
      this.#default.sync();
    } catch {
      try {
        this.#default.syncWithoutChanges();
      } catch {
        // Closed meanwhile: nothing to start.
      }
    }
  }

  /**
   * Discards the default connection's changes (changed objects go back to their committed
   * state) and starts its next transaction, which sees what others committed meanwhile.
   * InvalidArgumentError while a `commit()` is under way or waits for one: await it first.
   */
  abort(): void {
    this.#checkOpen();
    if (this.#defaultCommitting || this.#defaultCommitsWaiting > 0) {
      // A waiting commit has not collected the changes yet: it would find none and resolve
      // as if it had stored them. A running one may not have either (it may be staging a
      // blob first), and the new snapshot an abort takes would reload objects it is
      // storing as they were before it: their next commit would undo it without a conflict.
      throw new InvalidArgumentError(
        'abort() while a commit() is under way: await the commit first',
      );
    }
    this.#default.abort();
    this.#default.sync();
  }

  // ---- concurrent style ------------------------------------------------------------------

  /**
   * Runs `fn` in a new transaction on a pooled connection and commits what it changed.
   * When the commit conflicts with another transaction, or `fn` throws a ConflictError (a
   * read conflict, an inner transaction's conflict), `fn` runs again on a fresh snapshot, up
   * to `attempts` times in all; other errors abort the transaction and propagate.
   * Returns what `fn` returned. The commit stores what `fn` changed by the time it returned
   * (or its promise settled): await everything it starts, since its objects refuse writes
   * from then on (ClosedError).
   */
  async transaction<T>(
    fn: (tx: Transaction) => T | Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    this.#checkOpen();
    expectFunction(fn, 'fn');
    const opts = expectOptions<TransactionOptions>(options, 'options', TRANSACTION_OPTION_KEYS);
    const meta = checkTransactionMeta(opts);
    // null is no number of attempts (as for every other option): refused, not the default.
    const attempts = opts.attempts === undefined ? DEFAULT_ATTEMPTS : opts.attempts;
    if (attempts !== Number.POSITIVE_INFINITY) expectPositiveInteger(attempts, 'options.attempts');
    if (this.storage.readOnly) throw new ReadOnlyError('the database is read-only; use db.read');
    for (let attempt = 1; ; attempt++) {
      const connection = this.#acquire(JarStatus.Writable);
      const tx = Transaction.create(connection, false);
      let conflict: ConflictError;
      try {
        const result = await fn(tx);
        await connection.commit(meta, true);
        return result;
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= attempts) throw error;
        conflict = error;
      } finally {
        tx[END_TRANSACTION]();
        this.#release(connection);
        await afterReleasedGhosts(connection);
      }
      await backOff(attempt);
      if (this.closed) {
        // A conflict says "try again", which this handle can no longer do.
        throw new ClosedError('the database was closed before the transaction could run again', {
          cause: conflict,
        });
      }
    }
  }

  /** Runs `fn` on a read-only snapshot and returns what it returned. */
  async read<T>(fn: (tx: Transaction) => T | Promise<T>): Promise<T> {
    this.#checkOpen();
    expectFunction(fn, 'fn');
    const connection = this.#acquire(JarStatus.ReadOnly);
    const tx = Transaction.create(connection, true);
    try {
      return await fn(tx);
    } finally {
      tx[END_TRANSACTION]();
      this.#release(connection);
      await afterReleasedGhosts(connection);
    }
  }

  // ---- maintenance -----------------------------------------------------------------------

  /** Saves what makes the next open fast (a file storage's index). */
  async checkpoint(): Promise<void> {
    this.#checkOpen();
    await this.storage.checkpoint();
  }

  /** Removes objects no longer reachable from the root, and old revisions. */
  async pack(options?: PackOptions): Promise<PackResult> {
    this.#checkOpen();
    return this.storage.pack(options);
  }

  /**
   * Writes a consistent copy of the database to a new file at `target` while commits go on
   * (hot backup); with `{ at }`, the database as it was at that tid or time.
   */
  async backup(target: string, options?: BackupOptions): Promise<BackupResult> {
    this.#checkOpen();
    return this.storage.backup(target, options);
  }

  /**
   * Checks the stored data (for a file: every checksum, the structure, the index, dangling
   * refs) and reports what it found. It does not throw for damage it can report, unless
   * `throwOnFailure` asks for an IntegrityError when anything was found. A close() while it
   * runs ends it with ClosedError.
   */
  async integrityCheck(options?: IntegrityCheckOptions): Promise<IntegrityReport> {
    this.#checkOpen();
    const opts = expectOptions<IntegrityCheckOptions>(options, 'options', {
      throwOnFailure: true,
    });
    const throwOnFailure = expectOptionalBoolean(opts.throwOnFailure, 'options.throwOnFailure');
    const report = await this.storage.integrityCheck();
    if (throwOnFailure === true && !report.ok) {
      throw new IntegrityError(
        `the integrity check found ${report.failures.length} failure(s); the first: ${report.failures[0]!.detail}`,
        report.failures,
      );
    }
    return report;
  }

  /** Counters of the caches, connections and storage. */
  stats(): DatabaseStats {
    this.#checkOpen();
    const counters = { ...this.#retired };
    let objects = 0;
    let bytes = 0;
    for (const connection of this.#connections()) {
      const c = connection.cache.counters;
      counters.hits += c.hits;
      counters.misses += c.misses;
      counters.evictions += c.evictions;
      objects += connection.cache.loadedCount;
      bytes += connection.cache.loadedBytes;
    }
    return {
      cache: { ...counters, objects, bytes },
      connections: { active: this.#active.size, idle: this.#idle.length },
      storage: this.storage.stats(),
    };
  }

  /**
   * Closes the database: uncommitted changes of the default connection are discarded,
   * transactions still running fail with ClosedError, and the storage is closed once no
   * other open database uses it, after the commits, packs, backups and checkpoints under
   * way finish and an integrity check under way has stopped (it rejects with ClosedError);
   * a file storage then saves its index, so the next open is fast. A commit of the default
   * connection still reading a blob's source is waited for too (a source that never ends
   * keeps it waiting, until the application destroys it); a transaction's is stopped when
   * the storage closes with it (it fails with ClosedError). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        // Let a commit already under way on the default connection finish first.
        await this.#defaultCommit;
        for (const connection of this.#connections()) connection.close('the database is closed');
        this.#idle.length = 0;
        this.#active.clear();
        const users = (storageUsers.get(this.storage) ?? 1) - 1;
        storageUsers.set(this.storage, users);
        if (users === 0) await this.storage.close();
      })();
    }
    return this.#closing;
  }

  // ---- internals -------------------------------------------------------------------------

  *#connections(): Iterable<Connection> {
    yield this.#default;
    yield* this.#active;
    yield* this.#idle;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw new ClosedError('the database is closed');
  }

  #acquire(status: JarStatus.Writable | JarStatus.ReadOnly): Connection {
    const connection = this.#idle.pop() ?? new Connection(this.storage, { cache: this.#limits });
    this.#active.add(connection);
    try {
      connection.begin(status);
    } catch (error) {
      this.#active.delete(connection);
      throw error;
    }
    return connection;
  }

  #release(connection: Connection): void {
    this.#active.delete(connection);
    if (this.closed) return;
    connection.end();
    if (this.#idle.length < this.#poolSize) {
      this.#idle.push(connection);
    } else {
      const c = connection.cache.counters;
      this.#retired.hits += c.hits;
      this.#retired.misses += c.misses;
      this.#retired.evictions += c.evictions;
      connection.close('the transaction these objects belong to has ended');
    }
  }

  async #ensureRoot(): Promise<void> {
    try {
      this.storage.load(ROOT_OID);
      return;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    const data = emptyRootData();
    try {
      await this.storage.commit({
        baseTid: this.storage.lastTid(),
        writes: [{ oid: ROOT_OID, data, refs: [], expectedTid: 0 }],
        meta: { note: 'trove: create the root' },
      });
    } catch (error) {
      // Another process created the root at the same moment: use theirs.
      if (!(error instanceof StorageConflictError)) throw error;
    }
  }
}
