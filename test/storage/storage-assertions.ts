/**
 * Helpers of the storage conformance suite: building commit requests, asserting error codes
 * and records, and capturing a storage's whole visible state to show that a failed operation
 * changed nothing. Everything here goes through the public storage contract only.
 */
import assert from 'node:assert/strict';
import {
  type ChangesSince,
  ConflictError,
  type Oid,
  type RecordWrite,
  type Storage,
  type StoredRecord,
  type Tid,
  type TransactionMeta,
  TroveError,
} from 'trove';

/** The largest oid a storage accepts (storage.ts MAX_OID; oids stay 32-bit). */
export const MAX_OID = 0xffff_fffe;

/** The root object's oid. */
export const ROOT = 0;

/**
 * `storage.newOidsNow(count)`: the internal allocation that never waits (hidden from the
 * public typings), which every storage has through the base class.
 */
export function newOidsNow(storage: Storage, count: number): Oid[] {
  return (storage as unknown as { newOidsNow(count: number): Oid[] }).newOidsNow(count);
}

/** Bytes from a string (UTF-8), an array of numbers, or bytes (copied). */
export function bytes(value: string | readonly number[] | Uint8Array): Uint8Array {
  if (typeof value === 'string') return new TextEncoder().encode(value);
  return Uint8Array.from(value);
}

/** One write of a commit request. */
export function put(
  oid: Oid,
  data: string | readonly number[] | Uint8Array,
  expectedTid: Tid = 0,
  refs: readonly Oid[] = [],
): RecordWrite {
  return { oid, data: bytes(data), refs: [...refs], expectedTid };
}

/** Commits `writes` on the storage's current snapshot and returns the new tid. */
export async function commit(
  storage: Storage,
  writes: readonly RecordWrite[],
  extra: {
    readCurrent?: readonly { oid: Oid; tid: Tid }[];
    meta?: TransactionMeta;
  } = {},
): Promise<Tid> {
  return storage.commit({ baseTid: storage.lastTid(), writes, ...extra });
}

/** A record as plain data, refs sorted, so records from any backend compare with deepEqual. */
export interface PlainRecord {
  oid: Oid;
  tid: Tid;
  data: number[];
  refs: Oid[];
}

export function plain(record: StoredRecord): PlainRecord {
  return {
    oid: record.oid,
    tid: record.tid,
    data: Array.from(record.data),
    refs: [...record.refs].sort((a, b) => a - b),
  };
}

/** Asserts a record's oid, tid, bytes and refs (refs compared as a set). */
export function assertRecord(
  actual: StoredRecord | undefined,
  expected: { oid: Oid; tid: Tid; data: string | readonly number[] | Uint8Array; refs?: Oid[] },
  message?: string,
): void {
  assert.ok(actual !== undefined, message ?? `expected a record of oid ${expected.oid}`);
  assert.ok(actual.data instanceof Uint8Array, 'record data is a Uint8Array');
  assert.deepEqual(
    plain(actual),
    {
      oid: expected.oid,
      tid: expected.tid,
      data: Array.from(bytes(expected.data)),
      refs: [...(expected.refs ?? [])].sort((a, b) => a - b),
    },
    message,
  );
}

/** Asserts that a TroveError carries `code`, and returns it. */
function checkCode(error: unknown, code: string, what: string): TroveError {
  assert.ok(error instanceof TroveError, `${what}: expected a TroveError ${code}, got ${error}`);
  assert.equal(error.code, code, `${what}: error code`);
  return error;
}

/** Calls a synchronous method and asserts it throws a TroveError with `code`. */
export function expectThrows(fn: () => unknown, code: string, what = 'call'): TroveError {
  try {
    fn();
  } catch (error) {
    return checkCode(error, code, what);
  }
  assert.fail(`${what}: expected ${code}, but it returned normally`);
}

/**
 * Calls an asynchronous method and asserts it rejects with a TroveError with `code`. An async
 * method must reject, not throw synchronously, so that `.catch()` handlers see its errors.
 */
export async function expectRejects(
  fn: () => Promise<unknown>,
  code: string,
  what = 'call',
): Promise<TroveError> {
  let promise: Promise<unknown>;
  try {
    promise = fn();
  } catch (error) {
    assert.fail(`${what}: threw synchronously (${error}) instead of returning a rejected promise`);
  }
  assert.ok(promise instanceof Promise, `${what}: returns a promise`);
  try {
    await promise;
  } catch (error) {
    return checkCode(error, code, what);
  }
  assert.fail(`${what}: expected ${code}, but it resolved`);
}

/** Reads a whole async iterable into an array. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/**
 * Asserts that iterating `iterator()` fails with `code`, whether the call itself throws or the
 * iteration rejects (both are fine for an iterator).
 */
export async function expectIterationFails(
  makeIterable: () => AsyncIterable<unknown>,
  code: string,
  what = 'iterator',
): Promise<TroveError> {
  try {
    await collect(makeIterable());
  } catch (error) {
    return checkCode(error, code, what);
  }
  assert.fail(`${what}: expected ${code}, but iteration completed`);
}

/** One conflicting object, as a storage commit conflict reports it. */
export interface ConflictEntry {
  readonly oid: Oid;
  readonly kind: 'write' | 'read';
  readonly expectedTid: Tid;
  readonly committed: StoredRecord | undefined;
}

/** Asserts `error` is a storage commit conflict and returns its per-object conflicts. */
export function conflictsOf(error: unknown): readonly ConflictEntry[] {
  assert.ok(error instanceof ConflictError, `expected a ConflictError, got ${error}`);
  assert.equal(error.code, 'TROVE_CONFLICT');
  const conflicts = (error as { conflicts?: unknown }).conflicts;
  assert.ok(Array.isArray(conflicts), 'a commit conflict carries a conflicts array');
  assert.ok(conflicts.length > 0, 'a commit conflict lists at least one object');
  return conflicts as ConflictEntry[];
}

/** Commits and asserts a conflict; returns the conflicts. */
export async function commitConflicts(
  storage: Storage,
  writes: readonly RecordWrite[],
  extra: { readCurrent?: readonly { oid: Oid; tid: Tid }[] } = {},
): Promise<readonly ConflictEntry[]> {
  const error = await expectRejects(() => commit(storage, writes, extra), 'TROVE_CONFLICT');
  return conflictsOf(error);
}

/** Finds the one conflict about `oid` of `kind`. */
export function conflictAbout(
  conflicts: readonly ConflictEntry[],
  oid: Oid,
  kind: 'write' | 'read',
): ConflictEntry {
  const found = conflicts.filter((c) => c.oid === oid && c.kind === kind);
  assert.equal(found.length, 1, `one ${kind} conflict about oid ${oid} in ${describe(conflicts)}`);
  return found[0]!;
}

/** The set of `kind:oid` of conflicts, for comparing with an expected set. */
export function conflictKeys(conflicts: readonly ConflictEntry[]): string[] {
  return [...new Set(conflicts.map((c) => `${c.kind}:${c.oid}`))].sort();
}

function describe(conflicts: readonly ConflictEntry[]): string {
  return JSON.stringify(conflicts.map((c) => ({ oid: c.oid, kind: c.kind })));
}

/** changesSince as plain data, oids sorted. */
export function plainChanges(changes: ChangesSince): 'flush' | { tid: Tid; oids: Oid[] }[] {
  if (changes === 'flush') return 'flush';
  assert.ok(Array.isArray(changes), 'changesSince returns an array or "flush"');
  return changes.map((c) => ({ tid: c.tid, oids: [...c.oids].sort((a, b) => a - b) }));
}

/** Every transaction from the iterator as plain data. */
export async function plainTransactions(storage: Storage, fromTid?: Tid) {
  const transactions = await collect(
    fromTid === undefined ? storage.iterator() : storage.iterator(fromTid),
  );
  return transactions.map((t) => ({
    tid: t.tid,
    note: t.meta.note,
    user: t.meta.user,
    records: t.records.map(plain).sort((a, b) => a.oid - b.oid),
  }));
}

/**
 * Everything a storage shows through its contract, as plain data: used to show that a failed
 * operation left the storage exactly as it was. `extraOids` are also loaded (for example oids
 * a failed commit tried to create).
 */
export async function captureState(storage: Storage, extraOids: readonly Oid[] = []) {
  const transactions = await plainTransactions(storage);
  const oids = new Set<Oid>([ROOT, ...extraOids]);
  for (const t of transactions) for (const r of t.records) oids.add(r.oid);
  const current: Record<number, PlainRecord | 'absent'> = {};
  for (const oid of [...oids].sort((a, b) => a - b)) {
    try {
      current[oid] = plain(storage.load(oid));
    } catch (error) {
      checkCode(error, 'TROVE_NOT_FOUND', `load(${oid})`);
      current[oid] = 'absent';
    }
  }
  const stats = storage.stats();
  return {
    lastTid: storage.lastTid(),
    changes: plainChanges(storage.changesSince(0)),
    transactions,
    current,
    objects: stats.objects,
    commits: stats.commits,
  };
}

/** loadBefore as plain data (with nextTid), or undefined, or the error code it threw. */
export function probeLoadBefore(
  storage: Storage,
  oid: Oid,
  tid: Tid,
): (PlainRecord & { nextTid: Tid | undefined }) | undefined | { error: string } {
  try {
    const record = storage.loadBefore(oid, tid);
    return record === undefined ? undefined : { ...plain(record), nextTid: record.nextTid };
  } catch (error) {
    if (error instanceof TroveError) return { error: error.code };
    throw error;
  }
}

/**
 * Asserts that a historical read of a snapshot older than a pack's cut is either the answer the
 * storage gave before the pack (it kept that revision) or a read conflict (snapshot too old).
 * Never wrong data, never "did not exist".
 */
export function assertOldReadCorrectOrTooOld(
  storage: Storage,
  oid: Oid,
  tid: Tid,
  before: ReturnType<typeof probeLoadBefore>,
): void {
  let after: ReturnType<typeof probeLoadBefore>;
  try {
    const record = storage.loadBefore(oid, tid);
    after = record === undefined ? undefined : { ...plain(record), nextTid: record.nextTid };
  } catch (error) {
    assert.ok(error instanceof ConflictError, `loadBefore(${oid}, ${tid}): ${error}`);
    assert.equal(error.code, 'TROVE_CONFLICT');
    assert.equal(error.kind, 'read', 'a snapshot that is too old is a read conflict');
    return;
  }
  assert.deepEqual(after, before, `loadBefore(${oid}, ${tid}) after the pack`);
}
