/**
 * db.commit() of the default connection: one that can begin at once collects the changes
 * before it returns, so a close() called right after it (not awaited) leaves them to it; an
 * abort() while a commit runs or waits is refused (InvalidArgumentError), since it would
 * take changes from a waiting commit, or reload objects a running one is storing. Commits
 * waiting for one whose conflict discarded the changes fail with it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, open, PersistentMap } from 'trove';

describe('db.commit() followed at once by abort() or close()', () => {
  it('commit(); abort(): InvalidArgumentError, and the commit stores the changes made before it', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('x', 1);
    const committing = db.commit();
    assert.throws(() => db.abort(), { code: 'TROVE_INVALID_ARGUMENT' });
    const tid = await committing;
    assert.equal(storage.lastTid(), tid);
    const other = await open({ storage });
    assert.equal(other.root.get('x'), 1);
    assert.equal(db.root.get('x'), 1);
  });

  it('commit(); close(): close lets the commit requested before it finish', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const other = await open({ storage });
    db.root.set('x', 1);
    const committing = db.commit();
    const closing = db.close();
    await assert.doesNotReject(committing);
    await closing;
    other.abort();
    assert.equal(other.root.get('x'), 1);
  });

  it('commit(); commit(); close(): the second commit, waiting for the first, runs too', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const other = await open({ storage });
    db.root.set('x', 1);
    const first = db.commit();
    db.root.set('y', 2);
    const second = db.commit();
    const closing = db.close();
    const [t1, t2] = await Promise.all([first, second]);
    assert.ok(t2 > t1);
    await closing;
    other.abort();
    assert.deepEqual([other.root.get('x'), other.root.get('y')], [1, 2]);
  });

  it('abort() while a commit runs or waits: InvalidArgumentError, nothing lost', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('x', 1);
    const first = db.commit();
    db.root.set('y', 2);
    const second = db.commit();
    assert.throws(() => db.abort(), { code: 'TROVE_INVALID_ARGUMENT' });
    await first;
    await second;
    // Once no commit runs or waits, abort discards what was changed after them.
    db.root.set('z', 3);
    db.abort();
    const other = await open({ storage });
    assert.deepEqual(
      [other.root.get('x'), other.root.get('y'), other.root.get('z')],
      [1, 2, undefined],
    );
  });

  // Found in review: an abort during a commit took a new snapshot and reloaded an object the
  // commit was storing as it was before (a small cache evicted it), and the next commit
  // undid the first one without a conflict.
  it('an abort() refused during a commit leaves the commit standing for the next one', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage, cacheSize: 2 });
    for (let k = 0; k < 4; k++) db.root.set(`p${k}`, new PersistentMap([['a', 0]]));
    await db.commit();
    (db.root.get('p0') as PersistentMap).set('a', 1);
    const committing = db.commit();
    assert.throws(() => db.abort(), { code: 'TROVE_INVALID_ARGUMENT' });
    await committing;
    (db.root.get('p0') as PersistentMap).set('c', 1);
    await db.commit();
    const other = await open({ storage });
    assert.deepEqual(Object.fromEntries(other.root.get('p0') as PersistentMap), { a: 1, c: 1 });
  });

  // A commit waiting for an earlier one collects when it begins: the changes made meanwhile
  // go into the first waiting commit, and the later ones find nothing left.
  it('commits run in call order; together they store every change', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const commits: Promise<number>[] = [];
    for (let k = 1; k <= 5; k++) {
      db.root.set('k', k);
      commits.push(db.commit());
    }
    const tids = await Promise.all(commits);
    for (let i = 1; i < tids.length; i++) assert.ok(tids[i]! >= tids[i - 1]!);
    assert.equal(storage.lastTid(), tids.at(-1));
    const other = await open({ storage });
    assert.equal(other.root.get('k'), 5);
  });

  it('commits waiting for one that conflicts fail with it: the changes they were to store are discarded', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const other = await open({ storage });
    assert.equal(db.root.get('x'), undefined);
    await other.transaction((tx) => {
      tx.root.set('x', 'theirs');
    });
    db.root.set('x', 'mine');
    const first = db.commit();
    db.root.set('y', 'after the first commit began');
    const second = db.commit();
    const third = db.commit();
    await assert.rejects(first, { code: 'TROVE_CONFLICT', kind: 'write' });
    for (const waiting of [second, third]) {
      await assert.rejects(waiting, (error: Error & { code: string; cause: unknown }) => {
        assert.equal(error.code, 'TROVE_CONFLICT');
        assert.equal((error.cause as { code: string }).code, 'TROVE_CONFLICT');
        return true;
      });
    }
    assert.equal(db.root.get('y'), undefined);
    // Commits asked for after the conflict store what they are given.
    db.root.set('y', 'again');
    await db.commit();
    other.abort();
    assert.deepEqual([other.root.get('x'), other.root.get('y')], ['theirs', 'again']);
  });
});
