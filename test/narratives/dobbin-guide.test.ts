/**
 * The Dobbin user guide (0.1 and 0.3), redone as a test against trove's public API. Dobbin's
 * "second database instance on the same file" is a second handle on one MemoryStorage; its
 * threads are concurrent `db.transaction` calls interleaved with a gate.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConflictError,
  Counter,
  type Database,
  MemoryStorage,
  oidOf,
  open,
  Persistent,
  PersistentMap,
  persistent,
  ReadOnlyError,
} from 'trove';
import { gate, reopen, twoHandles } from '../support/handles.js';

@persistent('dobbinGuide.Person')
class Person extends Persistent {
  name: string;
  another: Person | undefined;
  constructor(name: string) {
    super();
    this.name = name;
  }
}

/** Dobbin 0.3's counter, "which keeps track of visitors on a website". */
@persistent('dobbinGuide.HitCounter')
class HitCounter extends Persistent {
  count = 0;
  hit(): void {
    this.count += 1;
  }
  static resolveConflict(
    oldState: { count: number },
    savedState: { count: number },
    newState: { count: number },
  ): { count: number } {
    const savedDiff = savedState.count - oldState.count;
    const newDiff = newState.count - oldState.count;
    return { count: oldState.count + savedDiff + newDiff };
  }
}

/** A counter without conflict resolution: "no built-in conflict resolution in the base class". */
@persistent('dobbinGuide.PlainCounter')
class PlainCounter extends Persistent {
  count = 0;
}

function objects(db: Database): number {
  return db.stats().storage.objects;
}
function transactions(db: Database): number {
  return db.stats().storage.commits;
}

describe('Dobbin user guide', () => {
  it('runs the whole narrative: root, sharing, conflicts, more objects, circular references', async () => {
    // Setup. A new database has only its (empty) root.
    const { db, db2: newDb } = await twoHandles();
    assert.equal(objects(db), 1);
    const root = db.root;
    assert.equal(root.size, 0);

    // Electing a root object: here the root is the fixed PersistentMap; the object goes in it.
    const obj = new Person('John');
    assert.equal(oidOf(obj), undefined);
    root.set('obj', obj);
    await db.commit();
    assert.equal(objects(db), 2, 'the database contains the root and the object');
    const afterFirst = transactions(db);

    // Transactions: the log grows with every commit.
    obj.name = 'James';
    await db.commit();
    assert.equal(transactions(db), afterFirst + 1);

    // Sharing the database: objects from another instance are new instances.
    newDb.abort();
    const newObj = newDb.root.get('obj') as Person;
    assert.notEqual(newObj, obj);
    assert.ok(newObj instanceof Person);
    assert.equal(newObj.name, 'James', 'transactions propagate between instances');

    obj.name = 'Jane';
    await db.commit();
    assert.equal(newObj.name, 'James', 'the second instance is not up to date yet');
    newDb.abort(); // "When we enter a new transaction, the two instances will again be in sync."
    assert.equal(newObj.name, 'Jane');

    // Conflicts: two transactions change the same object; the first to commit wins.
    const flag = gate();
    const thread = db.transaction(
      async (tx) => {
        (tx.root.get('obj') as Person).name = 'Bob';
        await flag.promise;
      },
      { attempts: 1 },
    );
    obj.name = 'Bill'; // the main thread's change
    flag.open();
    await thread; // the thread's transaction was committed
    const beforeConflict = transactions(db);
    await assert.rejects(db.commit(), { code: 'TROVE_CONFLICT', name: 'ConflictError' });
    assert.equal(transactions(db), beforeConflict, 'a failed commit writes nothing');
    assert.equal(obj.name, 'Bob', 'objects show the state of the most recent transaction');

    // Two instances of the database can conflict too.
    newDb.abort();
    newObj.name = 'Ian';
    obj.name = 'Ilya';
    await newDb.commit();
    await assert.rejects(db.commit(), ConflictError);
    assert.equal(obj.name, 'Ian', 'the state reflects the transaction committed elsewhere');

    // More objects: when objects are added to the object graph, they are persisted.
    const another = new Person('Karla');
    obj.another = another;
    await db.commit();
    assert.equal(objects(db), 3);
    assert.notEqual(oidOf(another), undefined);
    assert.equal(obj.another, another, 'persistent objects are never copied');

    // Circular references are permitted, and identity holds.
    another.another = obj;
    await db.commit();
    assert.equal(another.another, obj);
    assert.equal(obj.another.another, obj);

    // The new object propagates to the second instance with its identities intact.
    newDb.abort();
    const newAnother = newObj.another!;
    assert.ok(newAnother instanceof Person);
    assert.equal(newAnother.name, 'Karla');
    assert.equal(newAnother.another, newObj);
    assert.equal(newObj.another!.another!.another, newAnother);
  });

  it('a persistent object not connected to the graph is not stored', async () => {
    const db = await open({ storage: new MemoryStorage() });
    const before = objects(db);
    const loose = new Person('nobody');
    await db.commit();
    assert.equal(oidOf(loose), undefined);
    assert.equal(objects(db), before);
    db.root.set('loose', loose);
    await db.commit();
    assert.equal(typeof oidOf(loose), 'number');
    assert.equal(objects(db), before + 1);
  });

  it('a read-only snapshot refuses attribute writes (Dobbin: "Can\'t set attribute in read-only mode")', async () => {
    const db = await open({ storage: new MemoryStorage() });
    db.root.set('obj', new Person('John'));
    await db.commit();
    await db.read((tx) => {
      const p = tx.root.get('obj') as Person;
      assert.throws(
        () => {
          p.name = 'James';
        },
        (error: unknown) => error instanceof ReadOnlyError && error.code === 'TROVE_READ_ONLY',
      );
      assert.equal(p.name, 'John');
    });
    assert.equal((db.root.get('obj') as Person).name, 'John');
  });

  it('a counter with resolveConflict counts two concurrent hits as 2 (threads)', async () => {
    const db = await open({ storage: new MemoryStorage() });
    const counter = new HitCounter();
    db.root.set('counter', counter);
    await db.commit();

    let runs = 0;
    const flag = gate();
    const thread = db.transaction(
      async (tx) => {
        runs++;
        (tx.root.get('counter') as HitCounter).hit();
        await flag.promise;
      },
      { attempts: 1 }, // the merge must make it commit without a retry
    );
    assert.equal(counter.count, 0);
    counter.hit();
    await db.commit(); // the main thread commits first
    flag.open();
    await thread;
    assert.equal(runs, 1);

    db.abort();
    assert.equal(counter.count, 2);
    assert.equal(await db.read((tx) => (tx.root.get('counter') as HitCounter).count), 2);
  });

  it('a counter with resolveConflict counts two concurrent hits as 2 (two database instances)', async () => {
    const { storage, db, db2 } = await twoHandles();
    db.root.set('counter', new HitCounter());
    await db.commit();
    db2.abort();
    const c1 = db.root.get('counter') as HitCounter;
    const c2 = db2.root.get('counter') as HitCounter;
    c1.hit();
    c2.hit();
    await db.commit();
    await db2.commit();
    assert.equal(c2.count, 2, 'the resolved state is what the committer sees');
    db.abort();
    assert.equal(c1.count, 2);
    assert.equal(((await reopen(storage)).root.get('counter') as HitCounter).count, 2);
  });

  it('the built-in Counter never conflicts either', async () => {
    const db = await open({ storage: new MemoryStorage() });
    db.root.set('visits', new Counter());
    await db.commit();
    const flags = [gate(), gate(), gate()];
    const all = flags.map((flag) =>
      db.transaction(
        async (tx) => {
          (tx.root.get('visits') as Counter).increment();
          await flag.promise;
        },
        { attempts: 1 },
      ),
    );
    for (const flag of flags) flag.open();
    await Promise.all(all);
    db.abort();
    assert.equal((db.root.get('visits') as Counter).value, 3);
  });

  it('without resolveConflict two concurrent increments conflict; db.transaction retries', async () => {
    const db = await open({ storage: new MemoryStorage() });
    db.root.set('c', new PlainCounter());
    await db.commit();

    // With a single attempt the loser fails with a ConflictError and changes nothing.
    const flag = gate();
    const loser = db.transaction(
      async (tx) => {
        (tx.root.get('c') as PlainCounter).count += 1;
        await flag.promise;
      },
      { attempts: 1 },
    );
    await db.transaction((tx) => {
      (tx.root.get('c') as PlainCounter).count += 1;
    });
    flag.open();
    await assert.rejects(loser, (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.equal(error.code, 'TROVE_CONFLICT');
      assert.equal(error.className, 'dobbinGuide.PlainCounter');
      return true;
    });
    assert.equal(await db.read((tx) => (tx.root.get('c') as PlainCounter).count), 1);

    // With retries (the default) the loser runs again on a fresh snapshot and both count.
    let runs = 0;
    const flag2 = gate();
    const retried = db.transaction(async (tx) => {
      runs++;
      (tx.root.get('c') as PlainCounter).count += 1;
      if (runs === 1) await flag2.promise;
    });
    await db.transaction((tx) => {
      (tx.root.get('c') as PlainCounter).count += 1;
    });
    flag2.open();
    await retried;
    assert.equal(runs, 2);
    assert.equal(await db.read((tx) => (tx.root.get('c') as PlainCounter).count), 3);
  });

  it('a persistent dictionary stores entries and attributes independently', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const obj = new Person('owner');
    db.root.set('obj', obj);
    const pdict = new PersistentMap<string, unknown>() as PersistentMap<string, unknown> & {
      name?: string;
    };
    (obj as Person & { pdict?: unknown }).pdict = pdict;
    pdict.set('obj', obj);
    assert.equal(pdict.get('obj'), obj);
    pdict.name = 'Bob';
    await db.commit();
    assert.equal(pdict.get('obj'), obj);
    assert.equal(pdict.name, 'Bob');
    assert.equal(pdict.has('name'), false, 'attributes are not entries');
    assert.equal(pdict.size, 1);

    const tmp = (await reopen(storage)).root.get('obj') as Person & {
      pdict: PersistentMap<string, unknown> & { name?: string };
    };
    assert.equal(tmp.pdict.get('obj'), tmp, 'the object graph is equal to the original');
    assert.equal(tmp.pdict.name, 'Bob');
    assert.deepEqual([...tmp.pdict.keys()], ['obj']);
  });
});
