/**
 * Persistent object semantics: what is tracked, what is stored, ghosts, identity, volatile
 * properties. Every "is stored" claim is checked by committing and reading the object back
 * through another database handle on the same storage.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  Blob,
  ClosedError,
  type Database,
  InvalidArgumentError,
  MemoryStorage,
  markChanged,
  oidOf,
  open,
  Persistent,
  PersistentMap,
  PersistentSet,
  persistent,
  registerClass,
} from 'trove';
import { reopen } from '../support/handles.js';

class Note extends Persistent {
  // A class field with an initializer, one without, and one assigned in the constructor.
  title = 'untitled';
  body: string | undefined;
  tags: string[] = [];
  meta: Record<string, any> = {};
  created: Date;
  lookup = new Map<string, any>();
  labels = new Set<string>();
  constructor(created = new Date(0)) {
    super();
    this.created = created;
  }
  get shout(): string {
    return this.title.toUpperCase();
  }
  rename(title: string): void {
    this.title = title;
  }
}
registerClass(Note, 'persistentObject.Note');

@persistent('persistentObject.Special')
class SpecialNote extends Note {
  level = 1;
}

class WithSecrets extends Persistent {
  #secret = 'hidden';
  visible = 'shown';
  get secret(): string {
    return this.#secret;
  }
  setSecret(value: string): void {
    this.#secret = value;
  }
}
registerClass(WithSecrets, 'persistentObject.WithSecrets');

class Blobby extends Persistent {
  bytes = new Uint8Array(4);
  floats = new Float64Array(2);
}
registerClass(Blobby, 'persistentObject.Blobby');

/** Stores `value` under root['it'], commits, and returns a function reading it back fresh. */
async function stored<T extends object>(value: T) {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  db.root.set('it', value);
  await db.commit();
  const fresh = async (): Promise<T> => (await reopen(storage)).root.get('it') as T;
  return { db, storage, obj: value, fresh };
}

/** Asserts that the change `mutate` makes is stored by a plain commit. */
async function assertTracked(mutate: (note: Note) => void, check: (note: Note) => void) {
  const { db, obj, fresh } = await stored(new Note());
  mutate(obj);
  await db.commit();
  check(await fresh());
  // And the change was part of the commit, not left pending: abort keeps it.
  db.abort();
  check(obj);
}

describe('Persistent objects', () => {
  it('stores class fields and constructor assignments', async () => {
    const { fresh } = await stored(new Note(new Date(5)));
    const note = await fresh();
    assert.ok(note instanceof Note);
    assert.equal(note.title, 'untitled');
    assert.equal(note.body, undefined);
    assert.ok(Object.hasOwn(note, 'body'), 'a declared field without initializer is a property');
    assert.deepEqual(note.tags, []);
    assert.equal(note.created.getTime(), 5);
    assert.equal(note.shout, 'UNTITLED', 'getters of the class work on a loaded object');
  });

  it('tracks attribute writes, including through methods and setters of the class', async () => {
    await assertTracked(
      (n) => {
        n.title = 'direct';
        n.body = 'text';
      },
      (n) => {
        assert.equal(n.title, 'direct');
        assert.equal(n.body, 'text');
      },
    );
    await assertTracked(
      (n) => n.rename('by method'),
      (n) => assert.equal(n.title, 'by method'),
    );
  });

  it('tracks new attributes and Object.defineProperty', async () => {
    await assertTracked(
      (n) => {
        (n as any).extra = 42;
        Object.defineProperty(n, 'defined', { value: 'yes', enumerable: true, writable: true });
      },
      (n) => {
        assert.equal((n as any).extra, 42);
        assert.equal((n as any).defined, 'yes');
      },
    );
  });

  it('tracks attribute deletes', async () => {
    await assertTracked(
      (n) => {
        delete (n as any).body;
      },
      (n) => {
        assert.equal(Object.hasOwn(n, 'body'), false);
        assert.equal('body' in n, false);
      },
    );
  });

  it('tracks mutations of nested plain arrays and objects, at any depth', async () => {
    await assertTracked(
      (n) => {
        n.tags.push('a', 'b');
        n.tags[0] = 'A';
        n.meta.author = { name: 'Ada', langs: ['en'] };
      },
      (n) => {
        assert.deepEqual(n.tags, ['A', 'b']);
        assert.deepEqual(n.meta, { author: { name: 'Ada', langs: ['en'] } });
      },
    );
    const { db, obj, fresh } = await stored(new Note());
    obj.meta.deep = { list: [{ x: 1 }] };
    await db.commit();
    obj.meta.deep.list[0].x = 2;
    obj.meta.deep.list.push({ x: 3 });
    await db.commit();
    assert.deepEqual((await fresh()).meta.deep.list, [{ x: 2 }, { x: 3 }]);
    obj.meta.deep.list.splice(0, 1);
    delete obj.meta.deep.extra;
    obj.meta.deep.list.sort((a: any, b: any) => b.x - a.x);
    await db.commit();
    assert.deepEqual((await fresh()).meta.deep.list, [{ x: 3 }]);
  });

  it("a nested array's in-place methods: what they take out is tracked, fill puts one value in each slot", async () => {
    const { db, obj, fresh } = await stored(new Note());
    const other = new Note();
    db.root.set('other', other);
    obj.meta.list = [{ x: 1 }, { x: 2 }, { x: 3 }];
    other.meta.shared = { y: 1 };
    await db.commit();
    const list = obj.meta.list;
    assert.equal(list.reverse(), list);
    const taken = list.shift();
    taken.x = 30; // the list no longer holds it: changes nothing stored
    assert.deepEqual(list.splice(1, 1, 'in'), [{ x: 1 }]);
    assert.equal(list.push(other.meta.shared, other.meta.shared), 4);
    assert.notEqual(list[2], list[3]);
    // One value in each slot filled, as Array.prototype.fill puts it.
    assert.equal(list.fill(other.meta.shared, 2, 4), list);
    assert.equal(list[2], list[3]);
    assert.equal(list.pop(), list[2]);
    // A copy: the other object's value is its own still.
    list[2].y = 5;
    assert.equal(other.meta.shared.y, 1);
    // Taken off the view and called on another array, a method is the Array method.
    const plain: unknown[] = [];
    list.unshift.call(plain, 'p');
    assert.deepEqual(plain, ['p']);
    await db.commit();
    assert.deepEqual((await fresh()).meta.list, [{ x: 2 }, 'in', { y: 5 }]);
  });

  it('tracks mutations of nested Maps and Sets, and of values inside them', async () => {
    await assertTracked(
      (n) => {
        n.lookup.set('k', { count: 1 });
        n.labels.add('red');
      },
      (n) => {
        assert.deepEqual(n.lookup.get('k'), { count: 1 });
        assert.deepEqual([...n.labels], ['red']);
      },
    );
    const { db, obj, fresh } = await stored(new Note());
    obj.lookup.set('k', { count: 1, list: [] as number[] });
    obj.labels.add('red').add('green');
    await db.commit();
    obj.lookup.get('k').count = 2; // a value read from a nested Map
    for (const [, value] of obj.lookup) value.list.push(1); // a value from its iterator
    obj.labels.delete('red');
    await db.commit();
    let read = await fresh();
    assert.deepEqual(read.lookup.get('k'), { count: 2, list: [1] });
    assert.deepEqual([...read.labels], ['green']);
    obj.lookup.clear();
    obj.labels.clear();
    await db.commit();
    read = await fresh();
    assert.equal(read.lookup.size, 0);
    assert.equal(read.labels.size, 0);
  });

  it('set and add of a nested Map or Set return its view: writes chained on it are stored', async () => {
    const { db, obj, fresh } = await stored(new Note());
    assert.equal(obj.lookup.set('a', 1), obj.lookup);
    assert.equal(obj.labels.add('a'), obj.labels);
    await db.commit();
    // After the commit, writes through what set and add returned are new changes.
    const lookup = obj.lookup.set('b', 2);
    const labels = obj.labels.add('b');
    lookup.set('c', 3);
    labels.add('c');
    await db.commit();
    const read = await fresh();
    assert.deepEqual(
      [...read.lookup],
      [
        ['a', 1],
        ['b', 2],
        ['c', 3],
      ],
    );
    assert.deepEqual([...read.labels], ['a', 'b', 'c']);
  });

  it('nested values read through property descriptors are tracked', async () => {
    const { db, obj, fresh } = await stored(new Note());
    obj.meta = { inner: { n: 0 } };
    await db.commit();
    // Each write alone in a commit: nothing else marks the object changed.
    Object.getOwnPropertyDescriptor(obj, 'meta')!.value.inner.n = 1;
    await db.commit();
    assert.deepEqual((await fresh()).meta, { inner: { n: 1 } });
    Object.getOwnPropertyDescriptors(obj.meta).inner!.value.m = 2;
    await db.commit();
    assert.deepEqual((await fresh()).meta, { inner: { n: 1, m: 2 } });
    // A symbol-keyed (volatile) property is handed out as it is, as by a read.
    const cache = Symbol('cache');
    (obj as any)[cache] = new Map();
    assert.equal(Object.getOwnPropertyDescriptor(obj, cache)!.value, (obj as any)[cache]);
    // A nested value cannot be frozen: it would load thawed, and its view could not work.
    assert.throws(
      () => Object.freeze(obj.meta),
      (error: unknown) => error instanceof InvalidArgumentError,
    );
    // Nor can the object, or be given another class (a refusal of trove's, not a TypeError).
    for (const refused of [
      () => Object.freeze(obj),
      () => Object.preventExtensions(obj),
      () => Object.setPrototypeOf(obj, Object.prototype),
    ]) {
      assert.throws(refused, (error: unknown) => error instanceof InvalidArgumentError);
    }
    assert.ok(Object.isExtensible(obj) && obj instanceof Note);
    // A property that can never change is reported as it is (a proxy may not do otherwise).
    Object.defineProperty(obj.meta, 'fixed', { value: { a: 1 }, enumerable: true });
    assert.deepEqual(Object.getOwnPropertyDescriptor(obj.meta, 'fixed')!.value, { a: 1 });
  });

  // Found by an audit: a value frozen before it was stored was taken as it was, and then a
  // read of a nested value, or any write, threw the engine's TypeError (a proxy's invariants).
  it('a value frozen, sealed or made non-extensible before it is stored is stored thawed', async () => {
    const db = await open({ storage: new MemoryStorage() });
    const shared = Object.freeze({ s: 1 });
    const given = {
      frozen: Object.freeze({ n: Object.freeze({ b: 2 }), shared, again: shared }),
      list: Object.freeze([1, Object.freeze([2])]),
      sealed: Object.seal({ x: 1 }),
      closed: Object.preventExtensions({ y: 1 }),
    };
    for (const [key, value] of Object.entries(given)) db.root.set(key, value);
    const frozen = db.root.get('frozen');
    assert.equal(frozen.n.b, 2);
    assert.equal(frozen.shared, frozen.again, 'sharing inside the value is kept');
    frozen.n.b = 3;
    db.root.get('list')[1].push(3);
    db.root.get('sealed').more = true;
    db.root.get('closed').more = true;
    assert.ok(Object.isFrozen(given.frozen.n), 'what was given is left as it was');
    // (Found in review.) Given again, it is shared in the state, as a value not frozen is.
    db.root.set('twice', { a: shared, b: shared });
    db.root.get('frozen').third = shared;
    const twice = db.root.get('twice');
    assert.equal(twice.a, twice.b);
    // Keys of a Map and elements of a Set stay the objects they are looked up by.
    const map = new PersistentMap([[shared, 'by key']]);
    const set = new PersistentSet<object>([shared]);
    const nested = { lookup: new Map([[shared, 'nested']]) };
    db.root.set('map', map);
    db.root.set('set', set);
    db.root.set('nested', nested);
    set.add(given.list);
    assert.deepEqual(
      [
        map.get(shared),
        set.has(shared),
        set.has(given.list),
        db.root.get('nested').lookup.get(shared),
      ],
      ['by key', true, true, 'nested'],
    );
    await db.commit();
    const again = await open({ storage: db.storage });
    const stored = Object.fromEntries(
      ['frozen', 'list', 'sealed', 'closed', 'twice'].map((key) => [key, again.root.get(key)]),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(stored)), {
      frozen: { n: { b: 3 }, shared: { s: 1 }, again: { s: 1 }, third: { s: 1 } },
      list: [1, [2, 3]],
      sealed: { x: 1, more: true },
      closed: { y: 1, more: true },
      twice: { a: { s: 1 }, b: { s: 1 } },
    });
    assert.equal(again.root.get('twice').a, again.root.get('twice').b, 'shared when it loads');
    assert.equal(again.root.get('map').size, 1);
  });

  it('tracks mutations of nested Dates', async () => {
    await assertTracked(
      (n) => {
        n.created.setTime(123456);
      },
      (n) => assert.equal(n.created.getTime(), 123456),
    );
    await assertTracked(
      (n) => {
        n.meta.when = new Date(0);
      },
      (n) => assert.equal(n.meta.when.getTime(), 0),
    );
    const { db, obj, fresh } = await stored(new Note());
    obj.meta.when = new Date(0);
    await db.commit();
    obj.meta.when.setUTCFullYear(2001);
    await db.commit();
    assert.equal((await fresh()).meta.when.getUTCFullYear(), 2001);
  });

  it('one nested value has one view: obj.tags === obj.tags', async () => {
    const { obj } = await stored(new Note());
    assert.equal(obj.tags, obj.tags);
    assert.equal(obj.lookup, obj.lookup);
    assert.ok(Array.isArray(obj.tags));
    assert.ok(obj.lookup instanceof Map);
    assert.ok(obj.labels instanceof Set);
    assert.ok(obj.created instanceof Date);
  });

  it('a nested value assigned from one object to another: the writer sees what was stored', async () => {
    const { db, obj, fresh } = await stored(new Note());
    const other = new Note();
    db.root.set('other', other);
    other.tags = obj.tags; // a view of obj's array assigned to other
    other.tags.push('shared');
    await db.commit();
    const readBack = await fresh();
    const otherBack = (await reopen(db.storage as MemoryStorage)).root.get('other') as Note;
    assert.deepEqual(otherBack.tags, ['shared']);
    // After a successful commit, the committing connection and a fresh reader agree.
    assert.deepEqual([...obj.tags], [...readBack.tags]);
  });

  // Found by a bug hunt: only the value assigned itself was copied, not a view inside a
  // new container assigned, so both objects shared one array in memory.
  it('a nested value of another object inside a new container is copied too', async () => {
    const { db, obj } = await stored(new Note());
    obj.tags.push('x');
    const other = new Note();
    db.root.set('other', other);
    await db.commit();
    const labels = new Map([['k', obj.tags]]);
    other.meta = { deep: [{ tags: obj.tags }], labels, set: new Set([obj.tags]) };
    await db.commit();
    obj.tags.push('only obj');
    other.meta.deep[0].tags.push('only other');
    await db.commit();
    assert.deepEqual([...obj.tags], ['x', 'only obj']);
    assert.deepEqual([...other.meta.deep[0].tags], ['x', 'only other']);
    // The three places in the value assigned hold one copy, as they held one array.
    assert.deepEqual([...other.meta.labels.get('k')], ['x', 'only other']);
    assert.deepEqual([...[...other.meta.set][0]], ['x', 'only other']);
    const fresh = await reopen(db.storage as MemoryStorage);
    assert.deepEqual((fresh.root.get('other') as Note).meta.deep[0].tags, ['x', 'only other']);
    assert.deepEqual((fresh.root.get('it') as Note).tags, ['x', 'only obj']);
    // One value met twice in what is assigned is copied once: the sharing is kept.
    other.meta = { first: obj.tags, second: [obj.tags] };
    assert.equal(other.meta.first, other.meta.second[0]);
    await db.commit();
    const again = (await reopen(db.storage as MemoryStorage)).root.get('other') as Note;
    assert.equal(again.meta.first, again.meta.second[0]);
  });

  // Found by a read-through: the copy kept Buffers as Uint8Arrays, and subclasses as their
  // base class, which the commit then stored where it refuses the original.
  it('a nested value copied to another object keeps the classes of what it holds', async () => {
    const { db, obj } = await stored(new Note());
    obj.meta = { bytes: Buffer.from('ab'), floats: new Float64Array([1.5]), re: /x/g };
    const other = new Note();
    db.root.set('other', other);
    await db.commit();
    other.meta = { copy: obj.meta };
    assert.ok(Buffer.isBuffer(other.meta.copy.bytes));
    assert.notEqual(other.meta.copy.bytes, obj.meta.bytes);
    assert.equal(Object.getPrototypeOf(other.meta.copy.floats), Float64Array.prototype);
    await db.commit();
    const copied = (await reopen(db.storage as MemoryStorage)).root.get('other') as Note;
    assert.ok(Buffer.isBuffer(copied.meta.copy.bytes));
    assert.deepEqual([...copied.meta.copy.floats], [1.5]);
    assert.equal(copied.meta.copy.re.source, 'x');

    class Tagged extends Map<number, number> {}
    obj.meta = { map: new Tagged([[1, 2]]), list: new (class extends Array {})() };
    other.meta = { copy: obj.meta };
    assert.ok(other.meta.copy.map instanceof Tagged);
    obj.meta = {};
    await assert.rejects(db.commit(), (error: InvalidArgumentError) => {
      assert.equal(error.code, 'TROVE_INVALID_ARGUMENT');
      assert.match(String(error.path), /copy\.(map|list)$/);
      return true;
    });
  });

  // Found in review: adopting it threw a TypeError (it has no array methods).
  it('an array without a prototype is stored, copied and loaded as an array', async () => {
    const { db, obj } = await stored(new Note());
    const other = new Note();
    db.root.set('other', other);
    obj.meta = { list: Object.setPrototypeOf([1, { n: 2 }], null) };
    await db.commit();
    other.meta = { copy: obj.meta.list };
    await db.commit();
    const fresh = await reopen(db.storage as MemoryStorage);
    for (const note of [fresh.root.get('it'), fresh.root.get('other')] as Note[]) {
      const list = note.meta.list ?? note.meta.copy;
      assert.ok(Array.isArray(list));
      assert.deepEqual([...list], [1, { n: 2 }]);
    }
    // Scanned as an array: what it cannot store is named by its index.
    obj.meta = { list: Object.setPrototypeOf([1, () => 2], null) };
    await assert.rejects(db.commit(), (error: InvalidArgumentError) => {
      assert.equal(error.path, 'root.it.meta.list[1]');
      return true;
    });
  });

  it('markChanged stores writes trove cannot see (typed arrays)', async () => {
    const { db, obj, fresh } = await stored(new Blobby());
    obj.bytes[0] = 7;
    obj.floats[1] = 2.5;
    markChanged(obj);
    await db.commit();
    const read = await fresh();
    assert.deepEqual([...read.bytes], [7, 0, 0, 0]);
    assert.deepEqual([...read.floats], [0, 2.5]);
    assert.ok(read.bytes instanceof Uint8Array);
    assert.ok(read.floats instanceof Float64Array);
  });

  it('markChanged on a loaded object from another handle stores its state', async () => {
    const { storage } = await stored(new Blobby());
    const db2 = await reopen(storage);
    const obj = db2.root.get('it') as Blobby;
    obj.bytes.set([1, 2, 3, 4]);
    markChanged(obj);
    await db2.commit();
    assert.deepEqual([...((await reopen(storage)).root.get('it') as Blobby).bytes], [1, 2, 3, 4]);
  });

  it('loads referenced objects as ghosts, on first access', async () => {
    const { storage } = await stored(new Note());
    const db2 = await reopen(storage);
    const root = db2.root; // loads the root, whose state references the note
    const missesBefore = db2.stats().cache.misses;
    const note = root.get('it') as Note; // a reference: not loaded yet
    const afterRef = db2.stats().cache.misses;
    assert.equal(afterRef, missesBefore, 'taking a reference loads nothing');
    assert.equal(note.title, 'untitled'); // first access loads it
    const afterLoad = db2.stats().cache.misses;
    assert.equal(afterLoad, afterRef + 1);
    assert.equal(note.body, undefined);
    assert.equal(db2.stats().cache.misses, afterLoad, 'a loaded object is not loaded again');
  });

  it('instanceof works for loaded objects and ghosts of subclasses', async () => {
    const { storage, db } = await stored(new SpecialNote());
    db.root.set('plain', new Note());
    await db.commit();
    const db2 = await reopen(storage);
    const special = db2.root.get('it');
    assert.ok(special instanceof SpecialNote);
    assert.ok(special instanceof Note);
    assert.ok(special instanceof Persistent);
    assert.equal(special.level, 1);
    const plain = db2.root.get('plain');
    assert.ok(plain instanceof Note);
    assert.equal(plain instanceof SpecialNote, false);
    assert.equal(Object.getPrototypeOf(plain), Note.prototype);
  });

  it('keeps identity within a connection: one oid, one object', async () => {
    const { storage, db, obj } = await stored(new Note());
    assert.equal(db.root.get('it'), obj);
    assert.equal(db.getObject(oidOf(obj)!), obj);
    obj.title = 'changed';
    db.abort();
    assert.equal(db.root.get('it'), obj, 'abort keeps identity');
    const db2 = await reopen(storage);
    const a = db2.root.get('it');
    assert.equal(db2.root.get('it'), a);
    assert.equal(db2.getObject(oidOf(obj)!), a);
    assert.notEqual(a, obj, 'another connection has other objects');
  });

  it('symbol-keyed properties are volatile: not stored, not a change', async () => {
    const secret = Symbol('secret');
    const { db, storage, obj, fresh } = await stored(new Note());
    const commits = db.stats().storage.commits;
    (obj as any)[secret] = 'memory only';
    assert.equal((obj as any)[secret], 'memory only');
    await db.commit();
    assert.equal(db.stats().storage.commits, commits, 'a symbol-keyed write is not a change');
    obj.title = 'stored';
    await db.commit();
    const read = await fresh();
    assert.equal(read.title, 'stored');
    assert.equal((read as any)[secret], undefined);
    assert.equal(Object.getOwnPropertySymbols(read).includes(secret), false);
    assert.ok(storage);
  });

  // A loaded object has no #private fields unless its class is registered with
  // constructOnLoad (construct-on-load.test.ts).
  it('#private fields are volatile too: not stored, and work on new objects', async () => {
    const { db, obj, fresh } = await stored(new WithSecrets());
    assert.equal(obj.secret, 'hidden');
    obj.setSecret('changed');
    assert.equal(obj.secret, 'changed');
    await db.commit();
    const read = await fresh();
    assert.equal(read.visible, 'shown');
    assert.deepEqual(Object.keys(read), ['visible']);
  });

  it('Object.keys, in, spread and JSON see the persisted attributes', async () => {
    const { fresh } = await stored(new Note());
    const note = await fresh();
    assert.deepEqual(Object.keys(note).sort(), [
      'body',
      'created',
      'labels',
      'lookup',
      'meta',
      'tags',
      'title',
    ]);
    assert.ok('title' in note);
    assert.ok('rename' in note);
    assert.equal({ ...note }.title, 'untitled');
    assert.equal(JSON.parse(JSON.stringify(note)).title, 'untitled');
  });

  // Found by a bug hunt: the write changed the persistent object itself, and was stored.
  it("a write to an object that inherits from a persistent one is that object's", async () => {
    const { db, obj, fresh } = await stored(new Note());
    const child = Object.create(obj) as Note;
    child.title = 'child';
    const other = {};
    assert.equal(Reflect.set(obj, 'body', 'other', other), true);
    assert.deepEqual(Object.keys(child), ['title']);
    assert.deepEqual(other, { body: 'other' });
    assert.equal(obj.title, 'untitled');
    assert.equal(obj.body, undefined);
    // Nothing was written to obj: the commit stores nothing.
    const before = db.storage.lastTid();
    await db.commit();
    assert.equal(db.storage.lastTid(), before);
    assert.equal((await fresh()).title, 'untitled');
    // Nor is it a write in a read-only transaction.
    await db.read((tx) => {
      const inheriting = Object.create(tx.root.get('it') as Note) as Note;
      inheriting.title = 'read';
      assert.equal(inheriting.title, 'read');
    });
    // The inheriting object is not obj (found in review: it was stored as obj, and its own
    // data lost): it is no persistent object, and cannot be stored.
    assert.throws(() => oidOf(child), { code: 'TROVE_INVALID_ARGUMENT' });
    db.root.set('child', child);
    await assert.rejects(db.commit(), { code: 'TROVE_INVALID_ARGUMENT', path: 'root.child' });
    db.abort();
    // Also of a wrapper a constructor returned, which is the object itself (found in review).
    class Wrapped extends Persistent {
      n = 1;
      constructor() {
        super();
        // biome-ignore lint/correctness/noConstructorReturn: a wrapper, as some libraries make
        return new Proxy(this, {});
      }
    }
    registerClass(Wrapped, 'persistentObject.Wrapped');
    const wrapper = new Wrapped();
    db.root.set('wrapper', wrapper);
    await db.commit();
    assert.equal(typeof oidOf(wrapper), 'number');
    const ofWrapper = Object.create(wrapper);
    ofWrapper.own = 1;
    assert.throws(() => oidOf(ofWrapper), { code: 'TROVE_INVALID_ARGUMENT' });
    db.root.set('ofWrapper', ofWrapper);
    await assert.rejects(db.commit(), { code: 'TROVE_INVALID_ARGUMENT', path: 'root.ofWrapper' });
  });

  // Found by a bug hunt: the object's bookkeeping was one of its own keys, so a copy made
  // from its descriptors carried it, and was stored as the original (its changes lost).
  it('a copy made from its keys or descriptors is no persistent object, and is refused', async () => {
    const { db, obj } = await stored(new Note());
    assert.deepEqual(Object.getOwnPropertySymbols(obj), []);
    assert.deepEqual(Reflect.ownKeys(obj).sort(), Object.keys(obj).sort());
    const copy = Object.create(Note.prototype, Object.getOwnPropertyDescriptors(obj)) as Note;
    copy.title = 'copy';
    assert.equal(obj.title, 'untitled');
    db.root.set('copy', copy);
    await assert.rejects(db.commit(), { code: 'TROVE_INVALID_ARGUMENT', path: 'root.copy' });
  });

  // Found by a bug hunt: the engine set the raw object's prototype, past the refusal; with
  // null, every later commit and abort of the handle threw a TypeError.
  it('obj.__proto__ = x is a change of prototype: refused, unless it is the same', async () => {
    const { db, obj, fresh } = await stored(new Note());
    // What `obj.__proto__ = proto` does, spelt so that the linter lets it be.
    const protoKey = '__proto__';
    for (const proto of [null, Object.prototype, SpecialNote.prototype]) {
      assert.throws(
        () => {
          (obj as any)[protoKey] = proto;
        },
        { code: 'TROVE_INVALID_ARGUMENT', argument: 'prototype' },
      );
      assert.throws(
        () => Object.assign(obj, JSON.parse(`{"__proto__": ${JSON.stringify(proto)}}`)),
        {
          code: 'TROVE_INVALID_ARGUMENT',
        },
      );
    }
    // The prototype it has: nothing changes, as on a plain object.
    (obj as any)[protoKey] = Note.prototype;
    assert.equal(Object.setPrototypeOf(obj, Note.prototype), obj);
    assert.equal(Object.setPrototypeOf(obj.meta, Object.prototype), obj.meta);
    // A nested value's prototype: refused by trove, not the engine's TypeError; for a Map,
    // a Set or a Date through __proto__ too (found in review: the raw Map lost its
    // prototype, and was stored as an empty object).
    assert.throws(() => Object.setPrototypeOf(obj.tags, Object.prototype), {
      code: 'TROVE_INVALID_ARGUMENT',
    });
    for (const nested of [obj.lookup, obj.labels, obj.created]) {
      assert.throws(
        () => {
          (nested as any)[protoKey] = null;
        },
        { code: 'TROVE_INVALID_ARGUMENT' },
      );
    }
    assert.equal(obj.lookup.get('missing'), undefined);
    obj.title = 'after';
    await db.commit();
    db.abort();
    const again = await fresh();
    assert.ok(again instanceof Note && !(again instanceof SpecialNote));
    assert.equal(again.title, 'after');
  });

  // Found in review: the refusal of a prototype change took an assignment to __proto__ that
  // the class defines an accessor for.
  it("a class's own __proto__ accessor is the class's", async () => {
    class WithProtoAccessor extends Persistent {
      seen: unknown = undefined;
      set ['__proto__'](value: unknown) {
        this.seen = value;
      }
    }
    registerClass(WithProtoAccessor, 'persistentObject.WithProtoAccessor');
    const { obj } = await stored(new WithProtoAccessor());
    const protoKey = '__proto__';
    (obj as any)[protoKey] = 5;
    assert.equal(obj.seen, 5);
    assert.ok(obj instanceof WithProtoAccessor);
  });

  // Found by a bug hunt: util.inspect reads a proxy's raw object, so an object not loaded
  // showed as an empty Persistent {}.
  it('util.inspect shows the attributes, or that the object is not loaded, without loading it', async () => {
    const { obj, storage } = await stored(new Note());
    obj.title = 'shown';
    assert.match(inspect(obj), /^Note \{.*title: 'shown'/s);
    // Not through a promise, whose resolution would read its `then` and load it.
    const ghost = (await reopen(storage)).root.get('it') as Note;
    const oid = oidOf(ghost);
    assert.equal(inspect(ghost), `Persistent <not loaded, oid ${oid}>`);
    assert.equal(ghost.title, 'untitled');
    assert.match(inspect(ghost), /^Note \{.*title: 'untitled'/s);
    // As a plain object is shown (found in review): as deep, cycles as cycles, getters
    // not run, and an object inheriting from it by its own properties.
    class Plain {
      info = { user: { name: 'ada', roles: ['x'] } };
    }
    obj.meta = new Plain().info;
    assert.match(inspect(new Plain()), /info: \{ user: \{ name: 'ada', roles: \[Array\] \} \}/);
    assert.match(inspect(obj), /meta: \{ user: \{ name: 'ada', roles: \[Array\] \} \}/);
    obj.meta = { self: obj };
    assert.match(inspect(obj, { depth: null }), /\[Circular Note\]/);
    let ran = false;
    Object.defineProperty(obj, 'computed', {
      get: () => {
        ran = true;
        return 1;
      },
      enumerable: true,
      configurable: true,
    });
    assert.match(inspect(obj), /computed: \[Getter\]/);
    assert.equal(ran, false);
    const child = Object.create(obj);
    child.own = 1;
    assert.equal(inspect(child), '{ own: 1 }');
  });

  // Found by a bug hunt: JSON of a loaded Blob walked into its content and tried to load
  // blob bytes as an object (InvalidArgumentError).
  it('JSON of a Blob is its size, new or loaded', async () => {
    const { db, obj } = await stored(new Note());
    obj.meta = { bytes: Blob.from(new Uint8Array([1, 2, 3])) };
    assert.equal(JSON.stringify(obj.meta), '{"bytes":{"size":3}}');
    assert.equal(JSON.stringify(Blob.from(Readable.from([Buffer.from('ab')]))), '{"size":null}');
    await db.commit();
    const loaded = (await reopen(db.storage as MemoryStorage)).root.get('it') as Note;
    assert.equal(JSON.stringify(loaded.meta), '{"bytes":{"size":3}}');
  });

  it('a nested value read before the object was reloaded refuses writes', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const db2 = await open({ storage });
    db.root.set('it', new Note());
    await db.commit();
    db2.abort();
    const note = db.root.get('it') as Note;
    const oldTags = note.tags;
    (db2.root.get('it') as Note).tags.push('from db2');
    await db2.commit();
    db.abort(); // the note is invalidated and reloads its new state
    assert.deepEqual(note.tags, ['from db2']);
    assert.throws(() => oldTags.push('lost'), ClosedError);
    assert.deepEqual(note.tags, ['from db2']);
  });

  it('changes made in one transaction are visible in the next without reload', async () => {
    const { db, obj } = await stored(new Note());
    obj.tags.push('x');
    await db.commit();
    obj.tags.push('y');
    await db.commit();
    assert.deepEqual(obj.tags, ['x', 'y']);
    assert.deepEqual(await readFrom(db, (n) => [...n.tags]), ['x', 'y']);
  });

  it('abort reverts nested changes and deletes', async () => {
    const { db, obj } = await stored(new Note());
    obj.tags.push('kept');
    obj.lookup.set('a', 1);
    await db.commit();
    obj.tags.push('dropped');
    obj.lookup.delete('a');
    delete (obj as any).title;
    obj.created.setTime(99);
    db.abort();
    assert.deepEqual(obj.tags, ['kept']);
    assert.equal(obj.lookup.get('a'), 1);
    assert.equal(obj.title, 'untitled');
    assert.equal(obj.created.getTime(), 0);
  });
});

function readFrom<T>(db: Database, fn: (note: Note) => T): Promise<T> {
  return db.read((tx) => fn(tx.root.get('it') as Note));
}
