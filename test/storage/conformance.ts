/**
 * The storage conformance suite: one suite that every storage backend runs (MemoryStorage,
 * FileStorage, ClientStorage, ...). It checks the storage contract of DESIGN.md and
 * src/storage/storage.ts through the public API only, asserting behaviour and error codes,
 * never messages or timings.
 *
 * A backend's test file calls {@link runStorageConformance} with a factory that makes a fresh
 * harness (an empty storage, plus whatever it needs to clean up) for every test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConflictError,
  type Oid,
  type Storage,
  type Tid,
  type TransactionRecord,
  tidToDate,
} from 'trove';
import {
  assertOldReadCorrectOrTooOld,
  assertRecord,
  bytes,
  captureState,
  collect,
  commit,
  commitConflicts,
  conflictAbout,
  conflictsOf,
  expectIterationFails,
  expectRejects,
  expectThrows,
  MAX_OID,
  newOidsNow,
  plain,
  plainChanges,
  plainTransactions,
  probeLoadBefore,
  put,
  ROOT,
} from './storage-assertions.js';
import { checkStorageAgainstModel } from './storage-model.js';

/** How a harness opens a storage. */
export interface OpenOptions {
  /** Open read-only: commits, newOids and pack must fail with ReadOnlyError. */
  readonly readOnly?: boolean;
}

/** One test's storage and what the test may do with it. */
export interface StorageHarness {
  /**
   * The storage under test: empty, opened with the options the factory was given. A read-only
   * harness holds an empty read-only storage (a file backend creates an empty database first,
   * then opens it read-only).
   */
  readonly storage: Storage;
  /**
   * Opens the data of this harness again as a new storage instance and returns it. Only for
   * backends whose data outlives an instance (see {@link ConformanceOptions.persistent}). The
   * suite closes the previous instance before calling it; `reopen` may be called many times.
   */
  reopen?(options?: OpenOptions): Promise<Storage>;
  /** Closes every instance this harness opened (if still open) and removes its files. */
  cleanup(): Promise<void>;
}

/** Makes a fresh harness for one test. */
export type StorageFactory = (options?: OpenOptions) => Promise<StorageHarness>;

/** The groups of the suite, for running part of it while working on a backend. */
export const conformanceGroups = [
  'load',
  'tids',
  'loadBefore',
  'newOids',
  'commit',
  'changesSince',
  'pack',
  'iterator',
  'integrityCheck',
  'stats',
  'close',
  'readOnly',
  'arguments',
  'persistence',
  'model',
] as const;

/** One group of the suite. */
export type ConformanceGroup = (typeof conformanceGroups)[number];

/** What the backend under test can do, and how much of the suite to run. */
export interface ConformanceOptions {
  /**
   * The backend keeps its data across instances: every harness has `reopen`, and the
   * persistence tests run (data, history and oid allocation survive a close and reopen; a
   * read-only reopen sees the data). Without it they are not registered: a capability, not a skip.
   */
  readonly persistent?: boolean;
  /** Runs of the property test (default 50). Lower it for backends that are slow to create. */
  readonly propertyRuns?: number;
  /** Run only these groups (default all). */
  readonly groups?: readonly ConformanceGroup[];
}

type TestBody = (storage: Storage, harness: StorageHarness) => Promise<void>;

/** A captured state without what differs between instances (commit counts, change lists). */
function withoutChanges(state: Awaited<ReturnType<typeof captureState>>) {
  return { ...state, changes: undefined, commits: 0 };
}

/**
 * Registers the conformance suite for one backend as a `describe` block named after it.
 *
 * @param name The backend's name, for example `MemoryStorage`.
 * @param create Makes a fresh harness (an empty storage) for each test.
 */
export function runStorageConformance(
  name: string,
  create: StorageFactory,
  options: ConformanceOptions = {},
): void {
  const wanted = new Set<ConformanceGroup>(options.groups ?? conformanceGroups);

  /** Registers a test that gets a fresh storage and always cleans up. */
  const test = (title: string, body: TestBody, open?: OpenOptions): void => {
    it(title, async () => {
      const harness = await create(open);
      try {
        await body(harness.storage, harness);
      } finally {
        await harness.cleanup();
      }
    });
  };
  const group = (id: ConformanceGroup, register: () => void): void => {
    if (wanted.has(id)) describe(id, register);
  };

  describe(`storage conformance: ${name}`, () => {
    group('load', () => loadTests(test));
    group('tids', () => tidTests(test));
    group('loadBefore', () => loadBeforeTests(test));
    group('newOids', () => newOidTests(test));
    group('commit', () => commitTests(test));
    group('changesSince', () => changesSinceTests(test));
    group('pack', () => packTests(test));
    group('iterator', () => iteratorTests(test));
    group('integrityCheck', () => integrityTests(test));
    group('stats', () => statsTests(test));
    group('close', () => closeTests(test));
    group('readOnly', () => readOnlyTests(test));
    group('arguments', () => argumentTests(test));
    if (options.persistent === true) group('persistence', () => persistenceTests(test));
    group('model', () => {
      it('agrees with a model of revisions over random commit sequences', async () => {
        await checkStorageAgainstModel(async () => {
          const harness = await create();
          return { storage: harness.storage, cleanup: () => harness.cleanup() };
        }, options.propertyRuns ?? 50);
      });
    });
  });
}

type Register = (title: string, body: TestBody, open?: OpenOptions) => void;

/** A small graph: root -> a -> b, committed in one transaction. */
async function rootAB(storage: Storage) {
  const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
  const tid = await commit(storage, [
    put(ROOT, 'root', 0, [a]),
    put(a, 'a1', 0, [b]),
    put(b, 'b1'),
  ]);
  return { a, b, tid };
}

/** Closes `storage` and reopens the harness's data. */
async function reopen(
  harness: StorageHarness,
  storage: Storage,
  options?: OpenOptions,
): Promise<Storage> {
  assert.ok(harness.reopen, 'a persistent backend harness provides reopen');
  await storage.close();
  return harness.reopen(options);
}

function loadTests(test: Register): void {
  test('a fresh storage is empty', async (storage) => {
    assert.equal(storage.lastTid(), 0);
    expectThrows(() => storage.load(ROOT), 'TROVE_NOT_FOUND', 'load(root)');
    expectThrows(() => storage.load(1), 'TROVE_NOT_FOUND', 'load(1)');
    assert.deepEqual(plainChanges(storage.changesSince(0)), []);
    assert.deepEqual(await collect(storage.iterator()), []);
    assert.equal(storage.readOnly, false);
    assert.equal(storage.closed, false);
  });

  test('load returns the committed record: oid, tid, data and refs', async (storage) => {
    const { a, b, tid } = await rootAB(storage);
    assertRecord(storage.load(ROOT), { oid: ROOT, tid, data: 'root', refs: [a] });
    assertRecord(storage.load(a), { oid: a, tid, data: 'a1', refs: [b] });
    assertRecord(storage.load(b), { oid: b, tid, data: 'b1', refs: [] });
  });

  test('load returns the newest revision', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(a, 'a2', t1, [])]);
    const t3 = await commit(storage, [put(a, 'a3', t2, [b])]);
    assertRecord(storage.load(a), { oid: a, tid: t3, data: 'a3', refs: [b] });
    assertRecord(storage.load(b), { oid: b, tid: t1, data: 'b1' });
  });

  test('load of an allocated oid without a record is NotFoundError', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    expectThrows(() => storage.load(a), 'TROVE_NOT_FOUND');
    await rootAB(storage);
    expectThrows(() => storage.load(a), 'TROVE_NOT_FOUND');
    expectThrows(() => storage.load(MAX_OID), 'TROVE_NOT_FOUND');
  });

  test('stores data byte for byte: empty, large, views and Buffers', async (storage) => {
    const [a, b, c, d] = (await storage.newOids(4)) as [Oid, Oid, Oid, Oid];
    const large = new Uint8Array(256 * 1024);
    for (let i = 0; i < large.length; i++) large[i] = (i * 31 + 7) & 0xff;
    const backing = bytes([9, 9, 1, 2, 3, 9, 9]);
    const view = backing.subarray(2, 5);
    const tid = await commit(storage, [
      { oid: a, data: new Uint8Array(0), refs: [], expectedTid: 0 },
      { oid: b, data: large, refs: [], expectedTid: 0 },
      { oid: c, data: view, refs: [], expectedTid: 0 },
      { oid: d, data: Buffer.from('buffer'), refs: [], expectedTid: 0 },
    ]);
    assertRecord(storage.load(a), { oid: a, tid, data: [] });
    assertRecord(storage.load(b), { oid: b, tid, data: large });
    assertRecord(storage.load(c), { oid: c, tid, data: [1, 2, 3] });
    assertRecord(storage.load(d), { oid: d, tid, data: 'buffer' });
  });

  test('stores refs: to other objects, to objects of the same commit, to itself', async (storage) => {
    const { a, b } = await rootAB(storage);
    const [c, d] = (await storage.newOids(2)) as [Oid, Oid];
    const tid = await commit(storage, [
      put(c, 'c', 0, [d, c, ROOT, a]),
      put(d, 'd', 0, [c]),
      put(b, 'b2', storage.load(b).tid, [b, c]),
    ]);
    assertRecord(storage.load(c), { oid: c, tid, data: 'c', refs: [ROOT, a, c, d] });
    assertRecord(storage.load(d), { oid: d, tid, data: 'd', refs: [c] });
    assertRecord(storage.load(b), { oid: b, tid, data: 'b2', refs: [b, c] });
  });
}

function tidTests(test: Register): void {
  test('every commit gets a tid above lastTid, and lastTid becomes it', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    let last = storage.lastTid();
    let expected = 0;
    for (let i = 0; i < 25; i++) {
      const tid = await commit(storage, [put(a, `v${i}`, expected)]);
      assert.ok(Number.isSafeInteger(tid) && tid > 0, 'a tid is a positive safe integer');
      assert.ok(tid > last, 'tids strictly increase');
      assert.equal(storage.lastTid(), tid);
      last = tid;
      expected = tid;
    }
  });

  test('failed commits leave lastTid alone; later commits still get higher tids', async (storage) => {
    const { a, tid: t1 } = await rootAB(storage);
    await commitConflicts(storage, [put(a, 'stale', 0)]);
    await expectRejects(
      () => commit(storage, [put(a, 'x', t1), put(a, 'y', t1)]),
      'TROVE_INVALID_ARGUMENT',
    );
    assert.equal(storage.lastTid(), t1);
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    assert.ok(t2 > t1);
  });
}

function loadBeforeTests(test: Register): void {
  test('returns the newest revision with a tid below the given one, with nextTid', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    const t1 = await commit(storage, [put(a, 'v1')]);
    const t2 = await commit(storage, [put(a, 'v2', t1, [a])]);
    const t3 = await commit(storage, [put(a, 'v3', t2)]);
    const v1 = { oid: a, tid: t1, data: [...bytes('v1')], refs: [], nextTid: t2 };
    const v2 = { oid: a, tid: t2, data: [...bytes('v2')], refs: [a], nextTid: t3 };
    const v3 = { oid: a, tid: t3, data: [...bytes('v3')], refs: [], nextTid: undefined };
    assert.equal(storage.loadBefore(a, t1), undefined, 'before its creation');
    assert.deepEqual(probeLoadBefore(storage, a, t1 + 1), v1);
    assert.deepEqual(probeLoadBefore(storage, a, t2), v1);
    assert.deepEqual(probeLoadBefore(storage, a, t2 + 1), v2);
    assert.deepEqual(probeLoadBefore(storage, a, t3), v2);
    assert.deepEqual(probeLoadBefore(storage, a, t3 + 1), v3);
    assert.deepEqual(probeLoadBefore(storage, a, t3 + 1_000_000), v3);
  });

  test('is undefined for objects created later and for oids without records', async (storage) => {
    const { tid: t1 } = await rootAB(storage);
    const [c, never] = (await storage.newOids(2)) as [Oid, Oid];
    const t2 = await commit(storage, [put(c, 'c')]);
    assert.equal(storage.loadBefore(c, t1 + 1), undefined);
    assert.equal(storage.loadBefore(c, t2), undefined);
    assertRecord(storage.loadBefore(c, t2 + 1), { oid: c, tid: t2, data: 'c' });
    assert.equal(storage.loadBefore(never, t2 + 1), undefined);
    assert.equal(storage.loadBefore(MAX_OID, t2 + 1), undefined);
  });

  test('loadBefore(oid, 0) is undefined: nothing is committed before tid 0', async (storage) => {
    assert.equal(storage.loadBefore(ROOT, 0), undefined, 'on an empty storage');
    await rootAB(storage);
    assert.equal(storage.loadBefore(ROOT, 0), undefined, 'after a commit');
  });

  test('a snapshot keeps reading its revisions while later commits happen', async (storage) => {
    const { a, b, tid: snapshot } = await rootAB(storage);
    await commit(storage, [put(a, 'a2', snapshot)]);
    await commit(storage, [put(b, 'b2', snapshot)]);
    assertRecord(storage.loadBefore(a, snapshot + 1), {
      oid: a,
      tid: snapshot,
      data: 'a1',
      refs: [b],
    });
    assertRecord(storage.loadBefore(b, snapshot + 1), { oid: b, tid: snapshot, data: 'b1' });
  });
}

function newOidTests(test: Register): void {
  test('newOids(0) is empty; oids are distinct, never 0, dense within a call', async (storage) => {
    assert.deepEqual(await storage.newOids(0), []);
    const seen = new Set<Oid>();
    for (const count of [1, 5, 0, 3, 17, 1]) {
      const oids = await storage.newOids(count);
      assert.equal(oids.length, count);
      for (let i = 0; i < oids.length; i++) {
        const oid = oids[i]!;
        assert.ok(Number.isInteger(oid) && oid > 0 && oid <= MAX_OID, `oid ${oid} is valid`);
        assert.ok(!seen.has(oid), `oid ${oid} handed out twice`);
        seen.add(oid);
        if (i > 0) assert.equal(oid, oids[i - 1]! + 1, 'one call allocates consecutive oids');
      }
    }
  });

  test('never hands out an oid that has a record, even one written without newOids', async (storage) => {
    await commit(storage, [put(ROOT, 'root', 0, [40]), put(40, 'forty')]);
    const oids = await storage.newOids(100);
    assert.ok(!oids.includes(ROOT) && !oids.includes(40), `${oids} includes a used oid`);
  });

  test('oids used by failed commits are not handed out again', async (storage) => {
    const { a } = await rootAB(storage);
    const [c] = (await storage.newOids(1)) as [Oid];
    await commitConflicts(storage, [put(c, 'c'), put(a, 'stale', 0)]);
    const more = await storage.newOids(10);
    assert.ok(!more.includes(c), 'an allocated oid is never handed out again');
  });

  test('newOidsNow hands out at most the count, never an oid newOids hands out', async (storage) => {
    assert.deepEqual(newOidsNow(storage, 0), []);
    const seen = new Set<Oid>();
    const note = (oids: readonly Oid[], count: number) => {
      assert.ok(oids.length <= count, `${oids.length} oids for a count of ${count}`);
      for (let i = 0; i < oids.length; i++) {
        const oid = oids[i]!;
        assert.ok(Number.isInteger(oid) && oid > 0 && oid <= MAX_OID, `oid ${oid} is valid`);
        assert.ok(!seen.has(oid), `oid ${oid} handed out twice`);
        seen.add(oid);
        if (i > 0) assert.equal(oid, oids[i - 1]! + 1, 'one call hands out consecutive oids');
      }
    };
    for (const count of [1, 5, 3, 200, 1]) {
      note(newOidsNow(storage, count), count);
      note(await storage.newOids(count), count);
    }
    // What it handed out can be committed.
    const [c] = await storage.newOids(1);
    const now = newOidsNow(storage, 1);
    await commit(storage, [
      put(ROOT, 'root', 0, [c!, ...now]),
      put(c!, 'c'),
      ...now.map((oid) => put(oid, 'now')),
    ]);
    const more = [...newOidsNow(storage, 10), ...(await storage.newOids(10))];
    for (const used of [ROOT, c!, ...now]) assert.ok(!more.includes(used), `oid ${used} reused`);
  });

  test('newOidsNow refuses what is not a count, and allocation goes on unharmed', async (storage) => {
    const [before] = await storage.newOids(1);
    for (const count of [-1, 1.5, '2', Number.NaN, null, undefined]) {
      expectThrows(
        () => newOidsNow(storage, count as number),
        'TROVE_INVALID_ARGUMENT',
        `newOidsNow(${String(count)})`,
      );
    }
    const [after] = await storage.newOids(1);
    assert.ok(after! > before! && after! <= MAX_OID);
  });

  test('refuses a count beyond the oid space, and allocation goes on unharmed', async (storage) => {
    const [first] = (await storage.newOids(1)) as [Oid];
    await expectRejects(() => storage.newOids(2 ** 33), 'TROVE_INVALID_ARGUMENT', 'newOids(2**33)');
    const [next] = (await storage.newOids(1)) as [Oid];
    assert.ok(next > first && next <= MAX_OID, `the next oid ${next} is still a valid oid`);
  });
}

function commitTests(test: Register): void {
  test('commits several objects as one transaction', async (storage) => {
    const { a, b, tid } = await rootAB(storage);
    const changes = plainChanges(storage.changesSince(0));
    assert.deepEqual(changes, [{ tid, oids: [ROOT, a, b].sort((x, y) => x - y) }]);
  });

  test('a write with a stale expectedTid is a write conflict with the committed state', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(a, 'a2', t1, [b])]);
    const before = await captureState(storage);
    const error = await expectRejects(
      () => commit(storage, [put(a, 'mine', t1)]),
      'TROVE_CONFLICT',
    );
    assert.ok(error instanceof ConflictError);
    assert.equal(error.kind, 'write');
    assert.equal(error.oid, a);
    const conflicts = conflictsOf(error);
    assert.equal(conflicts.length, 1);
    const conflict = conflictAbout(conflicts, a, 'write');
    assert.equal(conflict.expectedTid, t1);
    assertRecord(conflict.committed, { oid: a, tid: t2, data: 'a2', refs: [b] });
    assert.deepEqual(await captureState(storage), before, 'nothing stored');
  });

  test('creating an oid that exists (expectedTid 0) conflicts', async (storage) => {
    const { a, b, tid } = await rootAB(storage);
    const conflicts = await commitConflicts(storage, [put(a, 'again', 0)]);
    const conflict = conflictAbout(conflicts, a, 'write');
    assert.equal(conflict.expectedTid, 0);
    assertRecord(conflict.committed, { oid: a, tid, data: 'a1', refs: [b] });
  });

  test('updating an oid that has no record conflicts, with no committed state', async (storage) => {
    const { tid } = await rootAB(storage);
    const [c] = (await storage.newOids(1)) as [Oid];
    const conflicts = await commitConflicts(storage, [put(c, 'c', tid)]);
    const conflict = conflictAbout(conflicts, c, 'write');
    assert.equal(conflict.expectedTid, tid);
    assert.equal(conflict.committed, undefined);
    expectThrows(() => storage.load(c), 'TROVE_NOT_FOUND');
  });

  test('is atomic: a conflicting commit stores none of its writes', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    await commit(storage, [put(b, 'b2', t1)]);
    const [c] = (await storage.newOids(1)) as [Oid];
    const before = await captureState(storage, [c]);
    const conflicts = await commitConflicts(storage, [
      put(c, 'new', 0),
      put(a, 'fine', t1, [c]),
      put(ROOT, 'fine', t1, [a]),
      put(b, 'stale', t1),
    ]);
    conflictAbout(conflicts, b, 'write');
    assert.ok(
      conflicts.every((x) => x.oid === b),
      'only the stale write conflicts',
    );
    assert.deepEqual(await captureState(storage, [c]), before, 'nothing stored');
    expectThrows(() => storage.load(c), 'TROVE_NOT_FOUND');
  });

  test('lists every stale write and every stale read guard', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [
      put(a, 'a2', t1, [b]),
      put(b, 'b2', t1),
      put(ROOT, 'r2', t1, [a]),
    ]);
    const conflicts = await commitConflicts(storage, [put(a, 'x', t1, [b]), put(b, 'y', t1)], {
      readCurrent: [{ oid: ROOT, tid: t1 }],
    });
    assert.equal(conflicts.length, 3);
    assertRecord(conflictAbout(conflicts, a, 'write').committed, {
      oid: a,
      tid: t2,
      data: 'a2',
      refs: [b],
    });
    assertRecord(conflictAbout(conflicts, b, 'write').committed, { oid: b, tid: t2, data: 'b2' });
    const read = conflictAbout(conflicts, ROOT, 'read');
    assert.equal(read.expectedTid, t1);
    assertRecord(read.committed, { oid: ROOT, tid: t2, data: 'r2', refs: [a] });
  });

  test('a current read guard lets the commit through and writes nothing for it', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(b, 'b2', t1)], { readCurrent: [{ oid: a, tid: t1 }] });
    assert.deepEqual(plainChanges(storage.changesSince(t1)), [{ tid: t2, oids: [b] }]);
    assertRecord(storage.load(a), { oid: a, tid: t1, data: 'a1', refs: [b] });
  });

  test('a stale read guard is a read conflict with the committed state; nothing stored', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    const before = await captureState(storage);
    const conflicts = await commitConflicts(storage, [put(b, 'b2', t1)], {
      readCurrent: [{ oid: a, tid: t1 }],
    });
    assert.equal(conflicts.length, 1);
    const conflict = conflictAbout(conflicts, a, 'read');
    assert.equal(conflict.expectedTid, t1);
    assertRecord(conflict.committed, { oid: a, tid: t2, data: 'a2' });
    assert.deepEqual(await captureState(storage), before);
  });

  test('a read guard with tid 0 guards that an object does not exist yet', async (storage) => {
    const { b, tid: t1 } = await rootAB(storage);
    const [c] = (await storage.newOids(1)) as [Oid];
    const t2 = await commit(storage, [put(b, 'b2', t1)], { readCurrent: [{ oid: c, tid: 0 }] });
    const t3 = await commit(storage, [put(c, 'c')]);
    const conflicts = await commitConflicts(storage, [put(b, 'b3', t2)], {
      readCurrent: [{ oid: c, tid: 0 }],
    });
    assertRecord(conflictAbout(conflicts, c, 'read').committed, { oid: c, tid: t3, data: 'c' });
  });

  test('a ref to an oid without a record, not written in the commit, is a read conflict', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const [c, missing] = (await storage.newOids(2)) as [Oid, Oid];
    const before = await captureState(storage, [c, missing]);
    const conflicts = await commitConflicts(storage, [
      put(c, 'c', 0, [a]),
      put(b, 'b2', t1, [missing]),
    ]);
    const conflict = conflictAbout(conflicts, missing, 'read');
    assert.equal(conflict.committed, undefined);
    assert.ok(
      conflicts.every((x) => x.oid === missing),
      'only the missing ref conflicts',
    );
    assert.deepEqual(await captureState(storage, [c, missing]), before, 'nothing stored');
  });

  test('refs to oids written in the same commit are accepted in any order of the writes', async (storage) => {
    const [c, d, e, missing] = (await storage.newOids(4)) as [Oid, Oid, Oid, Oid];
    const ascending = [put(c, 'c', 0, [d, e]), put(d, 'd', 0, [e, c]), put(e, 'e', 0, [c])];
    const conflicts = await commitConflicts(storage, [
      ...ascending.slice(0, 2),
      put(e, 'e', 0, [c, missing]),
    ]);
    assert.ok(
      conflicts.length > 0 && conflicts.every((x) => x.oid === missing && x.kind === 'read'),
      'only the missing ref conflicts',
    );
    await commit(storage, ascending);
    const [f, g] = (await storage.newOids(2)) as [Oid, Oid];
    await commit(storage, [put(g, 'g', 0, [f, c]), put(f, 'f', 0, [g])]);
    assertRecord(storage.load(g), { oid: g, tid: storage.lastTid(), data: 'g', refs: [f, c] });
  });

  test('refuses an oid written twice in one commit, storing nothing', async (storage) => {
    const { a, tid: t1 } = await rootAB(storage);
    const [c] = (await storage.newOids(1)) as [Oid];
    const before = await captureState(storage, [c]);
    await expectRejects(
      () => commit(storage, [put(c, 'c'), put(a, 'x', t1), put(a, 'y', t1)]),
      'TROVE_INVALID_ARGUMENT',
    );
    // In ascending order, then an earlier one again.
    const [low, high] = [Math.min(a, c), Math.max(a, c)];
    await expectRejects(
      () =>
        commit(storage, [
          put(low, 'x', low === a ? t1 : 0),
          put(high, 'y', high === a ? t1 : 0),
          put(low, 'z', low === a ? t1 : 0),
        ]),
      'TROVE_INVALID_ARGUMENT',
    );
    assert.deepEqual(await captureState(storage, [c]), before);
  });

  test('copies what it stores: changing the caller’s buffers afterwards changes nothing', async (storage) => {
    const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
    const data = bytes('original');
    const refs = [b];
    const meta = { note: 'note', user: 'ada' };
    const request = {
      baseTid: 0,
      writes: [
        { oid: a, data, refs, expectedTid: 0 },
        { oid: b, data: bytes('b'), refs: [], expectedTid: 0 },
      ],
      meta,
    };
    const tid = await storage.commit(request);
    data.fill(0);
    refs.push(a, a);
    meta.note = 'changed';
    assertRecord(storage.load(a), { oid: a, tid, data: 'original', refs: [b] });
    assertRecord(storage.loadBefore(a, tid + 1), { oid: a, tid, data: 'original', refs: [b] });
    const [transaction] = await plainTransactions(storage);
    assert.equal(transaction?.note, 'note');
    assert.deepEqual(transaction?.records[0]?.data, [...bytes('original')]);
  });

  // Found in a bug hunt: MemoryStorage handed out, and kept, the bytes themselves (a
  // Buffer's slice is a view, not a copy).
  test('bytes given as a Buffer, and bytes handed out by load, loadBefore and the iterator, are copies', async (storage) => {
    const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
    const given = Buffer.from('original');
    const tid = await storage.commit({
      baseTid: 0,
      writes: [{ oid: a, data: given, refs: [b], expectedTid: 0 }, put(b, 'b')],
    });
    given.fill(0);
    storage.load(a).data.fill(0);
    storage.loadBefore(a, tid + 1)!.data.fill(0);
    for await (const transaction of storage.iterator()) {
      for (const record of transaction.records) record.data.fill(0);
    }
    try {
      (storage.load(a).refs as Oid[]).push(a); // a copy, or frozen
    } catch {}
    assertRecord(storage.load(a), { oid: a, tid, data: 'original', refs: [b] });
  });

  // Found in a bug hunt: MemoryStorage kept keys a file does not (and a backup drops).
  test('keeps only note and user of the meta it is given', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    await commit(storage, [put(a, 'v1')], { meta: { note: 'n', user: 'u', extra: 1 } as never });
    for await (const transaction of storage.iterator()) {
      assert.deepEqual({ ...transaction.meta }, { note: 'n', user: 'u' });
    }
  });

  // Found in a bug hunt: MemoryStorage commits never waited, and a loop of them kept every
  // timer from running (FileStorage without syncs already gave the loop a turn).
  test('commits back to back let timers run', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    let fired = false;
    setTimeout(() => {
      fired = true;
    }, 1);
    let tid: Tid = 0;
    // Bounded, so that without the turn the test fails instead of running for ever.
    for (let i = 0; !fired && i < 200_000; i++) {
      tid = await commit(storage, [put(a, `v${i}`, tid)]);
    }
    assert.equal(fired, true);
  });

  test('keeps meta (note and user) with the transaction', async (storage) => {
    const [a] = (await storage.newOids(1)) as [Oid];
    const t1 = await commit(storage, [put(a, 'v1')], { meta: { note: 'create a', user: 'ada' } });
    const t2 = await commit(storage, [put(a, 'v2', t1)]);
    const t3 = await commit(storage, [put(a, 'v3', t2)], { meta: { note: 'only a note' } });
    const transactions = await plainTransactions(storage);
    assert.deepEqual(
      transactions.map((t) => [t.tid, t.note, t.user]),
      [
        [t1, 'create a', 'ada'],
        [t2, undefined, undefined],
        [t3, 'only a note', undefined],
      ],
    );
  });

  test('concurrent commits of different objects all succeed, with distinct tids', async (storage) => {
    const oids = await storage.newOids(6);
    const tids = await Promise.all(oids.map((oid) => commit(storage, [put(oid, `v${oid}`)])));
    assert.equal(new Set(tids).size, tids.length, 'distinct tids');
    for (const [i, oid] of oids.entries()) {
      assertRecord(storage.load(oid), { oid, tid: tids[i]!, data: `v${oid}` });
    }
    const changes = plainChanges(storage.changesSince(0));
    assert.ok(changes !== 'flush');
    assert.deepEqual(
      changes.map((c) => c.tid),
      [...tids].sort((x, y) => x - y),
    );
    assert.equal(storage.lastTid(), Math.max(...tids));
  });

  test('of concurrent commits on one object expecting the same tid, exactly one wins', async (storage) => {
    const { a, tid: t1 } = await rootAB(storage);
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((i) => commit(storage, [put(a, `writer ${i}`, t1)])),
    );
    const won = results.flatMap((r, i) =>
      r.status === 'fulfilled' ? [[i, r.value] as const] : [],
    );
    assert.equal(won.length, 1, 'one winner');
    for (const result of results) {
      if (result.status === 'rejected') conflictAbout(conflictsOf(result.reason), a, 'write');
    }
    const [winner, tid] = won[0]!;
    assertRecord(storage.load(a), { oid: a, tid, data: `writer ${winner}`, refs: [] });
  });
}

function changesSinceTests(test: Register): void {
  test('lists later transactions oldest first with the oids they wrote', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const [c] = (await storage.newOids(1)) as [Oid];
    const t2 = await commit(storage, [put(a, 'a2', t1, [b, c]), put(c, 'c')]);
    const t3 = await commit(storage, [put(b, 'b2', t1)], { readCurrent: [{ oid: a, tid: t2 }] });
    const all = [
      { tid: t1, oids: [ROOT, a, b].sort((x, y) => x - y) },
      { tid: t2, oids: [a, c].sort((x, y) => x - y) },
      { tid: t3, oids: [b] },
    ];
    assert.deepEqual(plainChanges(storage.changesSince(0)), all);
    assert.deepEqual(plainChanges(storage.changesSince(t1)), all.slice(1));
    assert.deepEqual(plainChanges(storage.changesSince(t2 - 1)), all.slice(1));
    assert.deepEqual(plainChanges(storage.changesSince(t2)), all.slice(2));
  });

  test('is empty when up to date, and for tids beyond lastTid', async (storage) => {
    assert.deepEqual(plainChanges(storage.changesSince(0)), []);
    const { tid } = await rootAB(storage);
    assert.deepEqual(plainChanges(storage.changesSince(tid)), []);
    assert.deepEqual(plainChanges(storage.changesSince(tid + 1_000_000)), []);
  });

  test('does not list failed commits', async (storage) => {
    const { a, tid: t1 } = await rootAB(storage);
    await commitConflicts(storage, [put(a, 'stale', 0)]);
    assert.deepEqual(plainChanges(storage.changesSince(t1)), []);
  });
}

/** Graph for the pack tests; returns which oids must survive and which must go. */
async function packGraph(storage: Storage) {
  const [a, b, g, c, d, e, f, h] = (await storage.newOids(8)) as [
    Oid,
    Oid,
    Oid,
    Oid,
    Oid,
    Oid,
    Oid,
    Oid,
  ];
  // Reachable: root -> a <-> b -> g. Unreachable: the cycle c <-> d, e -> e, f -> root, and h,
  // which the root drops in the second transaction.
  const t1 = await commit(storage, [
    put(ROOT, 'root', 0, [a, h]),
    put(a, 'a', 0, [b]),
    put(b, 'b', 0, [a, g]),
    put(g, 'g'),
    put(c, 'c', 0, [d]),
    put(d, 'd', 0, [c]),
    put(e, 'e', 0, [e]),
    put(f, 'f', 0, [ROOT]),
    put(h, 'h'),
  ]);
  const t2 = await commit(storage, [put(ROOT, 'root2', t1, [a])]);
  return { kept: [ROOT, a, b, g], removed: [c, d, e, f, h], t1, t2, a, b, h };
}

/** History for the pack tests: a has four revisions, b two. */
async function packHistory(storage: Storage) {
  const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
  const t1 = await commit(storage, [put(ROOT, 'r1', 0, [a]), put(a, 'a1')]);
  const t2 = await commit(storage, [put(a, 'a2', t1)]);
  const t3 = await commit(storage, [put(a, 'a3', t2), put(b, 'b1'), put(ROOT, 'r2', t1, [a, b])]);
  const t4 = await commit(storage, [put(a, 'a4', t3)]);
  const t5 = await commit(storage, [put(b, 'b2', t3)]);
  const oids = [ROOT, a, b];
  const tids = [t1, t2, t3, t4, t5];
  const probes = [...new Set(tids.flatMap((t) => [t, t + 1]))];
  // What every historical read answers before the pack.
  const before = new Map<string, ReturnType<typeof probeLoadBefore>>();
  for (const oid of oids)
    for (const tid of probes) before.set(`${oid}@${tid}`, probeLoadBefore(storage, oid, tid));
  return { a, b, t1, t2, t3, t4, t5, oids, probes, before };
}

type History = Awaited<ReturnType<typeof packHistory>>;

/** Reads of snapshots at or after `cut` give what they gave before; older ones are right or too old. */
function assertHistoryKeptSince(storage: Storage, history: History, cut: Tid): void {
  for (const oid of history.oids) {
    for (const tid of history.probes) {
      const before = history.before.get(`${oid}@${tid}`);
      if (tid > cut) {
        assert.deepEqual(
          probeLoadBefore(storage, oid, tid),
          before,
          `loadBefore(${oid}, ${tid}), cut ${cut}`,
        );
      } else {
        assertOldReadCorrectOrTooOld(storage, oid, tid, before);
      }
    }
  }
}

/** Asserts that an integrity check finds nothing wrong. */
async function assertIntact(storage: Storage, when = ''): Promise<void> {
  const report = await storage.integrityCheck();
  assert.deepEqual(report.failures, [], `integrity failures ${when}`);
  assert.equal(report.ok, true, `integrity ok ${when}`);
}

function expectTooOld(storage: Storage, oid: Oid, tid: Tid): void {
  const error = expectThrows(
    () => storage.loadBefore(oid, tid),
    'TROVE_CONFLICT',
    `loadBefore(${oid}, ${tid})`,
  );
  assert.ok(error instanceof ConflictError);
  assert.equal(error.kind, 'read', 'a snapshot that is too old is a read conflict');
}

function packTests(test: Register): void {
  // Found by a bug hunt: a MemoryStorage's pack changed the transactions an iteration was
  // going over, which then handed out a mix of the log before the pack and after it.
  test('an iteration begun before a pack goes on over the log as it was', async (storage) => {
    await packHistory(storage);
    const before = await plainTransactions(storage);
    const iteration = storage.iterator()[Symbol.asyncIterator]();
    const first = await iteration.next();
    await storage.pack();
    const seen = [first.value as TransactionRecord];
    for (let step = await iteration.next(); step.done !== true; step = await iteration.next())
      seen.push(step.value);
    assert.deepEqual(
      seen.map((t) => ({
        tid: t.tid,
        note: t.meta.note,
        user: t.meta.user,
        records: t.records.map(plain).sort((a, b) => a.oid - b.oid),
      })),
      before,
    );
    assert.ok((await plainTransactions(storage)).length < before.length, 'the pack removed some');
  });

  // A pack takes records out of transactions: one left with none is not handed out.
  for (const history of [false, true]) {
    test(`an iteration after a pack${history ? ' that keeps history' : ''} yields no transaction without records`, async (storage) => {
      const { t3 } = await packHistory(storage);
      const [c] = (await storage.newOids(1)) as [Oid];
      const unreachable = await commit(storage, [put(c, 'c1')]);
      await commit(storage, [put(c, 'c2', unreachable)]);
      await storage.pack(history ? { keepHistorySince: t3 } : {});
      const transactions = await plainTransactions(storage);
      assert.ok(transactions.length > 0);
      for (const transaction of transactions)
        assert.ok(transaction.records.length > 0, `transaction ${transaction.tid} has records`);
      expectThrows(() => storage.load(c), 'TROVE_NOT_FOUND', 'the unreachable object');
    });
  }

  test('removes objects unreachable from the root and keeps reachable ones, cycles included', async (storage) => {
    const { kept, removed } = await packGraph(storage);
    const loaded = new Map(kept.map((oid) => [oid, plain(storage.load(oid))]));
    const result = await storage.pack();
    assert.equal(result.objectsKept, kept.length);
    assert.equal(result.objectsRemoved, removed.length);
    for (const oid of kept)
      assert.deepEqual(plain(storage.load(oid)), loaded.get(oid), `kept ${oid}`);
    for (const oid of removed) {
      expectThrows(() => storage.load(oid), 'TROVE_NOT_FOUND', `load(${oid}) after pack`);
      // Its data is gone: no revision at the newest snapshot (or, at most, "too old").
      assertOldReadCorrectOrTooOld(storage, oid, storage.lastTid() + 1, undefined);
    }
    assert.equal(storage.stats().objects, kept.length);
    await assertIntact(storage);
  });

  test('reports what it did, and a second pack finds nothing more to remove', async (storage) => {
    const { kept } = await packGraph(storage);
    const first = await storage.pack();
    for (const key of [
      'objectsKept',
      'objectsRemoved',
      'revisionsRemoved',
      'bytesBefore',
      'bytesAfter',
    ] as const) {
      assert.ok(Number.isSafeInteger(first[key]) && first[key] >= 0, `${key} is a count`);
    }
    assert.ok(first.revisionsRemoved >= 1, 'the root’s first revision is removed');
    assert.ok(first.bytesAfter <= first.bytesBefore, 'pack does not grow the data');
    const second = await storage.pack();
    assert.equal(second.objectsKept, kept.length);
    assert.equal(second.objectsRemoved, 0);
    assert.equal(second.revisionsRemoved, 0);
  });

  test('packs an empty storage harmlessly, and is not a transaction', async (storage) => {
    const result = await storage.pack();
    assert.equal(result.objectsKept, 0);
    assert.equal(result.objectsRemoved, 0);
    assert.equal(storage.lastTid(), 0);
    const { tid } = await rootAB(storage);
    await storage.pack();
    assert.equal(storage.lastTid(), tid, 'pack is not a transaction');
  });

  test('by default removes old revisions: older snapshots that need them are too old', async (storage) => {
    const h = await packHistory(storage);
    const result = await storage.pack();
    assert.ok(result.revisionsRemoved >= 5, 'a1, a2, a3, b1 and r1 are old revisions');
    assert.equal(storage.lastTid(), h.t5);
    // Current revisions stay readable, at the newest snapshot and back to when they were written.
    assertRecord(storage.load(h.a), { oid: h.a, tid: h.t4, data: 'a4' });
    assertRecord(storage.loadBefore(h.a, h.t5 + 1), { oid: h.a, tid: h.t4, data: 'a4' });
    assertRecord(storage.loadBefore(h.a, h.t4 + 1), { oid: h.a, tid: h.t4, data: 'a4' });
    assertRecord(storage.loadBefore(h.b, h.t5 + 1), { oid: h.b, tid: h.t5, data: 'b2' });
    // Reads that need a removed revision are read conflicts, never wrong or missing data.
    expectTooOld(storage, h.a, h.t2); // needs a1
    expectTooOld(storage, h.a, h.t4); // needs a3
    expectTooOld(storage, h.b, h.t5); // needs b1
    expectTooOld(storage, ROOT, h.t3); // needs r1
    assertHistoryKeptSince(storage, h, h.t5);
  });

  test('keepHistorySince (a tid) keeps what snapshots at or after it read', async (storage) => {
    const h = await packHistory(storage);
    await storage.pack({ keepHistorySince: h.t3 });
    assertHistoryKeptSince(storage, h, h.t3);
    assertRecord(storage.loadBefore(h.a, h.t3 + 1), { oid: h.a, tid: h.t3, data: 'a3' });
    expectTooOld(storage, h.a, h.t2); // needs a1, older than the cut
  });

  test('keepHistorySince (a Date) keeps what snapshots at or after that time read', async (storage) => {
    const h = await packHistory(storage);
    // The Date is t3's millisecond, at or before t3: everything from t3 on must be kept.
    await storage.pack({ keepHistorySince: tidToDate(h.t3) });
    assertHistoryKeptSince(storage, h, h.t3);
  });

  test('keepHistorySince: the epoch keeps all history, a future Date none', async (storage) => {
    const h = await packHistory(storage);
    await storage.pack({ keepHistorySince: new Date(0) });
    assertHistoryKeptSince(storage, h, 0);
    await storage.pack({ keepHistorySince: new Date(Date.now() + 24 * 3600 * 1000) });
    expectTooOld(storage, h.a, h.t4);
    assertRecord(storage.loadBefore(h.a, h.t5 + 1), { oid: h.a, tid: h.t4, data: 'a4' });
  });

  test('keepHistorySince keeps objects that became unreachable after the cut', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(ROOT, 'root2', t1, [])]);
    const before = probeLoadBefore(storage, a, t1 + 1);
    await storage.pack({ keepHistorySince: t1 });
    // A snapshot at t1 (not older than the cut) sees root -> a -> b: reading a and b must work.
    assertRecord(storage.loadBefore(ROOT, t1 + 1), { oid: ROOT, tid: t1, data: 'root', refs: [a] });
    assert.deepEqual(probeLoadBefore(storage, a, t1 + 1), before, 'a as of t1');
    assertRecord(storage.loadBefore(b, t2), { oid: b, tid: t1, data: 'b1' }, 'b as of t1');
    // Kept for the history only: a pack that keeps no history removes it.
    await storage.pack();
    expectThrows(() => storage.load(a), 'TROVE_NOT_FOUND', 'a is garbage once no history needs it');
  });

  test('changesSince after a pack answers "flush" or the complete list, never less', async (storage) => {
    const h = await packHistory(storage);
    const tids = [0, h.t1, h.t2, h.t3, h.t4, h.t5];
    const before = new Map(tids.map((t) => [t, plainChanges(storage.changesSince(t))]));
    await storage.pack({ keepHistorySince: h.t3 });
    for (const tid of tids) {
      const after = plainChanges(storage.changesSince(tid));
      if (after !== 'flush') assert.deepEqual(after, before.get(tid), `changesSince(${tid})`);
    }
    await storage.pack();
    for (const tid of tids) {
      const after = plainChanges(storage.changesSince(tid));
      if (after !== 'flush') assert.deepEqual(after, before.get(tid), `changesSince(${tid})`);
    }
  });

  test('changesSince after a pack still lists changes to objects that became unreachable', async (storage) => {
    const { a, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(ROOT, 'root2', t1, []), put(a, 'a2', t1)]);
    await storage.pack({ keepHistorySince: t1 });
    const changes = plainChanges(storage.changesSince(t1));
    if (changes !== 'flush') {
      assert.deepEqual(changes, [{ tid: t2, oids: [ROOT, a].sort((x, y) => x - y) }]);
    }
  });

  test('commits after a pack work and get higher tids', async (storage) => {
    const { t2, a, b } = await packGraph(storage);
    await storage.pack();
    const [n] = (await storage.newOids(1)) as [Oid];
    const aTid = storage.load(a).tid;
    const t3 = await commit(storage, [
      put(ROOT, 'root3', t2, [a, n]),
      put(n, 'new'),
      put(a, 'a2', aTid, []),
    ]);
    assert.ok(t3 > t2);
    assertRecord(storage.load(n), { oid: n, tid: t3, data: 'new' });
    assertRecord(storage.loadBefore(a, t3), { oid: a, tid: aTid, data: 'a', refs: [b] });
    assert.deepEqual(plainChanges(storage.changesSince(t2)), [
      { tid: t3, oids: [ROOT, a, n].sort((x, y) => x - y) },
    ]);
    const again = await storage.pack();
    assert.equal(again.objectsKept, 3, 'root, a and n (a no longer refers to b)');
  });

  test('removed objects stay gone: writes, guards and refs to them conflict', async (storage) => {
    const { h, t1, t2, a } = await packGraph(storage);
    await storage.pack();
    conflictAbout(await commitConflicts(storage, [put(h, 'h2', t1)]), h, 'write');
    conflictAbout(
      await commitConflicts(storage, [put(a, 'a2', t1)], { readCurrent: [{ oid: h, tid: t1 }] }),
      h,
      'read',
    );
    const refused = await commitConflicts(storage, [put(ROOT, 'root3', t2, [a, h])]);
    assert.equal(conflictAbout(refused, h, 'read').committed, undefined);
    expectThrows(() => storage.load(h), 'TROVE_NOT_FOUND');
  });

  test('never hands out the oids of removed objects again', async (storage) => {
    const { removed } = await packGraph(storage);
    await storage.pack();
    const oids = await storage.newOids(50);
    for (const oid of removed) assert.ok(!oids.includes(oid), `oid ${oid} reused`);
  });

  test('is online: a commit made while a pack runs is kept', async (storage) => {
    const { a, b, tid: t1 } = await rootAB(storage);
    const [c, d] = (await storage.newOids(2)) as [Oid, Oid];
    const [, t2] = await Promise.all([
      storage.pack(),
      commit(storage, [put(ROOT, 'root2', t1, [a, c]), put(c, 'c')]),
    ]);
    const [t3] = await Promise.all([
      commit(storage, [put(b, 'b2', t1, [d]), put(d, 'd')]),
      storage.pack(),
    ]);
    assertRecord(storage.load(ROOT), { oid: ROOT, tid: t2, data: 'root2', refs: [a, c] });
    assertRecord(storage.load(c), { oid: c, tid: t2, data: 'c' });
    assertRecord(storage.load(b), { oid: b, tid: t3, data: 'b2', refs: [d] });
    assertRecord(storage.load(d), { oid: d, tid: t3, data: 'd' });
    assert.equal(storage.lastTid(), t3);
    await assertIntact(storage);
  });
}

function iteratorTests(test: Register): void {
  test('yields every transaction oldest first with its meta and records', async (storage) => {
    const [a, b] = (await storage.newOids(2)) as [Oid, Oid];
    const t1 = await commit(storage, [put(ROOT, 'r', 0, [a]), put(a, 'a1', 0, [ROOT])], {
      meta: { note: 'first', user: 'ada' },
    });
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    await commitConflicts(storage, [put(a, 'stale', t1)]);
    const t3 = await commit(storage, [put(b, 'b'), put(ROOT, 'r2', t1, [a, b])], {
      meta: { user: 'bob' },
    });
    const record = (oid: Oid, tid: Tid, data: string, refs: Oid[] = []) => ({
      oid,
      tid,
      data: [...bytes(data)],
      refs: refs.sort((x, y) => x - y),
    });
    const byOid = <T extends { oid: Oid }>(records: T[]) => records.sort((x, y) => x.oid - y.oid);
    const expected = [
      {
        tid: t1,
        note: 'first',
        user: 'ada',
        records: byOid([record(ROOT, t1, 'r', [a]), record(a, t1, 'a1', [ROOT])]),
      },
      { tid: t2, note: undefined, user: undefined, records: [record(a, t2, 'a2')] },
      {
        tid: t3,
        note: undefined,
        user: 'bob',
        records: byOid([record(ROOT, t3, 'r2', [a, b]), record(b, t3, 'b')]),
      },
    ];
    assert.deepEqual(await plainTransactions(storage), expected);
    assert.deepEqual(await plainTransactions(storage, 0), expected);
    assert.deepEqual(
      await plainTransactions(storage, t2),
      expected.slice(1),
      'fromTid is inclusive',
    );
    assert.deepEqual(await plainTransactions(storage, t2 + 1), expected.slice(2));
    assert.deepEqual(await plainTransactions(storage, t3 + 1), []);
  });

  test('a commit of read guards alone moves lastTid but is not iterated: it wrote nothing', async (storage) => {
    const t1 = await commit(storage, [put(ROOT, 'r')]);
    const t2 = await commit(storage, [], { readCurrent: [{ oid: ROOT, tid: t1 }] });
    assert.ok(t2 > t1);
    assert.equal(storage.lastTid(), t2);
    assert.deepEqual(
      (await plainTransactions(storage)).map((transaction) => transaction.tid),
      [t1],
    );
  });

  test('every record of a transaction carries the transaction’s tid', async (storage) => {
    await packGraph(storage);
    for (const transaction of await collect(storage.iterator())) {
      assert.ok(transaction.records.length > 0);
      for (const record of transaction.records) {
        assert.equal(record.tid, transaction.tid);
        assert.ok(record.data instanceof Uint8Array);
      }
    }
  });
}

function integrityTests(test: Register): void {
  test('reports ok on good data: empty, with refs and cycles, after a pack', async (storage) => {
    await assertIntact(storage, 'empty');
    await packGraph(storage);
    await assertIntact(storage, 'with refs and cycles');
    await storage.pack({ keepHistorySince: 0 });
    await assertIntact(storage, 'after a pack keeping history');
    await storage.pack();
    await assertIntact(storage, 'after a full pack');
  });

  test('checkpoint keeps everything as it was', async (storage) => {
    await packGraph(storage);
    const before = await captureState(storage);
    await storage.checkpoint();
    assert.deepEqual(await captureState(storage), before);
  });
}

function statsTests(test: Register): void {
  test('counts objects and commits and reports kind and lastTid', async (storage) => {
    const fresh = storage.stats();
    assert.equal(fresh.kind, storage.kind);
    assert.ok(typeof storage.kind === 'string' && storage.kind.length > 0);
    assert.equal(fresh.objects, 0);
    assert.equal(fresh.lastTid, 0);
    assert.equal(fresh.commits, 0);
    assert.ok(Number.isSafeInteger(fresh.bytes) && fresh.bytes >= 0);

    const { a, tid: t1 } = await rootAB(storage);
    const t2 = await commit(storage, [put(a, 'a2', t1)]);
    await commitConflicts(storage, [put(a, 'stale', t1)]);
    const stats = storage.stats();
    assert.equal(stats.kind, storage.kind);
    assert.equal(stats.objects, 3);
    assert.equal(stats.commits, 2, 'failed commits do not count');
    assert.equal(stats.lastTid, t2);
    assert.ok(stats.bytes > 0);
  });

  test('objects drops by what a pack removed', async (storage) => {
    const { kept } = await packGraph(storage);
    await storage.pack();
    assert.equal(storage.stats().objects, kept.length);
  });
}

function closeTests(test: Register): void {
  test('close is idempotent, also when called concurrently', async (storage) => {
    await rootAB(storage);
    await Promise.all([storage.close(), storage.close()]);
    await storage.close();
    assert.equal(storage.closed, true);
  });

  test('every method of a closed storage throws ClosedError', async (storage) => {
    const { a, tid } = await rootAB(storage);
    await storage.close();
    const closed = 'TROVE_CLOSED';
    expectThrows(() => storage.load(a), closed, 'load');
    expectThrows(() => storage.loadBefore(a, tid + 1), closed, 'loadBefore');
    expectThrows(() => storage.lastTid(), closed, 'lastTid');
    expectThrows(() => storage.changesSince(0), closed, 'changesSince');
    expectThrows(() => storage.stats(), closed, 'stats');
    await expectRejects(() => storage.newOids(1), closed, 'newOids');
    expectThrows(() => newOidsNow(storage, 1), closed, 'newOidsNow');
    await expectRejects(() => commit(storage, [put(a, 'x', tid)]), closed, 'commit');
    await expectRejects(
      () => storage.commit({ baseTid: tid, writes: [put(a, 'x', tid)] }),
      closed,
      'commit',
    );
    await expectRejects(() => storage.pack(), closed, 'pack');
    await expectRejects(() => storage.checkpoint(), closed, 'checkpoint');
    await expectRejects(() => storage.integrityCheck(), closed, 'integrityCheck');
    await expectIterationFails(() => storage.iterator(), closed, 'iterator');
    await expectIterationFails(() => storage.iterator(tid), closed, 'iterator(tid)');
  });

  // Found in a bug hunt: MemoryStorage's iteration went on (with nothing) after close.
  test('an iterator made before close() and advanced after it throws ClosedError', async (storage) => {
    await rootAB(storage);
    const iterator = storage.iterator()[Symbol.asyncIterator]();
    await storage.close();
    await expectRejects(() => iterator.next(), 'TROVE_CLOSED', 'next');
  });

  test('an iteration closed after its last transaction was handed out does not end as if complete', async (storage) => {
    await rootAB(storage);
    const iterator = storage.iterator()[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).done, false);
    await storage.close();
    await expectRejects(() => iterator.next(), 'TROVE_CLOSED', 'next');
  });

  test(
    'a read-only storage closes the same way',
    async (storage) => {
      await storage.close();
      await storage.close();
      expectThrows(() => storage.lastTid(), 'TROVE_CLOSED');
      await expectRejects(() => storage.newOids(1), 'TROVE_CLOSED', 'newOids');
    },
    { readOnly: true },
  );
}

function readOnlyTests(test: Register): void {
  test(
    'refuses commit, newOids and pack with ReadOnlyError',
    async (storage) => {
      assert.equal(storage.readOnly, true);
      const readOnly = 'TROVE_READ_ONLY';
      await expectRejects(() => commit(storage, [put(ROOT, 'root')]), readOnly, 'commit');
      await expectRejects(() => storage.newOids(1), readOnly, 'newOids');
      await expectRejects(() => storage.newOids(0), readOnly, 'newOids(0)');
      expectThrows(() => newOidsNow(storage, 1), readOnly, 'newOidsNow');
      expectThrows(() => newOidsNow(storage, 0), readOnly, 'newOidsNow(0)');
      await expectRejects(() => storage.pack(), readOnly, 'pack');
      await expectRejects(
        () => storage.pack({ keepHistorySince: 0 }),
        readOnly,
        'pack with options',
      );
    },
    { readOnly: true },
  );

  test(
    'reads work on a read-only storage',
    async (storage) => {
      assert.equal(storage.lastTid(), 0);
      expectThrows(() => storage.load(ROOT), 'TROVE_NOT_FOUND');
      assert.equal(storage.loadBefore(ROOT, 1), undefined);
      assert.deepEqual(plainChanges(storage.changesSince(0)), []);
      assert.deepEqual(await collect(storage.iterator()), []);
      await assertIntact(storage);
      assert.equal(storage.stats().objects, 0);
      await expectRejects(() => commit(storage, [put(ROOT, 'root')]), 'TROVE_READ_ONLY');
      assert.equal(storage.lastTid(), 0, 'still empty');
    },
    { readOnly: true },
  );
}

function argumentTests(test: Register): void {
  const badOids: unknown[] = [
    '1',
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    null,
    undefined,
    2 ** 32,
    {},
    1n,
  ];
  const badTids: unknown[] = [
    '1',
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    null,
    {},
    [],
    2 ** 53,
    1n,
  ];

  /** Runs `check` on a storage with data, and asserts the storage is unchanged afterwards. */
  const unchanged = (
    title: string,
    check: (storage: Storage, env: Awaited<ReturnType<typeof packGraph>>) => Promise<void>,
  ) =>
    test(title, async (storage) => {
      const env = await packGraph(storage);
      const before = await captureState(storage, env.removed);
      await check(storage, env);
      assert.deepEqual(
        await captureState(storage, env.removed),
        before,
        'the storage is unchanged',
      );
    });

  unchanged('load refuses what is not an oid', async (storage) => {
    for (const oid of badOids)
      expectThrows(
        () => storage.load(oid as Oid),
        'TROVE_INVALID_ARGUMENT',
        `load(${String(oid)})`,
      );
  });

  unchanged('loadBefore refuses what is not an oid or a tid', async (storage, { a, t2 }) => {
    for (const oid of badOids) {
      expectThrows(
        () => storage.loadBefore(oid as Oid, t2),
        'TROVE_INVALID_ARGUMENT',
        `loadBefore(${String(oid)}, tid)`,
      );
    }
    for (const tid of [...badTids, undefined]) {
      expectThrows(
        () => storage.loadBefore(a, tid as Tid),
        'TROVE_INVALID_ARGUMENT',
        `loadBefore(a, ${String(tid)})`,
      );
    }
  });

  unchanged('changesSince refuses what is not a tid', async (storage) => {
    for (const tid of [...badTids, undefined]) {
      expectThrows(
        () => storage.changesSince(tid as Tid),
        'TROVE_INVALID_ARGUMENT',
        `changesSince(${String(tid)})`,
      );
    }
  });

  unchanged('iterator refuses what is not a tid', async (storage) => {
    for (const tid of badTids) {
      await expectIterationFails(
        () => storage.iterator(tid as Tid),
        'TROVE_INVALID_ARGUMENT',
        `iterator(${String(tid)})`,
      );
    }
  });

  unchanged('newOids refuses what is not a count, and allocates nothing', async (storage) => {
    const [before] = (await storage.newOids(1)) as [Oid];
    for (const count of [
      -1,
      1.5,
      '2',
      Number.NaN,
      Number.POSITIVE_INFINITY,
      null,
      undefined,
      {},
      2n,
    ]) {
      await expectRejects(
        () => storage.newOids(count as number),
        'TROVE_INVALID_ARGUMENT',
        `newOids(${String(count)})`,
      );
    }
    const [after] = (await storage.newOids(1)) as [Oid];
    assert.ok(after > before && after <= MAX_OID);
  });

  unchanged('commit refuses malformed requests and stores nothing', async (storage, { a, t2 }) => {
    const [n] = (await storage.newOids(1)) as [Oid];
    const good = () => ({ oid: n, data: bytes('n'), refs: [], expectedTid: 0 });
    const withWrite = (patch: Record<string, unknown>) => ({
      baseTid: t2,
      writes: [good(), { ...put(a, 'a2', storage.load(a).tid), ...patch }],
    });
    const requests: [string, unknown][] = [
      ['undefined', undefined],
      ['null', null],
      ['a string', 'commit'],
      ['an array', []],
      ['no baseTid', { writes: [good()] }],
      ['baseTid -1', { baseTid: -1, writes: [good()] }],
      ['baseTid a string', { baseTid: '0', writes: [good()] }],
      ['no writes', { baseTid: t2 }],
      ['writes a string', { baseTid: t2, writes: 'x' }],
      ['writes an object', { baseTid: t2, writes: { 0: good() } }],
      ['a null write', { baseTid: t2, writes: [good(), null] }],
      ['a number write', { baseTid: t2, writes: [good(), 42] }],
      ...badOids.map((oid): [string, unknown] => [`oid ${String(oid)}`, withWrite({ oid })]),
      ['data a string', withWrite({ data: 'abc' })],
      ['data an array', withWrite({ data: [1, 2] })],
      ['data an ArrayBuffer', withWrite({ data: new ArrayBuffer(2) })],
      ['data a Uint16Array', withWrite({ data: new Uint16Array(2) })],
      ['data null', withWrite({ data: null })],
      ['data missing', withWrite({ data: undefined })],
      ['refs missing', withWrite({ refs: undefined })],
      ['refs a string', withWrite({ refs: 'x' })],
      ['refs a Set', withWrite({ refs: new Set([ROOT]) })],
      ['refs with a string', withWrite({ refs: ['0'] })],
      ['refs with -1', withWrite({ refs: [-1] })],
      ['refs with 1.5', withWrite({ refs: [1.5] })],
      ['expectedTid missing', withWrite({ expectedTid: undefined })],
      ['expectedTid -1', withWrite({ expectedTid: -1 })],
      ['expectedTid a string', withWrite({ expectedTid: '0' })],
      ['expectedTid 1.5', withWrite({ expectedTid: 1.5 })],
      ['readCurrent a string', { baseTid: t2, writes: [good()], readCurrent: 'x' }],
      ['readCurrent an object', { baseTid: t2, writes: [good()], readCurrent: {} }],
      ['readCurrent [null]', { baseTid: t2, writes: [good()], readCurrent: [null] }],
      ['a guard without tid', { baseTid: t2, writes: [good()], readCurrent: [{ oid: a }] }],
      [
        'a guard with a bad oid',
        { baseTid: t2, writes: [good()], readCurrent: [{ oid: '1', tid: 0 }] },
      ],
      [
        'a guard with tid -1',
        { baseTid: t2, writes: [good()], readCurrent: [{ oid: a, tid: -1 }] },
      ],
      ['meta a string', { baseTid: t2, writes: [good()], meta: 'note' }],
      ['meta null', { baseTid: t2, writes: [good()], meta: null }],
      ['meta an array', { baseTid: t2, writes: [good()], meta: [] }],
      ['meta.note a number', { baseTid: t2, writes: [good()], meta: { note: 5 } }],
      ['meta.user an object', { baseTid: t2, writes: [good()], meta: { user: {} } }],
      ['an oid written twice', { baseTid: t2, writes: [good(), good()] }],
    ];
    for (const [label, request] of requests) {
      await expectRejects(
        () => storage.commit(request as never),
        'TROVE_INVALID_ARGUMENT',
        `commit: ${label}`,
      );
    }
    expectThrows(() => storage.load(n), 'TROVE_NOT_FOUND', 'the good write was not stored');
  });

  unchanged('pack refuses malformed options and packs nothing', async (storage, { removed }) => {
    const options: unknown[] = [
      'x',
      5,
      null,
      [],
      true,
      { keepHistorySince: 'yesterday' },
      { keepHistorySince: -1 },
      { keepHistorySince: 1.5 },
      { keepHistorySince: null },
      { keepHistorySince: new Date(Number.NaN) },
      { keepHistorySince: {} },
    ];
    for (const option of options) {
      await expectRejects(
        () => storage.pack(option as never),
        'TROVE_INVALID_ARGUMENT',
        `pack(${JSON.stringify(option)})`,
      );
    }
    for (const oid of removed) storage.load(oid);
  });

  unchanged(
    'stageBlob refuses what is not a blob source, or a stream another reader holds',
    async (storage) => {
      const locked = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array([1, 2, 3]));
          controller.close();
        },
      });
      const reader = locked.getReader();
      for (const source of [locked, 'text', 5, null, {}]) {
        await expectRejects(
          () => storage.stageBlob(source as never),
          'TROVE_INVALID_ARGUMENT',
          `stageBlob(${String(source)})`,
        );
      }
      // The reader that holds the stream still reads it all: nothing took a chunk.
      const first = await reader.read();
      assert.deepEqual(first.value, new Uint8Array([1, 2, 3]));
      assert.equal((await reader.read()).done, true);
    },
  );
}

function persistenceTests(test: Register): void {
  test('data, history, meta and lastTid survive close and reopen', async (first, harness) => {
    const h = await packHistory(first);
    const [c] = (await first.newOids(1)) as [Oid];
    const t6 = await commit(first, [put(c, 'c', 0, [h.a]), put(ROOT, 'r3', h.t3, [h.a, h.b, c])], {
      meta: { note: 'last', user: 'ada' },
    });
    const oids = [...h.oids, c];
    const probes = [...h.probes, t6, t6 + 1];
    const history = (storage: Storage) =>
      oids.flatMap((oid) => probes.map((tid) => [oid, tid, probeLoadBefore(storage, oid, tid)]));
    const before = await captureState(first);
    const historyBefore = history(first);
    const storage = await reopen(harness, first);
    assert.equal(storage.closed, false);
    assert.equal(storage.lastTid(), t6);
    const after = await captureState(storage);
    // A new instance knows no recent transactions: 'flush' (reload everything) is a correct
    // answer to changesSince for any older snapshot, as is the full list.
    assert.deepEqual(withoutChanges(after), withoutChanges(before));
    if (after.changes !== 'flush') assert.deepEqual(after.changes, before.changes);
    assert.deepEqual(history(storage), historyBefore, 'every historical read');
  });

  test('after a reopen, tids go on increasing and used oids are not handed out', async (first, harness) => {
    const { a, b, tid: t1 } = await rootAB(first);
    const [c] = (await first.newOids(1)) as [Oid];
    await commit(first, [put(c, 'c'), put(ROOT, 'r2', t1, [a, c])]);
    const last = first.lastTid();
    const reserved = newOidsNow(first, 5);
    const storage = await reopen(harness, first);
    const oids = await storage.newOids(20);
    for (const used of [ROOT, a, b, c]) assert.ok(!oids.includes(used), `oid ${used} reused`);
    for (const oid of reserved) assert.ok(!oids.includes(oid), `oid ${oid} handed out again`);
    const t3 = await commit(storage, [put(oids[0]!, 'new'), put(a, 'a2', t1)]);
    assert.ok(t3 > last);
    const again = await reopen(harness, storage);
    assertRecord(again.load(a), { oid: a, tid: t3, data: 'a2' });
    assertRecord(again.load(oids[0]!), { oid: oids[0]!, tid: t3, data: 'new' });
  });

  test('a pack survives a reopen', async (first, harness) => {
    const { kept, removed, t1 } = await packGraph(first);
    await first.pack();
    const storage = await reopen(harness, first);
    for (const oid of removed) expectThrows(() => storage.load(oid), 'TROVE_NOT_FOUND');
    for (const oid of kept) storage.load(oid);
    expectTooOld(storage, ROOT, t1 + 1);
    assert.equal(storage.stats().objects, kept.length);
    await assertIntact(storage);
    const oids = await storage.newOids(20);
    for (const oid of [...kept, ...removed]) assert.ok(!oids.includes(oid), `oid ${oid} reused`);
  });

  test('a read-only reopen reads the data and refuses writes', async (first, harness) => {
    const { a, b, tid } = await rootAB(first);
    const before = await captureState(first);
    const storage = await reopen(harness, first, { readOnly: true });
    assert.equal(storage.readOnly, true);
    assertRecord(storage.load(a), { oid: a, tid, data: 'a1', refs: [b] });
    const after = await captureState(storage);
    assert.deepEqual(withoutChanges(after), withoutChanges(before));
    if (after.changes !== 'flush') assert.deepEqual(after.changes, before.changes);
    await expectRejects(() => commit(storage, [put(a, 'x', tid)]), 'TROVE_READ_ONLY');
    await expectRejects(() => storage.newOids(1), 'TROVE_READ_ONLY');
    await expectRejects(() => storage.pack(), 'TROVE_READ_ONLY');
    const writable = await reopen(harness, storage);
    assertRecord(writable.load(a), { oid: a, tid, data: 'a1', refs: [b] });
  });
}
