/**
 * `registerClass(cls, name, { constructOnLoad: true })`: objects of the class loaded from
 * the database are made by its constructor, so `#private` fields and what the constructor
 * sets up exist on them; their stored attributes replace what the constructor assigned, and
 * loading changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClosedError,
  InvalidArgumentError,
  MemoryStorage,
  open,
  Persistent,
  PersistentList,
  registerClass,
} from 'trove';
import { reopen } from '../support/handles.js';

const scratch = Symbol('scratch');

class Account extends Persistent {
  static constructions = 0;
  owner: string;
  balance = 0;
  #history: number[] = [];
  [scratch]: Map<string, number>;
  constructor(owner = 'nobody') {
    super();
    Account.constructions++;
    this.owner = owner;
    this[scratch] = new Map();
  }
  deposit(amount: number): void {
    this.#history.push(amount);
    this.balance += amount;
  }
  get depositsSinceLoad(): number {
    return this.#history.length;
  }
  #checked(): boolean {
    return this[scratch] instanceof Map;
  }
  get ready(): boolean {
    return this.#checked();
  }
}
registerClass(Account, 'constructOnLoad.Account', { constructOnLoad: true });

/** A constructor that makes persistent objects and sets attributes the state replaces. */
const firstTags = Symbol('firstTags');

class Ledger extends Persistent {
  entries = new PersistentList<string>();
  title = 'new ledger';
  tags: string[] = ['fresh'];
  note?: string = 'made by the constructor';
  /** A nested value read in the constructor: of the constructor's state, not the stored one. */
  [firstTags]: string[];
  #opened = true;
  constructor() {
    super();
    this[firstTags] = this.tags;
  }
  get opened(): boolean {
    return this.#opened;
  }
}
registerClass(Ledger, 'constructOnLoad.Ledger', { constructOnLoad: true });

class Fragile extends Persistent {
  static failing = false;
  #ok = true;
  constructor() {
    super();
    if (Fragile.failing) throw new RangeError('cannot make a Fragile now');
  }
  get ok(): boolean {
    return this.#ok;
  }
}
registerClass(Fragile, 'constructOnLoad.Fragile', { constructOnLoad: true });

/** Defines an attribute the stored state could not replace. */
class Fixed extends Persistent {
  declare readonly kind: string;
  constructor() {
    super();
    Object.defineProperty(this, 'kind', { value: 'fixed', enumerable: true });
  }
}
registerClass(Fixed, 'constructOnLoad.Fixed', { constructOnLoad: true });

/** Reads another such object (a ghost) in a parameter default, before super(). */
class Greeter extends Persistent {
  static source: Account | undefined;
  #secret = 42;
  greeting: string;
  constructor(greeting = Greeter.source?.owner ?? 'hello') {
    super();
    this.greeting = greeting;
  }
  get secret(): number {
    return this.#secret;
  }
}
registerClass(Greeter, 'constructOnLoad.Greeter', { constructOnLoad: true });

/** Registered without the option: it inherits it from Account. */
class Savings extends Account {
  #rate = 2;
  get rate(): number {
    return this.#rate;
  }
}
registerClass(Savings, 'constructOnLoad.Savings');

class Unconstructed extends Persistent {
  #secret = 1;
  get secret(): number {
    return this.#secret;
  }
}
registerClass(Unconstructed, 'constructOnLoad.Unconstructed');

class Friend extends Persistent {
  constructor(public other?: Account) {
    super();
  }
}
registerClass(Friend, 'constructOnLoad.Friend');

describe('constructOnLoad', () => {
  it('a loaded object has its #private fields and what its constructor sets up, and its stored attributes', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const account = new Account('ada');
    account.deposit(5);
    db.root.set('account', account);
    await db.commit();

    const loaded = (await reopen(storage)).root.get('account') as Account;
    assert.equal(loaded.owner, 'ada', 'the stored value, not the constructor default');
    assert.equal(loaded.balance, 5);
    assert.equal(loaded.depositsSinceLoad, 0, '#private fields are volatile: initialised anew');
    assert.equal(loaded.ready, true, 'private methods and symbol-keyed state work');
    loaded.deposit(2);
    assert.equal(loaded.depositsSinceLoad, 1);
    assert.deepEqual(Object.keys(loaded).sort(), ['balance', 'owner']);
  });

  it('loading changes nothing: a commit after it writes nothing', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('ledger', new Ledger());
    const made = db.root.get('ledger') as Ledger;
    made.title = 'accounts';
    made.tags = ['stored'];
    delete made.note;
    await db.commit();
    const before = storage.lastTid();

    const db2 = await reopen(storage);
    const ledger = db2.root.get('ledger') as Ledger;
    assert.equal(ledger.title, 'accounts');
    assert.deepEqual(ledger.tags, ['stored']);
    assert.equal('note' in ledger, false, 'an attribute deleted before the commit stays deleted');
    // What the constructor read of its own state is of a state that is gone: refused.
    assert.throws(() => ledger[firstTags].push('lost'), ClosedError);
    assert.equal(ledger.opened, true);
    assert.equal(ledger.entries.length, 0);
    await db2.commit();
    assert.equal(storage.lastTid(), before, 'no commit was written');
  });

  it('the constructor runs once per object and handle, not again when it reloads', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('account', new Account('bo'));
    await db.commit();

    const db2 = await reopen(storage);
    const runs = Account.constructions;
    const account = db2.root.get('account') as Account;
    account.deposit(1);
    assert.equal(Account.constructions, runs + 1);
    await db2.commit();

    // Another handle's commit makes this one load the object again at its next transaction.
    db.abort();
    (db.root.get('account') as Account).deposit(10);
    await db.commit();
    db2.abort();
    assert.equal(account.balance, 11);
    assert.equal(account.depositsSinceLoad, 1, 'the #private fields are kept, not made again');
    assert.equal(Account.constructions, runs + 1);
  });

  it('works for objects first met as references and in db.transaction', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('friend', new Friend(new Account('cy')));
    await db.commit();

    const db2 = await reopen(storage);
    const ready = await db2.transaction((tx) => {
      const account = (tx.root.get('friend') as Friend).other!;
      account.deposit(3);
      return account.ready && account.depositsSinceLoad === 1;
    });
    assert.equal(ready, true);
    const back = ((await reopen(storage)).root.get('friend') as Friend).other!;
    assert.ok(back instanceof Account);
    assert.equal(back.balance, 3);
  });

  it("the constructor's error is thrown wherever the object is used in that handle; other objects load", async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('fragile', new Fragile());
    db.root.set('account', new Account('di'));
    await db.commit();

    const db2 = await reopen(storage);
    Fragile.failing = true;
    let first: unknown;
    try {
      assert.throws(
        () => (db2.root.get('fragile') as Fragile).ok,
        (error: unknown) => {
          first = error;
          return error instanceof RangeError;
        },
      );
      assert.equal((db2.root.get('account') as Account).owner, 'di');
    } finally {
      Fragile.failing = false;
    }
    // Its #private fields were defined before it threw: it does not run again over the same
    // object (that would be a TypeError), and the object is not handed out half made.
    db2.abort();
    assert.throws(
      () => (db2.root.get('fragile') as Fragile).ok,
      (error: unknown) => error === first,
    );
    const db3 = await reopen(storage);
    assert.equal((db3.root.get('fragile') as Fragile).ok, true);
  });

  it('a constructor that defines a non-configurable attribute makes loading fail with InvalidArgumentError', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('fixed', new Fixed());
    await db.commit();
    const db2 = await reopen(storage);
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => (db2.root.get('fixed') as Fixed).kind,
        (error: unknown) =>
          error instanceof InvalidArgumentError && error.code === 'TROVE_INVALID_ARGUMENT',
      );
    }
  });

  it('a constructor may load another such object before super()', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('account', new Account('eve'));
    db.root.set('greeter', new Greeter());
    await db.commit();
    const db2 = await reopen(storage);
    Greeter.source = db2.root.get('account') as Account; // a ghost, loaded by the default
    try {
      const greeter = db2.root.get('greeter') as Greeter;
      assert.equal(greeter.secret, 42);
      assert.equal(Greeter.source.ready, true);
    } finally {
      Greeter.source = undefined;
    }
  });

  it('what the constructor keeps under symbol keys stays, as its #private fields do, when the object reloads', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('account', new Account('fay'));
    await db.commit();
    const db2 = await reopen(storage);
    const account = db2.root.get('account') as Account;
    assert.equal(account.ready, true);
    (db.root.get('account') as Account).deposit(1);
    await db.commit();
    db2.abort(); // reloads the object another handle changed
    assert.equal(account.balance, 1);
    assert.equal(account.ready, true, 'the Map the constructor made is still there');
  });

  it('a subclass of such a class is made by its constructor too', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('savings', new Savings('gus'));
    await db.commit();
    const loaded = (await reopen(storage)).root.get('savings') as Savings;
    loaded.deposit(3);
    assert.equal(loaded.depositsSinceLoad, 1);
    assert.equal(loaded.rate, 2);
  });

  it('without the option a loaded object has no #private fields (the default)', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('u', new Unconstructed());
    await db.commit();
    assert.equal((db.root.get('u') as Unconstructed).secret, 1, 'a new object has them');
    const loaded = (await reopen(storage)).root.get('u') as Unconstructed;
    assert.throws(() => loaded.secret, TypeError);
  });

  it('is refused with InvalidArgumentError when not a boolean, or for a value class', () => {
    class Point {
      x = 0;
    }
    class Other extends Persistent {}
    for (const [cls, options] of [
      [Other, { constructOnLoad: 'yes' }],
      [Point, { constructOnLoad: true }],
    ] as const) {
      assert.throws(
        () => registerClass(cls, 'constructOnLoad.Refused', options as never),
        (error: unknown) =>
          error instanceof InvalidArgumentError &&
          error.code === 'TROVE_INVALID_ARGUMENT' &&
          error.argument === 'options.constructOnLoad',
      );
    }
    // Nothing was registered by the refused calls: the name is still free.
    registerClass(Other, 'constructOnLoad.Refused');
  });
});
