/**
 * Oids without waiting (the storage's internal newOidsNow): a FileStorage reserves a block
 * at once when the writer lock is free and nothing of its own is under way, hands out only
 * what it already reserved otherwise, and a failed reservation leaves the file as it was.
 * A commit of many new objects uses it, so its walk over the objects runs once.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  type Database,
  FileStorage,
  type Oid,
  oidOf,
  open,
  PersistentList,
  type Storage,
  StorageIOError,
} from 'trove';
import { type FileOps, fileOps } from '../crash/support.js';
import { newOidsNow } from '../storage/storage-assertions.js';
import { FaultyOps, withFileOps } from './support/faulty-ops.js';
import { Item } from './support/model.js';
import { scratch } from './support/temp-dir.js';

/** A FileStorage (durability `none`) whose file operations go through `ops`. */
function openWithOps(path: string, ops: FileOps): Promise<FileStorage> {
  return FileStorage.open(path, withFileOps({ durability: 'none' }, ops));
}

/** Commits a list of 500 new items at the root's `items`: a commit of many new objects. */
function commitManyItems(db: Database): Promise<void> {
  return db.transaction((tx) => {
    tx.root.set(
      'items',
      new PersistentList(Array.from({ length: 500 }, (_, i) => new Item(`item ${i}`))),
    );
  });
}

function assertDisjoint(...groups: readonly Oid[][]): void {
  const all = groups.flat();
  assert.equal(new Set(all).size, all.length, `some oid was handed out twice: ${all}`);
}

/** Counts the storage's waiting allocations (newOids). */
function countNewOids(storage: Storage): { calls: number } {
  const counter = { calls: 0 };
  const newOids = storage.newOids.bind(storage);
  storage.newOids = (count: number) => {
    counter.calls++;
    return newOids(count);
  };
  return counter;
}

describe('FileStorage: oids without waiting', () => {
  it('a new handle reserves at once when the writer lock is free', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const one = dir.track(await FileStorage.open(path, { durability: 'none' }));
    const size = statSync(path).size;
    const now = newOidsNow(one, 10);
    assert.equal(now.length, 10);
    assert.ok(statSync(path).size > size, 'the reservation is in the file');
    assert.deepEqual(newOidsNow(one, 0), []);
    const two = dir.track(await FileStorage.open(path, { durability: 'none' }));
    assertDisjoint(now, newOidsNow(two, 10), await two.newOids(10), newOidsNow(one, 100));
  });

  it('while the writer lock is taken, hands out only what it reserved, without waiting', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const faults = new FaultyOps(path);
    const holder = dir.track(await openWithOps(path, faults.ops));
    const other = dir.track(await FileStorage.open(path, { durability: 'none' }));
    const [first] = await holder.newOids(1);
    const gate = faults.holdNextWrite('data file');
    const committing = holder.commit({
      baseTid: holder.lastTid(),
      writes: [{ oid: first!, data: new Uint8Array([1]), refs: [], expectedTid: 0 }],
    });
    await gate.reached;
    // The other handle cannot take the lock: it has nothing reserved, so none.
    assert.deepEqual(newOidsNow(other, 5), []);
    // The holder is busy with its own commit: what is left of its block, no more.
    const few = newOidsNow(holder, 3);
    assert.equal(few.length, 3);
    const rest = newOidsNow(holder, 1_000_000);
    assert.ok(rest.length < 1_000_000);
    assert.deepEqual(newOidsNow(holder, 1), [], 'the block is used up');
    gate.open();
    await committing;
    // The commit settles just before its handle lets the lock go.
    await new Promise((resolve) => setImmediate(resolve));
    const later = newOidsNow(other, 5);
    assert.equal(later.length, 5);
    assertDisjoint([first!], few, rest, later);
  });

  it('without synchronous writes in its file operations, hands out only reserved oids', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const faults = new FaultyOps(path);
    const storage = dir.track(await openWithOps(path, faults.ops));
    assert.deepEqual(newOidsNow(storage, 5), []);
    const waited = await storage.newOids(1);
    const now = newOidsNow(storage, 5);
    assert.equal(now.length, 5, 'from the block the waiting allocation reserved');
    assertDisjoint(waited, now);
  });

  it('a failing reservation throws StorageIOError and leaves the file as it was', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const real = fileOps.nodeFileOps;
    let fail = true;
    const ops: FileOps = {
      ...real,
      writeNow(fd, buffer, position) {
        if (fail) {
          fail = false;
          real.writeNow!(fd, buffer.subarray(0, buffer.byteLength >> 1), position);
          throw Object.assign(new Error('ENOSPC (injected)'), { code: 'ENOSPC' });
        }
        real.writeNow!(fd, buffer, position);
      },
    };
    const storage = dir.track(await openWithOps(path, ops));
    const size = statSync(path).size;
    assert.throws(
      () => newOidsNow(storage, 5),
      (error) =>
        error instanceof StorageIOError &&
        error.code === 'TROVE_IO' &&
        error.systemCode === 'ENOSPC',
    );
    assert.equal(statSync(path).size, size, 'the partial reservation was cut off');
    const now = newOidsNow(storage, 5);
    assert.equal(now.length, 5);
    await storage.commit({
      baseTid: storage.lastTid(),
      writes: now.map((oid) => ({ oid, data: new Uint8Array([1]), refs: [], expectedTid: 0 })),
    });
    assert.deepEqual(await storage.integrityCheck(), { ok: true, failures: [] });
  });

  it('a commit of many new objects needs no waiting allocation when the lock is free', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const storage = await FileStorage.open(path, { durability: 'none' });
    const waits = countNewOids(storage);
    const db = dir.track(await open({ storage }));
    await commitManyItems(db);
    assert.equal(waits.calls, 0);
    await db.read((tx) => {
      const items = tx.root.get('items') as PersistentList<Item>;
      assert.deepEqual(
        items.map((item) => item.name),
        Array.from({ length: 500 }, (_, i) => `item ${i}`),
      );
    });
  });

  it('a commit of many new objects still works when oids must be waited for', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const faults = new FaultyOps(path);
    const storage = await openWithOps(path, faults.ops);
    const waits = countNewOids(storage);
    const db = dir.track(await open({ storage }));
    await commitManyItems(db);
    assert.ok(waits.calls > 0);
    await db.close();
    const again = dir.track(await open(path));
    await again.read((tx) => {
      const items = tx.root.get('items') as PersistentList<Item>;
      assert.equal(items.length, 500);
      assert.equal(items[499]!.name, 'item 499');
    });
  });

  // Found in a bug hunt: each pooled connection took 64 oids and lost what it did not use
  // when it closed, and each handle reserved 64 at its first new object: 36 oids per object
  // made in short sessions, and the index (then an array by oid) grew as much.
  it('oids are not squandered by pooled connections and short sessions', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    for (let session = 0; session < 10; session++) {
      const db = await open(path, { durability: 'none', poolSize: 2 });
      const made = Array.from({ length: 8 }, (_, i) =>
        db.transaction((tx) => {
          tx.root.set(`s${session}-${i}`, new Item(`${session}-${i}`, 'x'));
        }),
      );
      await Promise.all(made);
      await db.close();
    }
    const db = dir.track(await open(path, { readOnly: true }));
    const oids = [...db.root.values()].map((item) => oidOf(item)!);
    assert.equal(oids.length, 80);
    // 80 objects and the root; each session may lose what is left of its reservations.
    const highest = Math.max(...oids);
    assert.ok(highest < 81 + 10 * 16, `the highest oid is ${highest}`);
  });
});
