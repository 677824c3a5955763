/**
 * MemoryStorage: the storage contract held in memory, with full MVCC history until a pack.
 * For tests, caches of other storages, and programs whose data need not outlive them.
 *
 * @module
 */

import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { afterTimers, TurnBudget } from '../util/event-loop.js';
import { expectOptionalBoolean, expectOptions } from '../util/validate.js';
import { bytesStream } from './bytes-stream.js';
import { nextTid } from './next-tid.js';
import { danglingRefs, reachableFromRoot } from './reachability.js';
import { snapshotTooOld } from './snapshot-too-old.js';
import {
  type ConflictInfo,
  checkOidSpace,
  type IntegrityReport,
  Storage,
  settleConflicts,
} from './storage.js';
import { keptMeta } from './transaction-meta.js';
import type {
  ChangesSince,
  CommitRequest,
  HistoricalRecord,
  Oid,
  PackResult,
  RecordWrite,
  StagedBlob,
  StorageStats,
  StoredRecord,
  Tid,
  TransactionMeta,
  TransactionRecord,
} from './types.js';

/** Never changed once committed: a pack replaces it (iterations and backups hold it). */
interface MemoryTransaction {
  readonly tid: Tid;
  readonly meta: TransactionMeta;
  readonly records: readonly StoredRecord[];
}

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Refuse writes. */
  readOnly?: boolean | undefined;
}

/**
 * A stored record as handed to a caller: its bytes copied, as a file storage's are read
 * afresh, so that a caller changing them cannot change what is stored (the refs are frozen).
 */
function handedOut(record: StoredRecord): StoredRecord {
  return { ...record, data: copyOf(record.data) };
}

/** A copy of `bytes` (a Buffer's own `slice` would be a view of the same memory). */
function copyOf(bytes: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes);
}

/** How long commits may keep one turn of the event loop (as a file storage's may). */
const COMMIT_MS_PER_TURN = 10;

/** The storage contract held in memory. Nothing survives the process. */
export class MemoryStorage extends Storage {
  /** What kind of storage this is: 'memory'. */
  readonly kind = 'memory';
  /** Every kept revision of each object, oldest first. */
  readonly #revisions = new Map<Oid, StoredRecord[]>();
  /** Every kept transaction, oldest first. */
  #transactions: MemoryTransaction[] = [];
  #lastTid: Tid = 0;
  #nextOid: Oid = 1;
  #commits = 0;
  #bytes = 0;
  /**
   * Reads of snapshots at or before this tid may need revisions a pack removed; changes
   * before it are no longer listed.
   */
  #horizon: Tid = 0;
  readonly #commitTurn = new TurnBudget(COMMIT_MS_PER_TURN);

  /** An empty storage in memory (InvalidArgumentError for an options key it does not know). */
  constructor(options?: MemoryStorageOptions) {
    const opts = expectOptions<MemoryStorageOptions>(options, 'options', { readOnly: true });
    super(expectOptionalBoolean(opts.readOnly, 'options.readOnly') === true);
  }

  protected _load(oid: Oid): StoredRecord {
    const revisions = this.#revisions.get(oid);
    if (revisions === undefined) throw new NotFoundError(`no object with oid ${oid}`);
    const record = revisions[revisions.length - 1]!;
    if (record.blob === true) {
      throw new InvalidArgumentError(`object ${oid} is blob content; read it through its Blob`, {
        argument: 'oid',
      });
    }
    return handedOut(record);
  }

  protected _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    const revisions = this.#revisions.get(oid);
    if (revisions !== undefined) {
      for (let i = revisions.length - 1; i >= 0; i--) {
        const revision = revisions[i]!;
        if (revision.tid < tid) {
          return { ...handedOut(revision), nextTid: revisions[i + 1]?.tid };
        }
      }
    }
    if (this.#horizon > 0 && tid <= this.#horizon) throw snapshotTooOld(oid, tid);
    return undefined;
  }

  protected _lastTid(): Tid {
    return this.#lastTid;
  }

  protected async _newOids(count: number): Promise<Oid[]> {
    return this._newOidsNow(count);
  }

  protected override _newOidsNow(count: number): Oid[] {
    checkOidSpace(this.#nextOid, count);
    const first = this.#nextOid;
    this.#nextOid += count;
    return Array.from({ length: count }, (_, i) => first + i);
  }

  protected async _commit(request: CommitRequest): Promise<Tid> {
    // Commits here never wait for I/O: back to back, they would keep timers from running.
    if (this.#commitTurn.isUp()) await afterTimers();
    const writes = settleConflicts(request, (current) => this.#conflicts(current, request));
    const tid = nextTid(this.#lastTid);
    const records = writes.map((write) => {
      // Copy: callers (the codec) reuse their buffers after the commit returns.
      const content = write.blob === undefined ? undefined : this.#blobs.get(write.blob);
      const record: StoredRecord = {
        oid: write.oid,
        tid,
        data: content ?? copyOf(write.data),
        refs: Object.freeze([...write.refs]),
        ...(content === undefined ? {} : { blob: true }),
      };
      let revisions = this.#revisions.get(write.oid);
      if (revisions === undefined) {
        revisions = [];
        this.#revisions.set(write.oid, revisions);
      }
      revisions.push(record);
      this.#bytes += record.data.byteLength;
      if (write.oid >= this.#nextOid) this.#nextOid = write.oid + 1;
      return record;
    });
    this.#transactions.push({ tid, meta: keptMeta(request.meta), records });
    this.#lastTid = tid;
    this.#commits++;
    return tid;
  }

  protected _changesSince(tid: Tid): ChangesSince {
    if (tid < this.#horizon) return 'flush';
    const changes = [];
    for (let i = this.#transactions.length - 1; i >= 0; i--) {
      const transaction = this.#transactions[i]!;
      if (transaction.tid <= tid) break;
      changes.push({ tid: transaction.tid, oids: transaction.records.map((r) => r.oid) });
    }
    return changes.reverse();
  }

  protected async _pack(keepHistorySince: Tid | undefined): Promise<PackResult> {
    const bytesBefore = this.#bytes;
    const cut = Math.min(keepHistorySince ?? this.#lastTid, this.#lastTid);
    /** The revisions a pack keeps: those after the cut, and the one current at the cut. */
    const keptRevisions = (revisions: StoredRecord[]): StoredRecord[] => {
      let first = revisions.length - 1;
      while (first > 0 && revisions[first]!.tid > cut) first--;
      return revisions.slice(first);
    };
    // Reachable from the root in any kept revision: a snapshot after the cut must find
    // every object it could reach then, even one unreachable now.
    const reachable = reachableFromRoot((oid) => {
      const revisions = this.#revisions.get(oid);
      return revisions === undefined ? undefined : keptRevisions(revisions).flatMap((r) => r.refs);
    });
    let objectsRemoved = 0;
    let revisionsRemoved = 0;
    const kept = new Set<StoredRecord>();
    for (const [oid, revisions] of this.#revisions) {
      if (!reachable.has(oid)) {
        objectsRemoved++;
        revisionsRemoved += revisions.length;
        this.#revisions.delete(oid);
        continue;
      }
      const keep = keptRevisions(revisions);
      revisionsRemoved += revisions.length - keep.length;
      this.#revisions.set(oid, keep);
      for (const record of keep) kept.add(record);
    }
    let bytesAfter = 0;
    for (const record of kept) bytesAfter += record.data.byteLength;
    // New transactions, not the old ones changed: an iteration or a backup under way goes on
    // over the log as it was when it began (as a file storage's goes on over its old file).
    // (A transaction left with no records goes, as does a commit of read guards alone.)
    const remaining: MemoryTransaction[] = [];
    for (const transaction of this.#transactions) {
      const records = transaction.records.filter((record) => kept.has(record));
      if (records.length === 0) continue;
      remaining.push(
        records.length === transaction.records.length ? transaction : { ...transaction, records },
      );
    }
    // Replaced, not spliced: a splice takes each transaction as an argument, and ran out of
    // stack with some 125,000 of them.
    this.#transactions = remaining;
    this.#bytes = bytesAfter;
    this.#horizon = Math.max(this.#horizon, cut);
    if (objectsRemoved > 0) this.invalidateCaches();
    return {
      objectsKept: reachable.size,
      objectsRemoved,
      revisionsRemoved,
      bytesBefore,
      bytesAfter,
    };
  }

  protected _iterator(fromTid: Tid): AsyncIterable<TransactionRecord> {
    // The log as it is now, taken when the iteration is made (a backup reads the history
    // horizon at the same moment), not at its first step: commits and packs after do not
    // change it.
    const transactions = [...this.#transactions];
    return (async function* () {
      for (const transaction of transactions) {
        // A commit of read guards alone wrote nothing (a file storage's log skips it too).
        if (transaction.tid < fromTid || transaction.records.length === 0) continue;
        yield {
          tid: transaction.tid,
          meta: { ...transaction.meta },
          records: transaction.records.map(handedOut),
        };
      }
    })();
  }

  protected override _historyHorizon(): Tid {
    return this.#horizon;
  }

  protected async _checkpoint(): Promise<void> {
    // Nothing to save: a memory storage has no index file.
  }

  protected async _integrityCheck(): Promise<IntegrityReport> {
    const current = [...this.#revisions].map(
      ([oid, revisions]) => [oid, revisions[revisions.length - 1]!.refs] as const,
    );
    const failures = danglingRefs(current, (oid) => this.#revisions.has(oid));
    return { ok: failures.length === 0, failures };
  }

  protected _stats(): StorageStats {
    return {
      kind: this.kind,
      objects: this.#revisions.size,
      lastTid: this.#lastTid,
      commits: this.#commits,
      bytes: this.#bytes,
    };
  }

  protected async _close(): Promise<void> {
    this.#revisions.clear();
    this.#transactions.length = 0;
  }

  #conflicts(writes: readonly RecordWrite[], request: CommitRequest): ConflictInfo[] {
    const conflicts: ConflictInfo[] = [];
    const currentTid = (oid: Oid) => this.#current(oid)?.tid ?? 0;
    for (const write of writes) {
      if (currentTid(write.oid) !== write.expectedTid) {
        conflicts.push({
          oid: write.oid,
          kind: 'write',
          expectedTid: write.expectedTid,
          committed: this.#current(write.oid),
        });
      }
    }
    for (const guard of request.readCurrent ?? []) {
      if (currentTid(guard.oid) !== guard.tid) {
        conflicts.push({
          oid: guard.oid,
          kind: 'read',
          expectedTid: guard.tid,
          committed: this.#current(guard.oid),
        });
      }
    }
    // A ref to an object that no longer exists (removed by a pack after the writer's
    // snapshot) would leave a dangling ref; refuse it as a read conflict so a retry on a
    // fresh snapshot sees the object gone.
    const written = new Set(writes.map((w) => w.oid));
    for (const write of writes) {
      for (const ref of write.refs) {
        if (!written.has(ref) && !this.#revisions.has(ref)) {
          conflicts.push({ oid: ref, kind: 'read', expectedTid: 0, committed: undefined });
        }
      }
    }
    return conflicts;
  }

  readonly #blobs = new WeakMap<StagedBlob, Uint8Array>();

  protected async _stageBlob(
    chunks: AsyncIterable<Uint8Array>,
    stopped: AbortSignal,
  ): Promise<StagedBlob> {
    const parts: Uint8Array[] = [];
    for await (const chunk of chunks) {
      // Closed meanwhile: the rest of a source that goes on is not kept.
      if (stopped.aborted) break;
      parts.push(Uint8Array.from(chunk));
    }
    const bytes = Buffer.concat(parts);
    const staged: StagedBlob = { size: bytes.byteLength };
    this.#blobs.set(staged, bytes);
    return staged;
  }

  protected async _discardBlob(blob: StagedBlob): Promise<void> {
    this.#blobs.delete(blob);
  }

  protected _openBlob(oid: Oid): Readable {
    const record = this.#current(oid);
    if (record?.blob !== true) throw new NotFoundError(`no blob content with oid ${oid}`);
    return bytesStream(record.data);
  }

  #current(oid: Oid): StoredRecord | undefined {
    const revisions = this.#revisions.get(oid);
    return revisions?.[revisions.length - 1];
  }
}
