/**
 * Counter: amounts are checked, the value stays finite, and a conflict merges the value's
 * changes while the other attributes (of a subclass, say) merge as a map's keys do.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConflictError, Counter, PersistentMap, registerClass } from 'trove';
import { twoHandles } from '../support/handles.js';

/** A counter with an attribute of its own. */
class PageViews extends Counter {
  label = 'home';
}
registerClass(PageViews, 'counterTest.PageViews');

/** A subclass merging on top of Counter's merge, as the resolveConflict hook allows. */
class Tally extends PageViews {
  static override resolveConflict(
    oldState: { value: number },
    committedState: { value: number },
    myState: { value: number },
  ) {
    return { ...Counter.resolveConflict(oldState, committedState, myState), merged: true };
  }
}
registerClass(Tally, 'counterTest.Tally');

const invalid = { code: 'TROVE_INVALID_ARGUMENT' };

/** Runs `first` and `second` on two handles from one snapshot; commits first, then second. */
async function concurrently(
  setup: () => PageViews,
  first: (views: PageViews) => void,
  second: (views: PageViews) => void,
) {
  const { db, db2 } = await twoHandles();
  db.root.set('views', setup());
  await db.commit();
  db2.abort();
  first(db.root.get('views'));
  second(db2.root.get('views'));
  await db.commit();
  return { db, db2 };
}

describe('Counter', () => {
  it('increment and decrement take finite numbers only, and refuse to leave the finite range', () => {
    const counter = new Counter(5);
    for (const by of ['1', [5], true, null, 1n, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => counter.increment(by as never), invalid, `increment(${String(by)})`);
      assert.throws(() => counter.decrement(by as never), invalid, `decrement(${String(by)})`);
    }
    assert.equal(counter.value, 5);
    counter.increment(Number.MAX_VALUE);
    assert.throws(() => counter.increment(Number.MAX_VALUE), invalid);
    assert.throws(() => new Counter(0).decrement(-Number.MAX_VALUE * 2), invalid);
    assert.equal(counter.value, 5 + Number.MAX_VALUE);
    assert.equal(new Counter(1).decrement(3), -2);
  });

  // Found in a bug hunt: resolveConflict kept this side's other attributes, silently
  // dropping a concurrent change to them.
  it('concurrent changes: the value adds up, another attribute one side changed is kept', async () => {
    const { db, db2 } = await concurrently(
      () => new PageViews(),
      (views) => {
        views.label = 'landing';
      },
      (views) => {
        views.increment(2);
      },
    );
    await db2.commit();
    db.abort();
    const views = db.root.get('views') as PageViews;
    assert.equal(views.value, 2);
    assert.equal(views.label, 'landing');
  });

  // Found by a bug hunt: the merge needs the revision the change was made from, and a pack
  // meanwhile had removed it: a ConflictError, and the default connection's changes lost.
  it('changes merge though a pack removed the revision they were made from, which this handle committed', async () => {
    const { db, db2 } = await twoHandles();
    db.root.set('views', new PageViews());
    db.root.set('keys', new PersistentMap());
    await db.commit();
    (db.root.get('views') as PageViews).increment();
    (db.root.get('keys') as PersistentMap<string, number>).set('one', 1);
    await db2.transaction((tx) => {
      (tx.root.get('views') as PageViews).increment();
      (tx.root.get('keys') as PersistentMap<string, number>).set('two', 2);
    });
    await db2.pack();
    await db.commit();
    db2.abort();
    assert.equal((db2.root.get('views') as PageViews).value, 2);
    assert.deepEqual([...(db2.root.get('keys') as PersistentMap).keys()].sort(), ['one', 'two']);
  });

  it('so does a change made after the pack, of a revision this handle committed', async () => {
    const { db, db2 } = await twoHandles();
    db.root.set('views', new PageViews());
    await db.commit();
    db2.abort();
    (db2.root.get('views') as PageViews).increment();
    await db2.commit();
    db.abort();
    (db.root.get('views') as PageViews).increment();
    await db.commit();
    await db.pack();
    // db2 changes the revision it committed, which the pack removed.
    (db2.root.get('views') as PageViews).increment();
    await db2.commit();
    db.abort();
    assert.equal((db.root.get('views') as PageViews).value, 3);
  });

  // Found in review (the subclass): the merge returned undefined for an attribute both sides
  // changed, and a subclass spreading it stored a counter without a value.
  it('an attribute both sides changed is a conflict, also for a subclass building on the merge', async () => {
    for (const make of [() => new PageViews(), () => new Tally()]) {
      const { db, db2 } = await concurrently(
        make,
        (views) => {
          views.label = 'landing';
          views.increment();
        },
        (views) => {
          views.label = 'start';
          views.increment();
        },
      );
      await assert.rejects(db2.commit(), ConflictError);
      db.abort();
      assert.equal((db.root.get('views') as PageViews).value, 1);
    }
  });

  it('changes whose sum leaves the finite range are a conflict, not Infinity', async () => {
    const { db2 } = await concurrently(
      () => Object.assign(new PageViews(), { value: Number.MAX_VALUE / 2 }),
      (views) => {
        views.increment(Number.MAX_VALUE / 2);
      },
      (views) => {
        views.increment(Number.MAX_VALUE / 2);
      },
    );
    await assert.rejects(db2.commit(), ConflictError);
  });
});
