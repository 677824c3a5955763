/**
 * The Durus user guide, redone as a test against trove's public API. Durus runs one
 * server and several clients (`durus -s`, `durus -c`); here each client is a database
 * handle on one shared MemoryStorage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConflictError,
  MemoryStorage,
  oidOf,
  open,
  Persistent,
  PersistentList,
  PersistentMap,
  registerClass,
} from 'trove';
import { reopen, twoHandles } from '../support/handles.js';

/** "Assume mymodule defines A as a subclass of Persistent." */
class A extends Persistent {
  label = '';
  items: string[] = [];
  child: A | undefined;
}
registerClass(A, 'durusGuide.A');

describe('Durus user guide', () => {
  it('starts with one dictionary-like persistent object, the root', async () => {
    const db = await open({ storage: new MemoryStorage() });
    const root = db.root;
    assert.ok(root instanceof PersistentMap);
    assert.ok(root instanceof Persistent);
    assert.equal(root.size, 0);
    assert.equal(oidOf(root), 0);
    assert.equal(db.root, root, 'the root is one object');
    assert.equal(db.stats().storage.objects, 1);
  });

  it('commit writes changes to the root items; a fresh client sees them', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('greeting', 'hello');
    db.root.set('n', 42);
    await db.commit();

    const other = await reopen(storage);
    assert.equal(other.root.get('greeting'), 'hello');
    assert.equal(other.root.get('n'), 42);
    assert.deepEqual([...other.root.keys()], ['greeting', 'n']);
  });

  it('abort reverts the attributes and items of root to the last commit', async () => {
    const db = await open({ storage: new MemoryStorage() });
    const root = db.root as PersistentMap<string, any> & { title?: string };
    root.title = 'committed';
    root.set('kept', 1);
    await db.commit();

    root.title = 'changed';
    root.set('kept', 2);
    root.set('added', 3);
    assert.equal(root.title, 'changed');
    db.abort();

    assert.equal(root.title, 'committed');
    assert.equal(root.get('kept'), 1);
    assert.equal(root.has('added'), false);
    assert.equal(db.root, root, 'abort keeps object identity');
  });

  it('a second client sees committed changes only once it synchronises (abort or commit)', async () => {
    const { db, db2 } = await twoHandles();
    // The second client has read the root before the first commits.
    assert.equal(db2.root.get('x'), undefined);

    db.root.set('x', 1);
    await db.commit();
    assert.equal(db2.root.get('x'), undefined, 'not yet: still in its old transaction');

    db2.abort(); // synchronise by abort
    assert.equal(db2.root.get('x'), 1);

    db.root.set('x', 2);
    await db.commit();
    assert.equal(db2.root.get('x'), 1);
    await db2.commit(); // synchronise by commit (with nothing to write)
    assert.equal(db2.root.get('x'), 2);

    // And the other way round: changes committed in any client are visible in any other.
    db2.root.set('y', 'from db2');
    await db2.commit();
    assert.equal(db.root.get('y'), undefined);
    db.abort();
    assert.equal(db.root.get('y'), 'from db2');
  });

  it('a Persistent subclass instance is stored once a stored object refers to it', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const x = new A();
    assert.equal(oidOf(x), undefined);
    const root = db.root;
    root.set('sample', x);
    await db.commit(); // "Now x is stored."
    const oid = oidOf(x);
    assert.equal(typeof oid, 'number');
    assert.notEqual(oid, 0);

    // Subsequent changes to x, or to new A instances put on attributes of x, are managed too.
    x.label = 'changed later';
    x.child = new A();
    x.child.label = 'grandchild';
    await db.commit();

    const other = await reopen(storage);
    const x2 = other.root.get('sample') as A;
    assert.ok(x2 instanceof A);
    assert.equal(oidOf(x2), oid);
    assert.equal(x2.label, 'changed later');
    assert.ok(x2.child instanceof A);
    assert.equal(x2.child.label, 'grandchild');
  });

  it('PersistentList gives list-like behaviour managed by the connection', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const list = new PersistentList<string>(['a']);
    db.root.set('list', list);
    await db.commit();
    list.push('b');
    list[0] = 'A';
    await db.commit();
    list.push('dropped');
    db.abort();
    assert.deepEqual([...list], ['A', 'b']);

    const other = await reopen(storage);
    assert.deepEqual([...(other.root.get('list') as PersistentList<string>)], ['A', 'b']);
  });

  it('changes to a non-persistent container held by a persistent object are noted without _p_note_change', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const x = new A();
    db.root.set('x', x);
    await db.commit();

    x.items.push('one'); // a plain array: Durus would need x._p_note_change()
    await db.commit();

    const other = await reopen(storage);
    assert.deepEqual((other.root.get('x') as A).items, ['one']);
  });

  it('write conflicts between two clients: the loser sees the committed state after the failed commit', async () => {
    const { db, db2 } = await twoHandles();
    db.root.set('x', new A());
    await db.commit();
    db2.abort();
    const mine = db.root.get('x') as A;
    const theirs = db2.root.get('x') as A;
    assert.notEqual(mine, theirs, 'two clients have disjoint object graphs');

    theirs.label = 'theirs';
    await db2.commit();
    mine.label = 'mine';
    await assert.rejects(db.commit(), (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.equal(error.code, 'TROVE_CONFLICT');
      assert.equal(error.kind, 'write');
      assert.equal(error.oid, oidOf(mine));
      return true;
    });
    assert.equal(mine.label, 'theirs', 'after the conflict the object shows the committed state');
    mine.label = 'mine again';
    await db.commit();
    db2.abort();
    assert.equal(theirs.label, 'mine again');
  });

  it('pack removes objects no longer reachable from the root', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const x = new A();
    x.child = new A();
    db.root.set('sample', x);
    await db.commit();
    assert.equal(db.stats().storage.objects, 3);

    db.root.delete('sample');
    await db.commit();
    assert.equal(db.stats().storage.objects, 3, 'garbage stays until a pack');
    const result = await db.pack();
    assert.equal(result.objectsRemoved, 2);
    assert.equal(db.stats().storage.objects, 1);
    assert.equal(db.root.has('sample'), false);
  });
});
