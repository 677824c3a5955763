/**
 * Stable class names across program versions: aliases, and classes that are gone (Broken
 * objects and BrokenValues). Data is written by "another program" (a child process with its
 * own class registry, see support/other-program.ts) and read here, where the registry differs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Broken,
  BrokenValue,
  MemoryStorage,
  markChanged,
  oidOf,
  open,
  Persistent,
  PersistentMap,
  persistent,
  ReadOnlyError,
  registerClass,
} from 'trove';
import { dump, runProgram, storageFrom } from '../support/other-program.js';

/** Registered under the same name in every program of this file. */
@persistent('codecRegistry.Friend')
class Friend extends Persistent {
  constructor(public name: string) {
    super();
  }
}

@persistent('codecRegistry.Holder')
class Holder extends Persistent {
  price: unknown;
  note = '';
}

/** The program of the previous version: the classes it defines, under the names it gives. */
const OLD_CLASSES = `
const { open, Persistent, registerClass } = trove;
class Friend extends Persistent { constructor(name) { super(); this.name = name; } }
registerClass(Friend, 'codecRegistry.Friend');
class Holder extends Persistent { price; note = ''; }
registerClass(Holder, 'codecRegistry.Holder');
class Money { constructor(amount, currency) { this.amount = amount; this.currency = currency; } }
class Gone extends Persistent {}
`;

/** Writes, in another program, a `Gone` object registered under `name` with rich state. */
function writeGone(name: string) {
  return runProgram(`${OLD_CLASSES}
registerClass(Gone, '${name}');
const db = await open({ storage });
const friend = new Friend('only reachable through the gone object');
const gone = new Gone();
Object.assign(gone, { name: 'kept', tags: ['a', 'b'], when: new Date(42), counts: new Map([['x', 1]]), friend });
const peer = new Gone();
peer.name = 'peer';
peer.peer = gone;
gone.peer = peer;
db.root.set('gone', gone);
db.root.set('sharedFriend', new Friend('shared'));
gone.shared = db.root.get('sharedFriend');
await db.commit();
output = { oid: trove.oidOf(gone), peerOid: trove.oidOf(peer), friendOid: trove.oidOf(friend) };
`);
}

const readOnly = (error: unknown) =>
  error instanceof ReadOnlyError && error.code === 'TROVE_READ_ONLY';

describe('class registry', () => {
  it('registers with the decorator and with registerClass; registering again is allowed', () => {
    class Local extends Persistent {}
    assert.equal(registerClass(Local, 'codecRegistry.Local'), Local);
    assert.equal(registerClass(Local, 'codecRegistry.Local'), Local, 'same class, same name');
    assert.ok(new Friend('x') instanceof Persistent);
  });

  // Found by a bug hunt: installed by assignment, a stored field the new version made a
  // getter threw a TypeError, and the object could not load. One it made a getter and a
  // setter still goes through the setter, as a class migrating the field expects.
  it('a stored field that a later version made an accessor: a getter loads it as stored, a setter takes it', async () => {
    const old = runProgram(`${OLD_CLASSES}
class Person extends Persistent { constructor() { super(); this.first = 'Ada'; this.fullName = 'Ada Lovelace'; this.nick = 'A.'; } }
registerClass(Person, 'codecRegistry.Person');
const db = await open({ storage });
db.root.set('person', new Person());
await db.commit();
`);
    class Person extends Persistent {
      first = '';
      nickname = '';
      get fullName(): string {
        return `${this.first} (computed)`;
      }
      get nick(): string {
        return this.nickname;
      }
      set nick(value: string) {
        this.nickname = value;
      }
    }
    registerClass(Person, 'codecRegistry.Person');
    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    const person = db.root.get('person') as Person;
    assert.equal(person.first, 'Ada');
    // The stored attribute is the object's own, as stored; saved again, it is kept.
    assert.equal(person.fullName, 'Ada Lovelace');
    assert.equal(person.nickname, 'A.');
    person.first = 'Augusta';
    await db.commit();
    const again = (await open({ storage })).root.get('person') as Person;
    assert.deepEqual([again.fullName, again.first, again.nick], ['Ada Lovelace', 'Augusta', 'A.']);
  });

  // Found by a bug hunt: saved again by a program without the class, the error was stored
  // as a plain Error, and the class was lost for good.
  it('an error of a class this program does not register keeps its class name when saved again', async () => {
    const old = runProgram(`${OLD_CLASSES}
class PaymentError extends Error {}
registerClass(PaymentError, 'codecRegistry.PaymentError');
const db = await open({ storage });
const holder = new Holder();
holder.price = new PaymentError('declined');
db.root.set('holder', holder);
await db.commit();
`);
    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    const holder = db.root.get('holder') as Holder;
    assert.equal((holder.price as Error).message, 'declined');
    holder.note = 'saved again without the class';
    await db.commit();
    const next = runProgram(
      `
const { open, Persistent, registerClass } = trove;
class Holder extends Persistent {}
registerClass(Holder, 'codecRegistry.Holder');
class PaymentError extends Error {}
registerClass(PaymentError, 'codecRegistry.PaymentError');
const db = await open({ storage });
const holder = db.root.get('holder');
output = { isPaymentError: holder.price instanceof PaymentError, message: holder.price.message, note: holder.note };
`,
      await dump(storage),
    );
    assert.deepEqual(next.output, {
      isPaymentError: true,
      message: 'declined',
      note: 'saved again without the class',
    });
  });

  // Found by a bug hunt: registering BrokenValue made every unregistered value be written
  // under the name given, wrapping what it stood for.
  it("trove's own unregistered classes cannot be registered", () => {
    for (const cls of [Persistent, Broken, BrokenValue]) {
      assert.throws(() => registerClass(cls as never, 'codecRegistry.Mine'), {
        code: 'TROVE_INVALID_ARGUMENT',
        argument: 'cls',
      });
    }
  });

  it('aliases load records stored under old names, for persistent and value classes', async () => {
    const old = runProgram(`${OLD_CLASSES}
class User extends Persistent { constructor(name) { super(); this.name = name; } }
registerClass(User, 'codecRegistry.OldUser');
registerClass(Money, 'codecRegistry.OldMoney');
const db = await open({ storage });
const user = new User('Ada');
user.wallet = new Money(5, 'EUR');
db.root.set('user', user);
await db.commit();
`);

    class User extends Persistent {
      name = '';
      wallet: unknown;
      greet(): string {
        return `hello ${this.name}`;
      }
    }
    registerClass(User, 'codecRegistry.User', { aliases: ['codecRegistry.OldUser'] });
    class Money {
      constructor(
        public amount: number,
        public currency: string,
      ) {}
    }
    registerClass(Money, 'codecRegistry.Money', { aliases: ['codecRegistry.OldMoney'] });

    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    const user = db.root.get('user') as User;
    assert.ok(user instanceof User);
    assert.equal(user.greet(), 'hello Ada');
    assert.ok(user.wallet instanceof Money);
    assert.equal((user.wallet as Money).amount, 5);

    // Saved again, the record carries the new names: a program that knows only those reads it.
    user.name = 'Ada L.';
    await db.commit();
    const next = runProgram(
      `
const { open, Persistent, registerClass } = trove;
class User extends Persistent {}
registerClass(User, 'codecRegistry.User');
class Money {}
registerClass(Money, 'codecRegistry.Money');
const db = await open({ storage });
const user = db.root.get('user');
output = { isUser: user instanceof User, name: user.name, isMoney: user.wallet instanceof Money, amount: user.wallet.amount };
`,
      await dump(storage),
    );
    assert.deepEqual(next.output, { isUser: true, name: 'Ada L.', isMoney: true, amount: 5 });
  });

  it('an object of a class no longer registered loads as Broken, with its state and references', async () => {
    const old = writeGone('codecRegistry.GoneA');
    const db = await open({ storage: await storageFrom(old.transactions) });
    const gone = db.root.get('gone') as any;
    assert.equal(gone instanceof Broken, true);
    assert.equal(gone instanceof Persistent, true);
    assert.equal(gone.brokenClassName, 'codecRegistry.GoneA');
    assert.equal(oidOf(gone), old.output.oid);
    assert.equal(gone.name, 'kept');
    assert.deepEqual([...gone.tags], ['a', 'b']);
    assert.equal(gone.when.getTime(), 42);
    assert.equal(gone.counts.get('x'), 1);
    assert.ok(gone.friend instanceof Friend);
    assert.equal(gone.friend.name, 'only reachable through the gone object');
    assert.equal(gone.shared, db.root.get('sharedFriend'), 'references resolve with identity');
    assert.ok(gone.peer instanceof Broken);
    assert.equal(gone.peer.peer, gone);
  });

  it('a loaded Broken object refuses attribute writes with TROVE_READ_ONLY', async () => {
    const old = writeGone('codecRegistry.GoneB');
    const db = await open({ storage: await storageFrom(old.transactions) });
    const gone = db.root.get('gone') as any;
    assert.equal(gone.name, 'kept'); // loads it
    assert.throws(() => {
      gone.name = 'changed';
    }, readOnly);
    assert.throws(() => {
      gone.added = 1;
    }, readOnly);
    assert.throws(() => {
      delete gone.name;
    }, readOnly);
    assert.throws(() => Object.defineProperty(gone, 'name', { value: 'x' }), readOnly);
    assert.throws(() => markChanged(gone), readOnly);
    assert.equal(gone.name, 'kept');
    assert.equal('added' in gone, false);
    await db.commit();
  });

  it('a Broken object not loaded yet refuses its first write too', async () => {
    const old = writeGone('codecRegistry.GoneB2');
    const db = await open({ storage: await storageFrom(old.transactions) });
    const gone = db.root.get('gone') as any; // a ghost: its class is known only once loaded
    assert.throws(() => {
      gone.name = 'changed';
    }, readOnly);
    assert.equal(gone.name, 'kept');
    await db.commit(); // nothing pending: the commit succeeds
  });

  it('a Broken object refuses writes into its nested values', async () => {
    const old = writeGone('codecRegistry.GoneB3');
    const db = await open({ storage: await storageFrom(old.transactions) });
    const gone = db.root.get('gone') as any;
    assert.throws(() => gone.tags.push('c'), readOnly, 'nested arrays');
    assert.throws(() => gone.counts.set('y', 2), readOnly, 'nested Maps');
    assert.throws(() => gone.when.setTime(0), readOnly, 'nested Dates');
    assert.deepEqual([...gone.tags], ['a', 'b']);
    assert.equal(gone.counts.size, 1);
    assert.equal(gone.when.getTime(), 42);
    await db.commit(); // nothing pending: the commit succeeds
  });

  it("a Broken object's record stays byte-identical while the program works around it", async () => {
    const old = writeGone('codecRegistry.GoneC');
    const storage = await storageFrom(old.transactions);
    const before = storage.load(old.output.oid);
    const db = await open({ storage });
    const gone = db.root.get('gone') as any;
    assert.equal(gone.name, 'kept'); // loaded
    assert.throws(() => {
      gone.name = 'attempt';
    }, readOnly);
    db.root.set('note', 'the root changed'); // the root, which refers to it, is rewritten
    db.root.set('alias', gone); // a second reference to it
    (gone.friend as Friend).name = 'a friend changed'; // an object it refers to changes
    await db.commit();
    const after = storage.load(old.output.oid);
    assert.equal(after.tid, before.tid, 'no new revision of the broken object');
    assert.deepEqual(Buffer.from(after.data), Buffer.from(before.data));
    assert.deepEqual([...after.refs].sort(), [...before.refs].sort());
    assert.ok(storage.load(0).refs.includes(old.output.oid));
  });

  it('objects reachable only through a Broken object survive a pack', async () => {
    const old = writeGone('codecRegistry.GoneD');
    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    db.root.set('unrelated', new PersistentMap());
    await db.commit();
    await db.pack();
    const fresh = await open({ storage });
    const gone = fresh.root.get('gone') as any;
    assert.equal(gone.friend.name, 'only reachable through the gone object');
    assert.equal(oidOf(gone.friend), old.output.friendOid);
  });

  it('registering the class again brings a Broken object back intact', async () => {
    const old = writeGone('codecRegistry.GoneE');
    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    const broken = db.root.get('gone') as any;
    assert.ok(broken instanceof Broken);
    db.root.set('touched', true);
    await db.commit();

    // The class comes back (a new version of the program registers it again).
    class Gone extends Persistent {
      describe(): string {
        return `${(this as any).name} with ${(this as any).tags.length} tags`;
      }
    }
    registerClass(Gone, 'codecRegistry.GoneE');
    const again = await open({ storage });
    const gone = again.root.get('gone') as any;
    assert.equal(gone instanceof Gone, true);
    assert.equal(gone.describe(), 'kept with 2 tags');
    assert.equal(gone.when.getTime(), 42);
    assert.ok(gone.friend instanceof Friend);
    assert.equal(gone.peer.peer, gone);
    gone.name = 'writable again';
    await again.commit();
    assert.equal(((await open({ storage })).root.get('gone') as any).name, 'writable again');
  });

  // Found in a bug hunt: the handle that had loaded it kept the Broken object after the
  // class was registered, refusing writes, while its db.read saw the class.
  it('registered while a handle holds a Broken object: the next transaction of that handle sees the class', async () => {
    const old = writeGone('codecRegistry.GoneF');
    const db = await open({ storage: await storageFrom(old.transactions) });
    const broken = db.root.get('gone') as any;
    assert.ok(broken instanceof Broken);
    class Gone extends Persistent {}
    registerClass(Gone, 'codecRegistry.GoneF');
    db.abort();
    const gone = db.root.get('gone');
    assert.equal(gone === broken, true, 'the same object, loaded again');
    assert.equal(gone instanceof Gone, true);
    assert.equal(gone.name, 'kept');
    assert.equal(gone.peer.peer, gone);
    gone.name = 'writable again';
    await db.commit();
  });

  it('a value-class instance whose class is gone loads as a BrokenValue and is saved back unchanged', async () => {
    const old = runProgram(`${OLD_CLASSES}
registerClass(Money, 'codecRegistry.LostMoney');
const db = await open({ storage });
const holder = new Holder();
holder.price = new Money(5, 'EUR');
holder.prices = [new Money(1, 'USD'), { nested: new Money(2, 'GBP') }];
db.root.set('holder', holder);
await db.commit();
`);
    const storage = await storageFrom(old.transactions);
    const db = await open({ storage });
    const holder = db.root.get('holder') as Holder & { prices: any[] };
    assert.ok(holder instanceof Holder);
    const price = holder.price as BrokenValue;
    assert.ok(price instanceof BrokenValue);
    assert.equal(price.className, 'codecRegistry.LostMoney');
    assert.deepEqual({ ...price.state }, { amount: 5, currency: 'EUR' });
    assert.ok(holder.prices[0] instanceof BrokenValue);
    assert.ok(holder.prices[1].nested instanceof BrokenValue);

    // The holder itself is a registered class: it can change, and saves the values back.
    holder.note = 'changed here';
    await db.commit();

    const next = runProgram(
      `${OLD_CLASSES}
registerClass(Money, 'codecRegistry.LostMoney');
const db = await open({ storage });
const h = db.root.get('holder');
output = {
  note: h.note,
  price: h.price instanceof Money ? [h.price.amount, h.price.currency] : null,
  first: h.prices[0] instanceof Money ? h.prices[0].currency : null,
  nested: h.prices[1].nested instanceof Money ? h.prices[1].nested.amount : null,
};
`,
      await dump(storage),
    );
    assert.deepEqual(next.output, {
      note: 'changed here',
      price: [5, 'EUR'],
      first: 'USD',
      nested: 2,
    });
  });

  it('a class registered under a new name reads data written by this program', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('f', new Friend('me'));
    await db.commit();
    const next = runProgram(
      `
const { open, Persistent, registerClass } = trove;
class Buddy extends Persistent {}
registerClass(Buddy, 'codecRegistry.Buddy', { aliases: ['codecRegistry.Friend'] });
const db = await open({ storage });
const f = db.root.get('f');
output = [f instanceof Buddy, f.name];
`,
      await dump(storage),
    );
    assert.deepEqual(next.output, [true, 'me']);
  });
});
