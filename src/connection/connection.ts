/**
 * A Connection is one view of the database: its own object cache, its own snapshot, its own
 * uncommitted changes. It runs one transaction at a time; the Database keeps a pool of them
 * for concurrent transactions and one default connection for the Durus-style API.
 *
 * @module
 */

import type { Readable } from 'node:stream';
import { types } from 'node:util';
import { classForName, nameOfClass, registrationCount } from '../codec/class-registry.js';
import { decodeRecord, encodeRecord, peekClassName } from '../codec/record-codec.js';
import { isPersistentClass, whileEncoding } from '../codec/reference-type.js';
import { type ScanResult, scanState } from '../codec/state-scanner.js';
import {
  ClosedError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  ReadOnlyError,
} from '../errors.js';
import {
  Blob,
  BlobContent,
  pendingBlob,
  STAGED,
  takeSourceForStaging,
} from '../persistent/blob.js';
import { BROKEN_CLASS_NAME, Broken } from '../persistent/broken.js';
import {
  type Jar,
  JarStatus,
  META,
  metaOf,
  type ObjectMeta,
  ObjectState,
} from '../persistent/object-meta.js';
import {
  createGhost,
  expectPersistent,
  ITEMS_KEY,
  installState,
  itemsKeyOf,
  stateOf,
} from '../persistent/persistent.js';
import { PersistentList } from '../persistent/persistent-list.js';
import { PersistentMap } from '../persistent/persistent-map.js';
import { PersistentSet } from '../persistent/persistent-set.js';
import { type ConflictInfo, type Storage, StorageConflictError } from '../storage/storage.js';
import {
  type Oid,
  type ReadGuard,
  type RecordWrite,
  ROOT_OID,
  type StagedBlob,
  type StoredRecord,
  type Tid,
  type TransactionMeta,
} from '../storage/types.js';
import { describe } from '../util/validate.js';
import { type CacheLimits, ObjectCache } from './object-cache.js';
import { describePath } from './object-path.js';

/** In-memory overhead of a loaded object beyond its record bytes, for the byte budget. */
const OBJECT_OVERHEAD_BYTES = 160;
/** How many times one commit re-resolves conflicts before giving up. */
const MAX_RESOLUTION_ROUNDS = 32;
/** Oids fetched at a time from a storage that must be waited for (a round trip each). */
const OID_BATCH = 64;
/** Commit walks so far, in this process: each marks the new objects it finds with its number. */
let walks = 0;

/**
 * Staged blob bytes whose content object is gone without being stored: a commit that failed
 * (a conflict that db.transaction retries with new objects, or an abort) leaves its staged
 * bytes (a temporary file) behind, which the storage would keep until it closes. The same
 * Blob may be committed again after a failed commit (its content object, and so its staged
 * bytes, are then still reachable), so they are freed only once nothing can store them.
 * Discarding bytes already stored, or freed at close, does nothing.
 */
const unstoredBlobs = new FinalizationRegistry<{ storage: Storage; staged: StagedBlob }>(
  ({ storage, staged }) => {
    storage.discardBlob(staged).catch(() => undefined);
  },
);

/** The signature of a class's `resolveConflict`. */
type ResolveConflict = (
  oldState: Record<string, unknown>,
  committedState: Record<string, unknown>,
  myState: Record<string, unknown>,
) => Record<string, unknown> | undefined | null;

/**
 * One object a commit writes: found by the walk, then encoded. (One object for both steps:
 * a large commit has many of them, all alive until it ends.)
 */
class PendingWrite {
  readonly meta: ObjectMeta;
  readonly className: string;
  /** Set for blob content: the staged bytes the write stores. */
  readonly staged: StagedBlob | undefined;
  /** What the walk found, kept until the record is encoded. */
  state: Record<string, unknown> | undefined;
  refs: readonly ObjectMeta[];
  scan: ScanResult | undefined;
  isNew = false;
  /** The record, once encoded. */
  write!: RecordWrite;
  /** Set when conflict resolution replaced the state: installed into the object on success. */
  resolved: Uint8Array | undefined = undefined;
  /** The record as this commit first encoded it, before conflict resolution replaced it. */
  prepared: Uint8Array | undefined = undefined;

  constructor(
    meta: ObjectMeta,
    className: string,
    state: Record<string, unknown> | undefined,
    refs: readonly ObjectMeta[],
    scan: ScanResult | undefined,
    staged: StagedBlob | undefined,
  ) {
    this.meta = meta;
    this.className = className;
    this.state = state;
    this.refs = refs;
    this.scan = scan;
    this.staged = staged;
  }
}

const NO_BYTES = new Uint8Array(0);
/** The refs of the many records that hold no reference: one array, never changed. */
const NO_REFS: readonly Oid[] = Object.freeze([]);
/** The same, as found by the walk. */
const NO_METAS: readonly ObjectMeta[] = Object.freeze([]);

/** Everything one commit writes. */
class CommitBatch {
  readonly pending: PendingWrite[];
  readonly guards: ReadGuard[] = [];
  /**
   * Objects the transaction guarded (readCurrent) and also wrote: the write checks what the
   * guard would, and a concurrent change to them is a conflict even where their class
   * merges (a merge would keep the other change, which the guard's decision did not see).
   */
  guardedWrites: Set<Oid> | undefined;
  #byOid: Map<Oid, PendingWrite> | undefined;

  constructor(pending: PendingWrite[]) {
    this.pending = pending;
  }

  /** The write of `oid` (made on first use: only conflicts look writes up). */
  byOid(oid: Oid): PendingWrite | undefined {
    if (this.#byOid === undefined) {
      this.#byOid = new Map();
      for (const entry of this.pending) this.#byOid.set(entry.write.oid, entry);
    }
    return this.#byOid.get(oid);
  }
}

function classOf(meta: ObjectMeta): Function {
  return (Object.getPrototypeOf(meta.target) as { constructor: Function }).constructor;
}

function uniqueOids(metas: readonly ObjectMeta[]): readonly Oid[] {
  if (metas.length === 0) return NO_REFS;
  if (metas.length === 1) return [metas[0]!.oid!];
  const oids = metas.map((meta) => meta.oid!);
  // New objects get oids in the order the walk meets them, so the refs of a large
  // collection are usually ascending: unique without a set.
  for (let i = 1; i < oids.length; i++) {
    if (oids[i]! <= oids[i - 1]!) return [...new Set(oids)];
  }
  return oids;
}

/** Options of a connection. */
export interface ConnectionOptions {
  /** Cache limits. */
  readonly cache: CacheLimits;
}

export class Connection implements Jar {
  status: JarStatus = JarStatus.Closed;
  clock = 0;
  readonly storage: Storage;
  readonly cache: ObjectCache;
  #snapshot: Tid = 0;
  #cacheEpoch = 0;
  #changed = new Set<ObjectMeta>();
  /**
   * Objects written while a commit was under way whose write could not be merged into the
   * state that commit's conflict resolution stored (see #installResolved): the next commit
   * fails with ConflictError for them.
   */
  #unmerged = new Set<ObjectMeta>();
  readonly #readGuards = new Map<Oid, Tid>();
  /**
   * For objects of classes that resolve conflicts: the revision each was committed as by this
   * connection, kept at no cost (the bytes are at hand) for a later change's merge, which
   * needs it and which a pack in any handle or process may remove from the storage's history
   * meanwhile. Valid while its tid is the object's serial; bounded (see BASES_BYTES), so a
   * bulk commit keeps some, not all. The object's first revision read from the storage is
   * not kept: reading it at each first change cost a third of a transaction changing many.
   */
  readonly #bases = new Map<ObjectMeta, { readonly tid: Tid; readonly data: Uint8Array }>();
  #basesBytes = 0;
  #oidPool: Oid[] = [];
  #closedReason = ENDED;
  /** Set when a `db.transaction`'s last commit has collected its changes (see commit). */
  #sealed = false;
  /** The registration count when the first Broken object loaded since the last look. */
  #brokenSince: number | undefined;
  #committing = false;

  constructor(storage: Storage, options: ConnectionOptions) {
    this.storage = storage;
    this.cache = new ObjectCache(options.cache);
  }

  /** The tid this connection reads as of. */
  get snapshot(): Tid {
    return this.#snapshot;
  }

  /** True when the current transaction changed something. */
  get hasChanges(): boolean {
    return this.#changed.size > 0;
  }

  // ---- Jar ---------------------------------------------------------------------------

  activate(meta: ObjectMeta): void {
    this.#install(meta, this.#snapshotRecord(meta.oid!, true));
  }

  /** The revision of `oid` this connection's snapshot sees. */
  #snapshotRecord(oid: Oid, referenced: boolean): StoredRecord {
    try {
      return this.#snapshotRevision(oid, referenced);
    } catch (error) {
      // A read-only view of a database with no root yet (its creation cut short by a crash,
      // or a view as of a time before the root was made): an empty root, as an open that
      // can write makes.
      if (oid === ROOT_OID && error instanceof NotFoundError && this.storage.readOnly) {
        return { oid, tid: 0, data: emptyRootData(), refs: [] };
      }
      throw error;
    }
  }

  #snapshotRevision(oid: Oid, referenced: boolean): StoredRecord {
    let record: StoredRecord;
    try {
      record = this.storage.load(oid);
    } catch (error) {
      // Gone now (a pack removed it once nothing reached it), an object this snapshot
      // reached by a reference existed then: history has it, or says the snapshot is too old
      // (a ConflictError, retried). An oid asked for by number may never have existed.
      if (
        !(error instanceof NotFoundError) ||
        !referenced ||
        this.#snapshot >= this.storage.lastTid()
      ) {
        throw error;
      }
      const before = this.storage.loadBefore(oid, this.#snapshot + 1);
      if (before === undefined) throw error;
      return before;
    }
    if (record.tid <= this.#snapshot) return record;
    const before = this.storage.loadBefore(oid, this.#snapshot + 1);
    if (before === undefined) {
      throw new NotFoundError(`object ${oid} does not exist as of this transaction's snapshot`);
    }
    return before;
  }

  /** Decodes a record into an object (a ghost being loaded). */
  #install(meta: ObjectMeta, record: StoredRecord): void {
    const oid = meta.oid!;
    const { className, state } = decodeRecord(record.data, this.#resolve, oid);
    const cls = classForName(className);
    if (cls === undefined || !isPersistentClass(cls)) {
      installState(meta, Broken, state);
      (meta.target as { [BROKEN_CLASS_NAME]: string })[BROKEN_CLASS_NAME] = className;
      this.#brokenSince ??= registrationCount();
      // Its class may be registered before it loads again: `instanceof` must load it first.
      meta.classKnown = false;
    } else {
      installState(meta, cls, this.#upgraded(cls, className, state));
      delete (meta.target as { [BROKEN_CLASS_NAME]?: string })[BROKEN_CLASS_NAME];
    }
    meta.serial = record.tid;
    meta.size = record.data.byteLength + OBJECT_OVERHEAD_BYTES;
    meta.state = ObjectState.Saved;
    this.cache.loaded(meta);
    this.cache.counters.misses++;
  }

  /** Loads an object the cache does not have, made with its class from the start. */
  #loadNew(oid: Oid): ObjectMeta {
    const record = this.#snapshotRecord(oid, false);
    const name = peekClassName(record.data);
    const cls = name === undefined ? undefined : classForName(name);
    const meta = createGhost(
      this,
      oid,
      cls !== undefined && isPersistentClass(cls) ? cls : undefined,
    );
    this.cache.add(meta);
    this.#install(meta, record);
    return meta;
  }

  registerChange(meta: ObjectMeta): void {
    this.#changed.add(meta);
  }

  /** Keeps `data`, the revision `meta` was just committed as at `tid`, as its merge base. */
  #keepBase(meta: ObjectMeta, tid: Tid, data: Uint8Array): void {
    // Dropped first, so that the new one goes to the end of the order (the newest).
    this.#dropBase(meta);
    if (data.byteLength > BASES_BYTES / 4) return;
    if (this.#basesBytes + data.byteLength > BASES_BYTES || this.#bases.size >= BASES_COUNT) {
      // Those of objects unloaded since (evicted, invalidated) or changed since are of no
      // use; then the oldest go, down to half the bounds (so a bulk commit prunes seldom).
      for (const [other, base] of this.#bases) {
        if (other.state === ObjectState.Ghost || other.serial !== base.tid) this.#dropBase(other);
      }
      for (const other of this.#bases.keys()) {
        if (this.#basesBytes <= BASES_BYTES / 2 && this.#bases.size <= BASES_COUNT / 2) break;
        this.#dropBase(other);
      }
    }
    // A copy: the encoder's output is a view of a buffer it goes on writing into.
    this.#bases.set(meta, { tid, data: data.slice() });
    this.#basesBytes += data.byteLength;
  }

  #dropBase(meta: ObjectMeta): void {
    const base = this.#bases.get(meta);
    if (base === undefined) return;
    this.#bases.delete(meta);
    this.#basesBytes -= base.data.byteLength;
  }

  openBlob(oid: Oid): Readable {
    if (this.status === JarStatus.Closed) this.refuse(false);
    try {
      return this.storage.openBlob(oid);
    } catch (error) {
      // Content a pack removed since this snapshot (nothing reached it any more) is a read of
      // the past, as an object's is (see #load): history calls the snapshot too old, a
      // ConflictError a transaction retries.
      if (error instanceof NotFoundError && this.#snapshot < this.storage.lastTid()) {
        this.storage.loadBefore(oid, this.#snapshot + 1);
      }
      throw error;
    }
  }

  refuse(write: boolean): never {
    if (this.status === JarStatus.Closed) throw new ClosedError(this.#closedReason);
    if (this.#sealed) throw new ClosedError(ENDED_AT_COMMIT);
    throw new ReadOnlyError(
      write
        ? 'this transaction is read-only: it cannot change objects'
        : 'reading is not allowed now',
    );
  }

  // ---- transactions --------------------------------------------------------------------

  /** Starts a transaction: a new snapshot, with changes committed elsewhere invalidated. */
  begin(status: JarStatus.Writable | JarStatus.ReadOnly): void {
    this.sync();
    this.#sealed = false;
    this.status = status;
  }

  /** Ends the transaction: objects of this connection refuse use until the next begin. */
  end(): void {
    this.abort();
    this.status = JarStatus.Closed;
  }

  /**
   * Takes a new snapshot (at a transaction boundary): objects changed elsewhere since the
   * last one become ghosts, and the cache gives back what exceeds its limits.
   */
  sync(): void {
    this.cache.shrink();
    // With nothing loaded there is nothing to invalidate: asking only for what is newer than
    // the storage's last tid still follows other processes, but a new connection (snapshot 0)
    // does not walk every transaction the storage remembers.
    const since = this.cache.loadedCount === 0 ? this.storage.lastTid() : this.#snapshot;
    const changes = this.storage.changesSince(since);
    if (this.#brokenSince !== undefined && this.#brokenSince !== registrationCount()) {
      // A class registered since may be the one some Broken object stands for: everything
      // loads again (the objects themselves stay, so references to them still work).
      this.#brokenSince = undefined;
      this.cache.unloadAll();
    }
    if (this.storage.cacheEpoch !== this.#cacheEpoch) {
      this.#cacheEpoch = this.storage.cacheEpoch;
      this.cache.unloadAll();
    } else if (changes === 'flush') {
      this.cache.unloadAll();
    } else {
      for (const { tid, oids } of changes) {
        for (const oid of oids) {
          const meta = this.cache.held(oid);
          // An object whose state is already that revision (this connection wrote it) stays.
          if (meta !== undefined && meta.state === ObjectState.Saved && meta.serial < tid) {
            this.cache.unload(meta);
          }
        }
      }
    }
    this.#snapshot = this.storage.lastTid();
  }

  /**
   * Starts the next transaction when sync() could not (reading what others committed failed):
   * every object not changed is dropped, as its state may be older than the storage's last
   * tid, which becomes the snapshot; they load afresh when next used. (Kept, they would be
   * served with a snapshot either too old for this connection's own commits, or too new for
   * them.) A changed object's commit is checked against every newer write, as always.
   */
  syncWithoutChanges(): void {
    this.cache.unloadAll();
    this.#snapshot = this.storage.lastTid();
  }

  /** Discards the current transaction's changes: changed objects reload their committed state. */
  abort(): void {
    for (const meta of this.#changed) {
      if (meta.state === ObjectState.Changed) this.cache.unload(meta);
    }
    this.#changed = new Set();
    this.#unmerged.clear();
    this.#readGuards.clear();
  }

  /** Closes the connection for good. */
  close(reason: string): void {
    this.#closedReason = reason;
    this.status = JarStatus.Closed;
    this.#changed = new Set();
    this.#bases.clear();
    this.#basesBytes = 0;
    this.cache.clear();
  }

  // ---- objects -------------------------------------------------------------------------

  readonly #resolve = (oid: Oid): object => this.objectFor(oid).proxy;

  /** The object for `oid`: from the cache, or a new ghost. */
  objectFor(oid: Oid): ObjectMeta {
    let meta = this.cache.get(oid);
    if (meta === undefined) {
      meta = createGhost(this, oid);
      this.cache.add(meta);
    }
    return meta;
  }

  /** The object for `oid`, loaded (NotFoundError if it does not exist in this snapshot). */
  getObject(oid: Oid): object {
    if (this.status === JarStatus.Closed) this.refuse(false);
    let meta = this.cache.get(oid);
    if (meta === undefined) meta = this.#loadNew(oid);
    else if (meta.state === ObjectState.Ghost) this.activate(meta);
    else this.cache.counters.hits++;
    // As the storage refuses to load it: one this connection holds (staged by its commit)
    // is not for the application either (stored elsewhere, it would be a second, broken
    // reference to the content).
    if (meta.classKnown && classOf(meta) === BlobContent) {
      throw new InvalidArgumentError(`object ${oid} is blob content; read it through its Blob`, {
        argument: 'oid',
      });
    }
    meta.access = ++this.clock;
    return meta.proxy;
  }

  /** The root object. */
  root(): object {
    return this.getObject(ROOT_OID);
  }

  /** Guards `obj` against change by others until this transaction commits. */
  readCurrent(obj: unknown): void {
    const meta = expectPersistent(obj, 'obj');
    if (meta.jar !== this || meta.oid === undefined) {
      throw new InvalidArgumentError(
        'obj must be a stored object of this transaction (read through it, not created in it)',
        { argument: 'obj' },
      );
    }
    if (this.status === JarStatus.Closed) this.refuse(false);
    if (meta.state === ObjectState.Ghost) this.activate(meta);
    this.#readGuards.set(meta.oid, meta.serial);
  }

  // ---- commit --------------------------------------------------------------------------

  /**
   * Writes every change of the current transaction (and every new object they reach) as one
   * storage transaction. On failure nothing is stored and the changes stay pending (so an
   * InvalidArgumentError can be fixed and the commit retried); a ConflictError leaves it to
   * the caller to abort. `last`: the transaction ends with this commit (`db.transaction`),
   * so once its changes are collected, its objects refuse use (ClosedError): a write made
   * then could be stored by no commit. (The default connection keeps such a write for its
   * next commit.)
   */
  async commit(meta?: TransactionMeta, last = false): Promise<Tid> {
    if (this.status !== JarStatus.Writable) this.refuse(true);
    if (this.#committing) {
      throw new InvalidArgumentError('a commit of this transaction is already in progress');
    }
    this.#committing = true;
    try {
      const batch = await this.#prepare(last);
      if (batch.pending.length === 0 && batch.guards.length === 0) return this.#snapshot;
      let tid: Tid;
      try {
        tid = await this.#store(batch, meta);
      } catch (error) {
        this.#rollBack(batch);
        throw error;
      }
      this.#finish(batch, tid);
      return tid;
    } finally {
      this.#committing = false;
    }
  }

  /**
   * Collects what to write and encodes it. The walk and the encoding run synchronously
   * together, so the records are one consistent picture of the objects; if the walk finds
   * more new objects than there are oids at hand and the storage cannot hand out enough at
   * once, it waits for oids and starts over.
   */
  async #prepare(last: boolean): Promise<CommitBatch> {
    const [unmerged] = this.#unmerged;
    if (unmerged !== undefined) {
      this.#unmerged.clear();
      throw new ConflictError(
        `write conflict on object ${unmerged.oid} (${classOf(unmerged).name}): it was written while a commit of it was under way, and its class could not merge that write into the state the commit stored after resolving a conflict`,
        { oid: unmerged.oid!, kind: 'write' },
      );
    }
    for (;;) {
      // The handle may have closed while this commit waited (for oids, or for a blob to be
      // staged): it dropped the changes, and a commit of nothing would look like success.
      if (this.status !== JarStatus.Writable) this.refuse(true);
      const { entries, fresh, toStage } = this.#collect();
      if (toStage.length > 0) {
        // Blob content is copied aside first (streams are read now); then start over, since
        // the objects may have changed while the copy was made.
        for (const meta of toStage) {
          const pending = pendingBlob(meta);
          if (pending === undefined) continue;
          takeSourceForStaging(pending.source);
          const staged = await this.storage.stageBlob(pending.source);
          if (pendingBlob(meta) === undefined) {
            // Another transaction staged it meanwhile (one new blob set in two at once): its
            // content is the blob's; this copy goes. (Settled again, the blob lost the
            // content the other had stored.)
            // (A copy that cannot be removed now is no reason to fail the commit: see
            // Storage.commit.)
            await this.storage.discardBlob(staged).catch(() => undefined);
            continue;
          }
          const content = new BlobContent();
          (content as unknown as { [META]: ObjectMeta })[META].target[STAGED as never] =
            staged as never;
          pending.settle(staged.size, content);
          unstoredBlobs.register(content, { storage: this.storage, staged });
        }
        continue;
      }
      if (fresh.length > this.#oidPool.length) {
        // Oids had without waiting keep this walk; waiting would let the objects change.
        // Just those needed: a storage that hands them out at once reserves in blocks of its
        // own, and oids a connection kept would be lost when it closes (oids are never
        // reused: an application may keep one as an id).
        const needed = fresh.length - this.#oidPool.length;
        for (const oid of this.storage.newOidsNow(needed)) this.#oidPool.push(oid);
      }
      if (fresh.length > this.#oidPool.length) {
        const needed = fresh.length - this.#oidPool.length;
        for (const oid of await this.storage.newOids(Math.max(needed, OID_BATCH)))
          this.#oidPool.push(oid);
        continue;
      }
      // The pool is handed out from its front (ascending oids) in one slice, not shift by
      // shift, which would be quadratic in a large commit.
      const oids = this.#oidPool.splice(0, fresh.length);
      fresh.forEach((meta, i) => {
        meta.oid = oids[i]!;
        meta.jar = this;
        meta.serial = 0;
        // In the cache from now on: decoding a record during the commit (conflict
        // resolution) must find this object, not make a second one for its oid.
        this.cache.add(meta);
      });
      const pending = entries;
      try {
        whileEncoding(() => {
          for (const entry of pending) {
            const { meta, staged } = entry;
            const isNew = meta.state === ObjectState.Unsaved;
            entry.isNew = isNew;
            entry.write =
              staged === undefined
                ? {
                    oid: meta.oid!,
                    data: encodeRecord(entry.className, entry.state!, entry.scan!),
                    refs: uniqueOids(entry.refs),
                    expectedTid: isNew ? 0 : meta.serial,
                  }
                : { oid: meta.oid!, data: NO_BYTES, refs: [], expectedTid: 0, blob: staged };
            entry.state = undefined;
            entry.refs = NO_METAS;
            entry.scan = undefined;
          }
        });
      } catch (error) {
        // Nothing was stored: the new objects are new again, their oids free again.
        this.#release(fresh);
        throw error;
      }
      // From here on, a write to one of these objects is a change for the next commit; in
      // the last commit of a transaction, refused (see commit), in this same step, so no
      // write falls between the two. Read-only, not closed: a merge reads objects.
      for (const { meta } of pending) meta.state = ObjectState.Saved;
      this.#changed = new Set();
      if (last) {
        this.#sealed = true;
        this.status = JarStatus.ReadOnly;
      }
      const batch = new CommitBatch(pending);
      for (const [oid, tid] of this.#readGuards) {
        if (batch.byOid(oid) !== undefined) {
          batch.guardedWrites ??= new Set();
          batch.guardedWrites.add(oid);
        } else {
          batch.guards.push({ oid, tid });
        }
      }
      return batch;
    }
  }

  /** Walks the changed objects and the new objects they reach. Changes nothing. */
  #collect() {
    const rootMeta = this.cache.get(ROOT_OID);
    const queue = [...this.#changed].filter((meta) => meta.state === ObjectState.Changed);
    const fresh: ObjectMeta[] = [];
    const walk = ++walks;
    const entries: PendingWrite[] = [];
    const toStage: ObjectMeta[] = [];
    // The object being walked and the references found in it; the callbacks below are made
    // once for the whole walk (a large commit walks many objects).
    let meta: ObjectMeta;
    // Made at the first reference: most objects refer to none.
    let refs: ObjectMeta[] | undefined;
    const where = () => describePath(rootMeta, meta);
    const onReference = (obj: object): string | undefined => {
      const child = (obj as { [META]: ObjectMeta })[META];
      if (child.jar === undefined) {
        if (child.walk !== walk) {
          child.walk = walk;
          fresh.push(child);
          queue.push(child);
        }
      } else if (child.jar !== this) {
        return 'a reference to an object of another transaction or database';
      }
      refs ??= [];
      refs.push(child);
      return undefined;
    };
    for (let i = 0; i < queue.length; i++) {
      meta = queue[i]!;
      const cls = classOf(meta);
      if (cls === BlobContent) {
        const staged = (meta.target as { [STAGED]?: StagedBlob })[STAGED];
        if (staged === undefined) throw new Error('trove: blob content without staged bytes');
        entries.push(
          new PendingWrite(meta, 'trove.BlobContent', undefined, NO_METAS, undefined, staged),
        );
        continue;
      }
      // (A subclass of Blob, made by its from(), is staged as a Blob is.)
      if ((cls === Blob || cls.prototype instanceof Blob) && pendingBlob(meta) !== undefined) {
        toStage.push(meta);
        continue;
      }
      const className = nameOfClass(cls as never);
      if (className === undefined) {
        const name = cls.name || 'Anonymous';
        throw new InvalidArgumentError(
          `cannot store an instance of class ${name} at ${where()}: the class is not registered; register it with @persistent('app.${name}') or registerClass(${name}, 'app.${name}')`,
          { path: where() },
        );
      }
      const state = stateOf(meta);
      refs = undefined;
      const scan = whileEncoding(() => scanState(state, onReference, where, itemsKeyOf(meta)));
      entries.push(new PendingWrite(meta, className, state, refs ?? NO_METAS, scan, undefined));
    }
    return { entries, fresh, toStage };
  }

  /**
   * Commits the batch. Conflicts are resolved by the classes that know how: inside the
   * storage's commit when it offers that (no round trip, no retry), else by resubmitting.
   */
  async #store(batch: CommitBatch, meta: TransactionMeta | undefined): Promise<Tid> {
    const resolveConflicts = (conflicts: readonly ConflictInfo[]): RecordWrite[] =>
      conflicts.map((conflict) => {
        this.#resolveConflict(batch, conflict);
        return batch.byOid(conflict.oid)!.write;
      });
    for (let round = 0; ; round++) {
      try {
        return await this.storage.commit({
          baseTid: this.#snapshot,
          writes: batch.pending.map((entry) => entry.write),
          readCurrent: batch.guards,
          resolveConflicts,
          ...(meta === undefined ? {} : { meta }),
        });
      } catch (error) {
        if (!(error instanceof StorageConflictError)) throw error;
        if (round >= MAX_RESOLUTION_ROUNDS) {
          throw new ConflictError(error.message, {
            oid: error.conflicts[0]?.oid ?? -1,
            kind: error.kind,
            cause: error,
          });
        }
        for (const conflict of error.conflicts) this.#resolveConflict(batch, conflict, error);
      }
    }
  }

  /**
   * The state a persistent class's `static upgradeState(state)` makes of a stored one, as it
   * loads (the stored state as it is, without one): a later version of a class gives old
   * objects the attributes it added, with their defaults. It is given every stored state,
   * those of its own version too. The upgrade is not a change: the stored state stays as it
   * was until the object is written for a change of its own. A collection's items are not
   * the upgrade's: it is given the attributes only, and the items are put back. An
   * InvalidArgumentError if it returns no state (see notAState), or one that holds what
   * cannot be stored or a persistent object not stored yet (made there, it would never be
   * stored, nor its changes); what it throws is thrown, and the object does not load.
   */
  #upgraded(
    cls: Function,
    className: string,
    state: Record<string, unknown>,
  ): Record<string, unknown> {
    const upgrade = (cls as { upgradeState?: unknown }).upgradeState;
    if (typeof upgrade !== 'function') return state;
    // A collection's items are its own (any other class may have an attribute of that name).
    const collection = isCollectionClass(cls);
    const { [ITEMS_KEY]: items, ...rest } = state;
    const attributes = collection ? rest : state;
    // What it was given, as it was (an upgrade may change the state it is given, and return it).
    const given = { ...attributes };
    const result: unknown = upgrade.call(cls, attributes);
    const problem =
      typeof result !== 'object' || result === null ? describe(result) : notAState(result);
    if (problem !== undefined) throw noState('upgradeState', className, problem);
    const upgradedState = result as Record<string, unknown>;
    if (collection && Object.hasOwn(upgradedState, ITEMS_KEY)) {
      throw new InvalidArgumentError(
        `upgradeState of ${className} returned a state with ${ITEMS_KEY}: a collection's items are kept as they are`,
        { argument: 'upgradeState' },
      );
    }
    // Only the attributes the upgrade added or replaced are checked: what it kept of the
    // stored state was read from the file (a full scan of every load made loading three
    // quarters slower). A change it made inside a value it kept is not seen.
    // (Defined, not assigned: an attribute named `__proto__` would set the prototype.)
    const added: Record<string, unknown> = {};
    for (const key of Object.keys(upgradedState)) {
      if (!Object.hasOwn(given, key) || upgradedState[key] !== given[key]) {
        const value = upgradedState[key];
        Object.defineProperty(added, key, { value, enumerable: true, writable: true });
      }
    }
    whileEncoding(() =>
      scanState(
        added,
        (obj) => this.#unstored(obj, 'an upgraded state'),
        () => `upgradeState of ${className}`,
        undefined,
      ),
    );
    return collection && Object.hasOwn(state, ITEMS_KEY)
      ? { ...upgradedState, [ITEMS_KEY]: items }
      : upgradedState;
  }

  /** Why `obj`, referred to from a state `what` returned, cannot be stored; undefined if it can. */
  #unstored(obj: object, what: string): string | undefined {
    const child = (obj as { [META]: ObjectMeta })[META];
    return child.jar !== this || child.oid === undefined
      ? `a reference to an object not stored (${what} may only refer to stored objects)`
      : undefined;
  }

  /** Replaces one conflicting write by its class's resolution, or throws ConflictError. */
  #resolveConflict(batch: CommitBatch, conflict: ConflictInfo, error?: StorageConflictError): void {
    const entry = batch.byOid(conflict.oid);
    const fail: (why: string, cause?: unknown) => never = (why, cause = error) => {
      throw new ConflictError(
        `${conflict.kind} conflict on object ${conflict.oid}${entry ? ` (${entry.className})` : ''}: ${why}`,
        {
          oid: conflict.oid,
          kind: conflict.kind,
          cause,
          ...(entry ? { className: entry.className } : {}),
        },
      );
    };
    if (conflict.kind === 'read' || entry === undefined) {
      fail('it was changed by another transaction after this one read it');
    }
    if (batch.guardedWrites?.has(conflict.oid) === true) {
      fail('it was changed by another transaction, and this one guarded it with readCurrent');
    }
    const cls = classOf(entry.meta) as Function & { resolveConflict?: ResolveConflict };
    const committed = conflict.committed;
    if (typeof cls.resolveConflict !== 'function') {
      fail('another transaction changed it, and its class has no resolveConflict');
    }
    if (committed === undefined || entry.write.expectedTid === 0) {
      fail('it was created or removed concurrently');
    }
    const expected = entry.write.expectedTid;
    let old: { readonly tid: Tid; readonly data: Uint8Array } | undefined = this.#bases.get(
      entry.meta,
    );
    if (old?.tid !== expected) {
      try {
        old = this.storage.loadBefore(conflict.oid, expected + 1);
      } catch (cause) {
        // Removed by a pack (a read conflict: retried on a fresh snapshot, it merges no more).
        if (!(cause instanceof ConflictError)) throw cause;
        fail('the revision it was changed from is no longer kept', cause);
      }
    }
    if (old === undefined || old.tid !== expected) {
      fail('the revision it was changed from is no longer kept');
    }
    const decode = (data: Uint8Array) => decodeRecord(data, this.#resolve, conflict.oid).state;
    // The stored revisions as this version of the class loads them (this one's own state was
    // loaded so, and written by it). What upgradeState throws is its own failure, not the
    // merge's: it is not a conflict to retry.
    const oldState = this.#upgraded(cls, entry.className, decode(old.data));
    const committedState = this.#upgraded(cls, entry.className, decode(committed.data));
    let merged: Record<string, unknown> | undefined | null;
    try {
      merged = cls.resolveConflict(oldState, committedState, decode(entry.write.data));
    } catch (cause) {
      fail('resolveConflict threw', cause);
    }
    if (typeof merged !== 'object' || merged === null) {
      fail('resolveConflict could not merge the changes');
    }
    const problem = notAState(merged);
    if (problem !== undefined) {
      fail(
        'resolveConflict returned no state',
        noState('resolveConflict', entry.className, problem),
      );
    }
    const refs: ObjectMeta[] = [];
    let data: Uint8Array;
    try {
      data = whileEncoding(() => {
        const scan = scanState(
          merged,
          (obj) => {
            const refused = this.#unstored(obj, 'a resolved state');
            if (refused === undefined) refs.push((obj as { [META]: ObjectMeta })[META]);
            return refused;
          },
          () => `resolveConflict of ${entry.className}`,
          itemsKeyOf(entry.meta),
        );
        return encodeRecord(entry.className, merged, scan);
      });
    } catch (cause) {
      fail('the state resolveConflict returned cannot be stored', cause);
    }
    entry.prepared ??= entry.write.data;
    entry.write = {
      oid: conflict.oid,
      data,
      refs: uniqueOids(refs),
      expectedTid: committed.tid,
    };
    entry.resolved = data;
  }

  /** Makes a committed batch the objects' saved state. */
  #finish(batch: CommitBatch, tid: Tid): void {
    for (const entry of batch.pending) {
      const meta = entry.meta;
      const previousSize = meta.size;
      meta.serial = tid;
      if (resolvesConflicts(meta)) this.#keepBase(meta, tid, entry.write.data);
      meta.size = entry.write.data.byteLength + OBJECT_OVERHEAD_BYTES;
      let refused = false;
      if (entry.resolved !== undefined) {
        const writtenMeanwhile = meta.state === ObjectState.Changed;
        try {
          this.#installResolved(entry);
        } catch {
          // The commit is stored: the class refusing the merged state (a setter that throws)
          // must not report it failed, which would have it stored again. The object reloads
          // the stored state when next used, where such a refusal is reported; writes made
          // to it during the commit are lost with its state, and the next commit says so.
          refused = true;
          if (writtenMeanwhile) this.#unmerged.add(meta);
        }
      }
      if (entry.staged !== undefined) {
        // The storage has taken the staged bytes; the content object is a ghost for good.
        delete (meta.target as { [STAGED]?: StagedBlob })[STAGED];
        meta.size = 0;
      }
      this.cache.resized(meta, previousSize);
      if (refused) this.cache.unload(meta);
    }
    this.#readGuards.clear();
  }

  /**
   * Makes the state conflict resolution committed the object's own. An object written again
   * while the commit was under way holds that write on top of the state first encoded, not
   * of the one committed: its class merges the write into the committed state (as a
   * conflict of the prepared state, the committed one and the current one), and the result
   * stays a change for the next commit. If that merge fails, the write cannot be kept
   * without undoing another transaction's change: the object shows the committed state,
   * and the next commit fails with ConflictError (rather than lose either silently).
   */
  #installResolved(entry: PendingWrite): void {
    const meta = entry.meta;
    const cls = classOf(meta) as Function & { resolveConflict?: ResolveConflict };
    const decode = (data: Uint8Array) => decodeRecord(data, this.#resolve, meta.oid).state;
    const committed = decode(entry.resolved!);
    if (meta.state === ObjectState.Changed && entry.prepared !== undefined) {
      let rebased: Record<string, unknown> | undefined | null;
      try {
        rebased = cls.resolveConflict?.(decode(entry.prepared), committed, stateOf(meta));
      } catch {
        rebased = undefined;
      }
      if (typeof rebased === 'object' && rebased !== null && notAState(rebased) === undefined) {
        installState(meta, cls, rebased);
        meta.state = ObjectState.Changed;
        return;
      }
      this.#unmerged.add(meta);
    }
    installState(meta, cls, committed);
  }

  /** Undoes the bookkeeping of a batch that was not committed. */
  #rollBack(batch: CommitBatch): void {
    const fresh: ObjectMeta[] = [];
    for (const { meta, isNew } of batch.pending) {
      if (isNew) {
        fresh.push(meta);
      } else {
        meta.state = ObjectState.Changed;
        this.#changed.add(meta);
      }
    }
    this.#release(fresh);
  }

  /** Makes objects that were about to be stored new again, and their oids free again. */
  #release(fresh: readonly ObjectMeta[]): void {
    const oids: Oid[] = [];
    for (const meta of fresh) {
      oids.push(meta.oid!);
      this.cache.remove(meta);
      this.#changed.delete(meta);
      meta.oid = undefined;
      meta.jar = undefined;
      meta.state = ObjectState.Unsaved;
    }
    // Oids of objects that were not stored were never used: hand them out again.
    this.#oidPool = oids.sort((a, b) => a - b).concat(this.#oidPool);
  }
}

/**
 * The stored state of a new, empty root (a PersistentMap).
 *
 * @internal
 */
export function emptyRootData(): Uint8Array {
  const root = new PersistentMap();
  return encodeRecord(nameOfClass(PersistentMap)!, stateOf(metaOf(root)!), {
    sharedValues: false,
    exoticValues: false,
    maps: true,
    valueClasses: false,
  });
}

/** Why the objects of a transaction that ended refuse use. */
const ENDED = 'the transaction these objects belong to has ended';
/** Why the objects of a `db.transaction` refuse use once its function has returned. */
const ENDED_AT_COMMIT =
  'the transaction these objects belong to has ended: its function returned, and its commit stored what it had changed by then (await everything the function starts before it returns)';

/** Bytes of merge bases a connection keeps at most (see Connection#bases). */
const BASES_BYTES = 4 * 1024 * 1024;
/** Merge bases a connection keeps at most. */
const BASES_COUNT = 1024;

/** The refusal of what a class's `method` returned in place of a state (see notAState). */
function noState(method: string, className: string, problem: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${method} of ${className} returned ${problem}, not a state: a plain object of attributes, as it was given, returned synchronously`,
    { argument: method },
  );
}

/** True for a built-in collection class or a subclass of one (its state holds its items). */
function isCollectionClass(cls: Function): boolean {
  return [PersistentMap, PersistentList, PersistentSet].some(
    (collection) => cls === collection || cls.prototype instanceof collection,
  );
}

/**
 * What a value resolveConflict returned is, when it is no state (undefined when it is one):
 * states are plain objects, as the ones it is given. Anything else would be stored as if it
 * were one (a promise or a date as no attributes at all, an array as attributes 0, 1, ..., a
 * stored object as a copy of its attributes). A promise (an async resolveConflict) is given a
 * handler: its rejection is this refusal's, not an unhandled one that ends the process (of
 * any realm: a native promise's `then` is called, never a thenable's own).
 */
function notAState(value: object): string | undefined {
  try {
    const proto = Object.getPrototypeOf(value) as object | null;
    if (proto === Object.prototype || proto === null) return undefined;
    // A plain object of another realm (a vm context's) is a plain object too.
    if (Object.getPrototypeOf(proto) === null && proto.constructor?.name === 'Object') {
      return undefined;
    }
    if (types.isPromise(value)) {
      Promise.prototype.then.call(value, undefined, () => undefined);
      return 'a promise (it must be synchronous)';
    }
    // Another thenable is not called: its `then` is the application's code.
    if (typeof (value as { then?: unknown }).then === 'function') return 'a thenable';
    if (Array.isArray(value)) return 'an array';
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== ''
      ? `an instance of ${name}`
      : 'an object of a class';
  } catch {
    // A proxy's trap or a getter that throws: whatever it is, it is not a plain object.
    return 'an object that could not be looked at';
  }
}

/** True if the class of `meta`'s object merges concurrent changes (has resolveConflict). */
function resolvesConflicts(meta: ObjectMeta): boolean {
  const cls = classOf(meta) as Function & { resolveConflict?: unknown };
  return typeof cls.resolveConflict === 'function';
}
