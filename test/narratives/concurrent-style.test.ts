/**
 * The concurrent-style API (db.transaction, db.read, tx.getObject, tx.readCurrent) told as a
 * narrative: snapshots, isolation, and guarded reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConflictError,
  MemoryStorage,
  NotFoundError,
  oidOf,
  open,
  Persistent,
  registerClass,
} from 'trove';
import { gate } from '../support/handles.js';

class Account extends Persistent {
  balance: number;
  constructor(balance: number) {
    super();
    this.balance = balance;
  }
}
registerClass(Account, 'concurrentStyle.Account');

async function bank() {
  const db = await open({ storage: new MemoryStorage() });
  const alice = new Account(100);
  const bob = new Account(50);
  db.root.set('alice', alice);
  db.root.set('bob', bob);
  await db.commit();
  return { db, alice, bob };
}

describe('concurrent style', () => {
  it('db.transaction commits what fn changed and returns what fn returned', async () => {
    const { db } = await bank();
    const result = await db.transaction((tx) => {
      const alice = tx.root.get('alice') as Account;
      alice.balance -= 10;
      (tx.root.get('bob') as Account).balance += 10;
      return alice.balance;
    });
    assert.equal(result, 90);
    const balances = await db.read((tx) => [
      (tx.root.get('alice') as Account).balance,
      (tx.root.get('bob') as Account).balance,
    ]);
    assert.deepEqual(balances, [90, 60]);
  });

  it('db.read and db.transaction always take a fresh snapshot', async () => {
    const { db, alice } = await bank();
    const read = () => db.read((tx) => (tx.root.get('alice') as Account).balance);
    assert.equal(await read(), 100);
    alice.balance = 1;
    assert.equal(await read(), 100, 'uncommitted changes of the default connection are private');
    await db.commit();
    assert.equal(await read(), 1);
    await db.transaction((tx) => {
      (tx.root.get('alice') as Account).balance = 2;
    });
    assert.equal(await read(), 2);
    assert.equal(alice.balance, 1, 'the default connection still reads its own snapshot');
    db.abort();
    assert.equal(alice.balance, 2);
  });

  it('a transaction reads one snapshot even while others commit (snapshot isolation)', async () => {
    const { db } = await bank();
    const flag = gate();
    const reader = db.read(async (tx) => {
      const before = (tx.root.get('alice') as Account).balance;
      const snapshot = tx.snapshotTid;
      await flag.promise;
      // bob was never loaded by this transaction before the other commit: it must still be
      // read as of the snapshot, not as committed now.
      return [before, (tx.root.get('bob') as Account).balance, snapshot === tx.snapshotTid];
    });
    await db.transaction((tx) => {
      (tx.root.get('alice') as Account).balance = 0;
      (tx.root.get('bob') as Account).balance = 150;
    });
    flag.open();
    assert.deepEqual(await reader, [100, 50, true]);
  });

  it('a transaction sees its own uncommitted writes', async () => {
    const { db } = await bank();
    await db.transaction((tx) => {
      const alice = tx.root.get('alice') as Account;
      alice.balance = 7;
      assert.equal((tx.root.get('alice') as Account).balance, 7);
      assert.equal(tx.getObject<Account>(oidOf(alice)!).balance, 7);
      tx.root.set('carol', new Account(3));
      assert.equal((tx.root.get('carol') as Account).balance, 3);
    });
    assert.equal(await db.read((tx) => (tx.root.get('carol') as Account).balance), 3);
  });

  it('oidOf and tx.getObject find a stored object by oid, as the same object', async () => {
    const { db, alice } = await bank();
    const oid = oidOf(alice);
    assert.equal(typeof oid, 'number');
    assert.equal(oidOf(db.root), 0);
    assert.equal(db.getObject(oid!), alice, 'db.getObject on the default connection');
    await db.read((tx) => {
      const loaded = tx.getObject<Account>(oid!);
      assert.ok(loaded instanceof Account);
      assert.equal(loaded.balance, 100);
      assert.equal(loaded, tx.root.get('alice'), 'one oid is one object within a transaction');
      assert.equal(tx.getObject(0), tx.root);
      assert.throws(() => tx.getObject(oid! + 1000), NotFoundError);
    });
  });

  it('an object created in a transaction gets an oid when it commits', async () => {
    const { db } = await bank();
    let carol: Account | undefined;
    await db.transaction((tx) => {
      carol = new Account(0);
      tx.root.set('carol', carol);
      assert.equal(oidOf(carol), undefined);
    });
    const oid = oidOf(carol!);
    assert.equal(typeof oid, 'number');
    assert.equal(await db.read((tx) => oidOf(tx.root.get('carol'))), oid);
  });

  it('tx.readCurrent makes the commit fail when an object it only read changed meanwhile', async () => {
    const { db } = await bank();
    const flag = gate();
    // Transfer from alice to bob only if alice can afford it: alice is read, not written.
    const transfer = db.transaction(
      async (tx) => {
        const alice = tx.root.get('alice') as Account;
        tx.readCurrent(alice);
        if (alice.balance >= 80) (tx.root.get('bob') as Account).balance += 80;
        await flag.promise;
      },
      { attempts: 1 },
    );
    await db.transaction((tx) => {
      (tx.root.get('alice') as Account).balance = 10;
    });
    flag.open();
    await assert.rejects(transfer, (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.equal(error.code, 'TROVE_CONFLICT');
      assert.equal(error.kind, 'read');
      return true;
    });
    assert.equal(await db.read((tx) => (tx.root.get('bob') as Account).balance), 50);
  });

  it('without readCurrent the same interleaving commits (write skew is allowed)', async () => {
    const { db } = await bank();
    const flag = gate();
    const transfer = db.transaction(
      async (tx) => {
        const alice = tx.root.get('alice') as Account;
        if (alice.balance >= 80) (tx.root.get('bob') as Account).balance += 80;
        await flag.promise;
      },
      { attempts: 1 },
    );
    await db.transaction((tx) => {
      (tx.root.get('alice') as Account).balance = 10;
    });
    flag.open();
    await transfer;
    assert.equal(await db.read((tx) => (tx.root.get('bob') as Account).balance), 130);
  });

  it('a readCurrent guard retried by db.transaction decides again on a fresh snapshot', async () => {
    const { db } = await bank();
    const flag = gate();
    let runs = 0;
    const transfer = db.transaction(async (tx) => {
      runs++;
      const alice = tx.root.get('alice') as Account;
      tx.readCurrent(alice);
      if (alice.balance >= 80) (tx.root.get('bob') as Account).balance += 80;
      if (runs === 1) await flag.promise;
    });
    await db.transaction((tx) => {
      (tx.root.get('alice') as Account).balance = 10;
    });
    flag.open();
    await transfer;
    assert.equal(runs, 2);
    assert.equal(await db.read((tx) => (tx.root.get('bob') as Account).balance), 50);
  });

  it('an exception in fn aborts the transaction and propagates', async () => {
    const { db } = await bank();
    await assert.rejects(
      db.transaction((tx) => {
        (tx.root.get('alice') as Account).balance = -1;
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await db.read((tx) => (tx.root.get('alice') as Account).balance), 100);
  });

  it('db.stats counts cache hits and misses', async () => {
    const { db } = await bank();
    const before = db.stats().cache;
    await db.read((tx) => {
      tx.root.get('alice');
      tx.root.get('bob');
    });
    const after = db.stats().cache;
    assert.ok(after.misses + after.hits > before.misses + before.hits);
    assert.ok(after.objects >= 1);
  });
});
