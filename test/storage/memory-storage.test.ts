import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  type ChangesSince,
  type CommitRequest,
  type HistoricalRecord,
  type IntegrityReport,
  MemoryStorage,
  type Oid,
  type PackResult,
  type StagedBlob,
  Storage,
  type StorageStats,
  type StoredRecord,
  type Tid,
  type TransactionRecord,
} from 'trove';
import { type OpenOptions, runStorageConformance, type StorageHarness } from './conformance.js';
import { commit, expectThrows, plainChanges, put, ROOT } from './storage-assertions.js';

runStorageConformance('MemoryStorage', async (options?: OpenOptions) => {
  const storage = new MemoryStorage({ readOnly: options?.readOnly === true });
  return { storage, cleanup: () => storage.close() };
});

/**
 * A storage whose data outlives its instances: each instance is a view of one MemoryStorage
 * that stays open. It lets the conformance suite's persistence tests run (and be checked)
 * before a file backend exists; only that group runs, the rest is covered above.
 */
class ReopenableMemoryStorage extends Storage {
  readonly kind = 'memory';
  readonly #data: MemoryStorage;
  #commits = 0;

  constructor(data: MemoryStorage, readOnly: boolean) {
    super(readOnly);
    this.#data = data;
  }

  protected _load(oid: Oid): StoredRecord {
    return this.#data.load(oid);
  }
  protected _loadBefore(oid: Oid, tid: Tid): HistoricalRecord | undefined {
    return this.#data.loadBefore(oid, tid);
  }
  protected _lastTid(): Tid {
    return this.#data.lastTid();
  }
  protected _newOids(count: number): Promise<Oid[]> {
    return this.#data.newOids(count);
  }
  protected async _commit(request: CommitRequest): Promise<Tid> {
    const tid = await this.#data.commit(request);
    this.#commits++;
    return tid;
  }
  protected _changesSince(tid: Tid): ChangesSince {
    return this.#data.changesSince(tid);
  }
  protected _pack(keepHistorySince: Tid | undefined): Promise<PackResult> {
    return this.#data.pack(keepHistorySince === undefined ? {} : { keepHistorySince });
  }
  protected _iterator(fromTid: Tid): AsyncIterable<TransactionRecord> {
    return this.#data.iterator(fromTid);
  }
  protected _checkpoint(): Promise<void> {
    return this.#data.checkpoint();
  }
  protected _integrityCheck(): Promise<IntegrityReport> {
    return this.#data.integrityCheck();
  }
  protected _stats(): StorageStats {
    return { ...this.#data.stats(), commits: this.#commits };
  }
  protected async _close(): Promise<void> {
    // The data stays for the next instance.
  }
  protected _stageBlob(chunks: AsyncIterable<Uint8Array>): Promise<StagedBlob> {
    return this.#data.stageBlob(chunks);
  }
  protected _discardBlob(blob: StagedBlob): Promise<void> {
    return this.#data.discardBlob(blob);
  }
  protected _openBlob(oid: Oid): Readable {
    return this.#data.openBlob(oid);
  }
}

runStorageConformance(
  'MemoryStorage behind a reopenable view (checks the persistence tests)',
  async (options?: OpenOptions): Promise<StorageHarness> => {
    const data = new MemoryStorage();
    const opened: Storage[] = [new ReopenableMemoryStorage(data, options?.readOnly === true)];
    return {
      storage: opened[0]!,
      async reopen(again?: OpenOptions) {
        const storage = new ReopenableMemoryStorage(data, again?.readOnly === true);
        opened.push(storage);
        return storage;
      },
      async cleanup() {
        for (const storage of opened) await storage.close();
        await data.close();
      },
    };
  },
  { persistent: true, groups: ['persistence'] },
);

describe('MemoryStorage specifics', () => {
  it('is kind memory, writable unless asked, and holds nothing at first', () => {
    const storage = new MemoryStorage();
    assert.equal(storage.kind, 'memory');
    assert.equal(storage.readOnly, false);
    assert.equal(new MemoryStorage({ readOnly: true }).readOnly, true);
    assert.equal(new MemoryStorage({}).readOnly, false);
    assert.equal(storage.lastTid(), 0);
  });

  it('refuses options of the wrong type with InvalidArgumentError', () => {
    for (const options of [null, 'read-only', 1, { readOnly: 'yes' }, { readOnly: 1 }]) {
      expectThrows(
        () => new MemoryStorage(options as never),
        'TROVE_INVALID_ARGUMENT',
        `new MemoryStorage(${JSON.stringify(options)})`,
      );
    }
  });

  it('instances share nothing', async () => {
    const one = new MemoryStorage();
    const two = new MemoryStorage();
    await commit(one, [put(ROOT, 'one')]);
    expectThrows(() => two.load(ROOT), 'TROVE_NOT_FOUND');
    assert.equal(two.lastTid(), 0);
  });

  it('changesSince answers "flush" for snapshots older than a pack, [] for the newest', async () => {
    const storage = new MemoryStorage();
    const [a] = (await storage.newOids(1)) as [Oid];
    const t1 = await commit(storage, [put(ROOT, 'r', 0, [a]), put(a, 'a1')]);
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    const t3 = await commit(storage, [put(a, 'a3', t2)]);
    await storage.pack({ keepHistorySince: t2 });
    assert.equal(storage.changesSince(0), 'flush');
    assert.equal(storage.changesSince(t1), 'flush');
    assert.deepEqual(plainChanges(storage.changesSince(t2)), [{ tid: t3, oids: [a] }]);
    await storage.pack();
    assert.equal(storage.changesSince(t2), 'flush');
    assert.deepEqual(plainChanges(storage.changesSince(t3)), []);
  });

  // Found in review: the pack handed every transaction left to a splice as one argument,
  // and ran out of stack with some 125,000 of them (RangeError).
  it('packs a log of 200,000 transactions', async () => {
    const storage = new MemoryStorage();
    const count = 200_000;
    const oids = await storage.newOids(count);
    for (const oid of oids) await commit(storage, [put(oid, 'x')]);
    await commit(storage, [put(ROOT, 'root', 0, oids)]);
    const result = await storage.pack();
    assert.equal(result.objectsKept, count + 1);
    assert.equal(storage.load(oids[count - 1]!).tid > 0, true);
  });

  // What its backup relies on: the history horizon and the log are taken at one moment.
  it('an iteration shows the log as it was when the iteration was made', async () => {
    const storage = new MemoryStorage();
    const [a] = (await storage.newOids(1)) as [Oid];
    const t1 = await commit(storage, [put(ROOT, 'r', 0, [a]), put(a, 'a1')]);
    await commit(storage, [put(a, 'a2', t1)]);
    const iteration = storage.iterator();
    await storage.pack();
    await commit(storage, [put(ROOT, 'r2', t1, [])]);
    const seen: TransactionRecord[] = [];
    for await (const transaction of iteration) seen.push(transaction);
    assert.deepEqual(
      seen.map((t) => t.records.map((r) => Buffer.from(r.data).toString()).sort()),
      [['a1', 'r'], ['a2']],
    );
  });

  it('keeps exactly the revisions current at or after the cut', async () => {
    const storage = new MemoryStorage();
    const [a] = (await storage.newOids(1)) as [Oid];
    const t1 = await commit(storage, [put(ROOT, 'r', 0, [a]), put(a, 'a1')]);
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    const t3 = await commit(storage, [put(a, 'a3', t2)]);
    const result = await storage.pack({ keepHistorySince: t3 - 1 });
    assert.equal(result.revisionsRemoved, 1, 'only a1: a2 is current at the cut');
    assert.equal(storage.loadBefore(a, t3)?.tid, t2);
    const tooOld = expectThrows(() => storage.loadBefore(a, t2), 'TROVE_CONFLICT');
    assert.equal((tooOld as { kind?: string }).kind, 'read');
    assert.equal(storage.loadBefore(ROOT, t2)?.tid, t1, 'the root is current since t1');
  });

  it('counts the revisions of removed objects as removed revisions', async () => {
    const storage = new MemoryStorage();
    const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
    const t1 = await commit(storage, [put(ROOT, 'r', 0, [a]), put(a, 'a1'), put(b, 'b1')]);
    await commit(storage, [put(b, 'b2', t1), put(a, 'a2', t1)]);
    const result = await storage.pack();
    assert.deepEqual(
      {
        kept: result.objectsKept,
        removed: result.objectsRemoved,
        revisions: result.revisionsRemoved,
      },
      { kept: 2, removed: 1, revisions: 3 },
    );
    assert.equal(result.bytesBefore, 2 + 2 + 2 + 1 + 2);
    assert.equal(result.bytesAfter, 1 + 2);
  });
});
