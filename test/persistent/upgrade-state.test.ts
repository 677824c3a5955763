/**
 * `static upgradeState(state)`: a later version of a class upgrades what an earlier one
 * stored as it loads (a field added since, with its default). The upgrade is no change, and
 * a merge is given the stored states upgraded. (Found by a first-user hunt: there was no
 * way to give old objects a new field's default; constructOnLoad's defaults are replaced.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  InvalidArgumentError,
  MemoryStorage,
  open,
  Persistent,
  PersistentMap,
  registerClass,
} from 'trove';
import { reopen } from '../support/handles.js';

/** The keys of every state upgradeState was given, in order. */
const given: string[][] = [];

/** Version 2 of a user: `roles` was added, and old users get the default. */
class User extends Persistent {
  name: string;
  roles: string[] = ['user'];
  constructor(name: string) {
    super();
    this.name = name;
  }
  static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
    given.push(Object.keys(state).sort());
    return { roles: ['user'], ...state };
  }
}
registerClass(User, 'upgradeState.User');

/** Stores a user as version 1 did: without `roles`. */
async function storedByVersion1(storage: MemoryStorage): Promise<void> {
  const db = await open({ storage });
  const ada = new User('Ada');
  delete (ada as Partial<User>).roles;
  db.root.set('ada', ada);
  await db.commit();
}

describe('upgradeState', () => {
  it('gives an object stored by an earlier version the fields added since; loading changes nothing', async () => {
    const storage = new MemoryStorage();
    await storedByVersion1(storage);
    given.length = 0;
    const db = await reopen(storage);
    const ada = db.root.get('ada') as User;
    assert.deepEqual([ada.name, [...ada.roles]], ['Ada', ['user']]);
    assert.deepEqual(given, [['name']]);
    const tid = storage.lastTid();
    await db.commit();
    assert.equal(storage.lastTid(), tid, 'the upgrade alone is not stored');
    // Written for a change of its own, it is stored as this version has it.
    ada.name = 'Ada L.';
    await db.commit();
    given.length = 0;
    const later = await reopen(storage);
    assert.deepEqual((later.root.get('ada') as User).roles, ['user']);
    assert.deepEqual(given, [['name', 'roles']]);
  });

  it('a result that is no state, or an error it throws, is thrown where the object is used', async () => {
    class Bad extends Persistent {
      static mode: 'array' | 'throw' | 'promise' = 'array';
      static upgradeState(state: Record<string, unknown>): unknown {
        if (Bad.mode === 'throw') throw new RangeError('cannot upgrade');
        if (Bad.mode === 'promise') return Promise.resolve(state);
        return Object.entries(state);
      }
    }
    registerClass(Bad, 'upgradeState.Bad');
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('bad', Object.assign(new Bad(), { n: 1 }));
    db.root.set('fine', new User('Bob'));
    await db.commit();
    for (const mode of ['array', 'promise', 'throw'] as const) {
      Bad.mode = mode;
      const again = await reopen(storage);
      const bad = again.root.get('bad') as Bad & { n: number };
      if (mode === 'throw') assert.throws(() => bad.n, RangeError);
      else {
        assert.throws(
          () => bad.n,
          (error: unknown) =>
            error instanceof InvalidArgumentError && error.argument === 'upgradeState',
        );
      }
      assert.equal((again.root.get('fine') as User).name, 'Bob', 'other objects load');
      await again.close();
    }
  });

  it('resolveConflict is given the stored states upgraded', async () => {
    const states: Record<string, unknown>[][] = [];
    class Merged extends User {
      static resolveConflict(
        old: Record<string, unknown>,
        committed: Record<string, unknown>,
        mine: Record<string, unknown>,
      ): Record<string, unknown> {
        states.push([old, committed, mine]);
        return { ...committed, name: mine.name };
      }
    }
    registerClass(Merged, 'upgradeState.Merged');
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const eve = new Merged('Eve');
    delete (eve as Partial<User>).roles;
    db.root.set('eve', eve);
    await db.commit();
    const mine = await reopen(storage);
    const theirs = await reopen(storage);
    (mine.root.get('eve') as Merged).name = 'Eve M.';
    (theirs.root.get('eve') as Merged & { note?: string }).note = 'theirs';
    await theirs.commit();
    await mine.commit();
    assert.equal(states.length, 1);
    for (const state of states[0]!) assert.deepEqual(state.roles, ['user']);
    const stored = (await reopen(storage)).root.get('eve') as Merged & { note?: string };
    assert.deepEqual([stored.name, stored.note], ['Eve M.', 'theirs']);
  });

  // Found in review: an object made in upgradeState was never stored, nor its changes.
  it('an upgraded state that refers to a new persistent object is refused with InvalidArgumentError', async () => {
    class Settings extends Persistent {
      theme = 'light';
    }
    registerClass(Settings, 'upgradeState.Settings');
    let mode: 'returned' | 'in place' | '__proto__' = 'returned';
    class Owner extends Persistent {
      static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
        if (mode === 'returned') return { settings: new Settings(), ...state };
        // Under a key that, assigned, sets a prototype (found in review).
        if (mode === '__proto__') {
          return Object.defineProperty({ ...state }, '__proto__', {
            value: new Settings(),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        // Changed in place and returned: checked all the same.
        state.settings = new Settings();
        return state;
      }
    }
    registerClass(Owner, 'upgradeState.Owner');
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('owner', Object.assign(new Owner(), { name: 'o' }));
    await db.commit();
    for (const each of ['returned', 'in place', '__proto__'] as const) {
      mode = each;
      const again = await reopen(storage);
      assert.throws(
        () => (again.root.get('owner') as Owner & { name: string }).name,
        (error: unknown) => error instanceof InvalidArgumentError,
        each,
      );
    }
  });

  // Found in review: a collection subclass's upgrade dropped the items it was not meant to
  // see, and the collection loaded empty.
  it("a collection's upgrade is given its attributes, and its items are kept", async () => {
    const seen: string[][] = [];
    class Tagged extends PersistentMap<string, number> {
      static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
        seen.push(Object.keys(state));
        return { label: 'none', ...state };
      }
    }
    registerClass(Tagged, 'upgradeState.Tagged');
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('tagged', new Tagged([['a', 1]]));
    await db.commit();
    const tagged = (await reopen(storage)).root.get('tagged') as Tagged & { label: string };
    assert.deepEqual([tagged.label, [...tagged]], ['none', [['a', 1]]]);
    assert.deepEqual(seen, [[]]);
    // (Found in review.) Items the upgrade returns are refused: the stored ones are kept.
    class Refilled extends PersistentMap<string, number> {
      static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
        return { ...state, '@items': new Map() };
      }
    }
    registerClass(Refilled, 'upgradeState.Refilled');
    db.root.set('refilled', new Refilled([['b', 2]]));
    await db.commit();
    const refilled = (await reopen(storage)).root.get('refilled') as Refilled;
    assert.throws(() => refilled.size, InvalidArgumentError);
    // Any other class's attribute of that name is its upgrade's like any other.
    class Plain extends Persistent {
      static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
        return { ...state, '@items': `was ${String(state['@items'])}` };
      }
    }
    registerClass(Plain, 'upgradeState.Plain');
    db.root.set('plain', Object.assign(new Plain(), { '@items': 'x' }));
    await db.commit();
    const plain = (await reopen(storage)).root.get('plain') as Plain & { '@items': string };
    assert.equal(plain['@items'], 'was x');
  });

  // Found in review: its failure in a merge was a ConflictError ("resolveConflict threw"),
  // which db.transaction retried.
  it('an upgradeState that throws in a merge fails the commit with its own error, not a conflict', async () => {
    let failing = false;
    class Fragile extends Persistent {
      static upgradeState(state: Record<string, unknown>): Record<string, unknown> {
        if (failing) throw new RangeError('cannot upgrade');
        return state;
      }
      static resolveConflict(
        _old: Record<string, unknown>,
        committed: Record<string, unknown>,
        mine: Record<string, unknown>,
      ): Record<string, unknown> {
        return { ...committed, ...mine };
      }
    }
    registerClass(Fragile, 'upgradeState.Fragile');
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('f', Object.assign(new Fragile(), { a: 0, b: 0 }));
    await db.commit();
    const mine = await reopen(storage);
    const theirs = await reopen(storage);
    (mine.root.get('f') as Fragile & { a: number }).a = 1;
    (theirs.root.get('f') as Fragile & { b: number }).b = 2;
    await theirs.commit();
    failing = true;
    await assert.rejects(mine.commit(), RangeError);
  });
});
