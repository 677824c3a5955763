/**
 * The per-connection object cache: bounded by object count and bytes at transaction
 * boundaries, least recently used objects ghosted, identity and data unaffected.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, open, Persistent, PersistentList, registerClass } from 'trove';
import { reopen } from '../support/handles.js';

class Leaf extends Persistent {
  pad = 'x'.repeat(1000);
  constructor(public i: number) {
    super();
  }
}
registerClass(Leaf, 'objectCache.Leaf');

async function forest(count: number) {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  const list = new PersistentList<Leaf>();
  for (let i = 0; i < count; i++) list.push(new Leaf(i));
  db.root.set('list', list);
  await db.commit();
  return storage;
}

function sum(list: PersistentList<Leaf>): number {
  let total = 0;
  for (const leaf of list) total += leaf.i;
  return total;
}

describe('object cache', () => {
  it('a pooled connection keeps at most cacheSize loaded objects between transactions', async () => {
    const storage = await forest(100);
    const db = await open({ storage, cacheSize: 10, poolSize: 1 });
    assert.equal(await db.read((tx) => sum(tx.root.get('list'))), 4950);
    await db.read(() => {}); // the next transaction starts: the cache shrinks
    const stats = db.stats().cache;
    assert.ok(stats.objects <= 10, `objects ${stats.objects}`);
    assert.ok(stats.evictions > 0);
    assert.equal(await db.read((tx) => sum(tx.root.get('list'))), 4950, 'evicted objects reload');
  });

  it('a pooled connection keeps at most cacheBytes of loaded state between transactions', async () => {
    const storage = await forest(100);
    const db = await open({ storage, cacheBytes: 20_000, poolSize: 1 });
    await db.read((tx) => sum(tx.root.get('list')));
    await db.read(() => {});
    const stats = db.stats().cache;
    assert.ok(stats.bytes <= 20_000, `bytes ${stats.bytes}`);
    assert.ok(stats.evictions > 0);
  });

  it('the default connection (db.root) is bounded too, at commit and abort', async () => {
    const storage = await forest(100);
    const db = await open({ storage, cacheSize: 10 });
    const list = db.root.get('list') as PersistentList<Leaf>;
    assert.equal(sum(list), 4950);
    db.abort();
    assert.ok(db.stats().cache.objects <= 10, `after abort: ${db.stats().cache.objects} objects`);
    assert.equal(sum(list), 4950);
    await db.commit();
    assert.ok(db.stats().cache.objects <= 10, `after commit: ${db.stats().cache.objects} objects`);
  });

  it('eviction keeps identity and pending changes', async () => {
    const storage = await forest(50);
    const db = await open({ storage, cacheSize: 5, poolSize: 1 });
    await db.transaction((tx) => {
      const list = tx.root.get('list') as PersistentList<Leaf>;
      const first = list[0]!;
      sum(list); // loads all
      first.i = 1000; // a pending change survives however full the cache is
      assert.equal(list[0], first);
      assert.equal(first.i, 1000);
    });
    assert.equal(((await reopen(storage)).root.get('list') as PersistentList<Leaf>)[0]!.i, 1000);
  });

  it('counts hits and misses', async () => {
    const storage = await forest(3);
    const db = await open({ storage });
    const before = db.stats().cache;
    await db.read((tx) => sum(tx.root.get('list')));
    const middle = db.stats().cache;
    assert.ok(middle.misses >= before.misses + 4, 'the list and its leaves were loaded');
    await db.read((tx) => {
      tx.root;
      tx.getObject(0);
    });
    const after = db.stats().cache;
    assert.ok(after.hits > middle.hits, 'the loaded root was found in the cache');
  });
});
