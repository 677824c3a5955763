/**
 * A value-class instance of a class this program does not know, stored in a record with
 * shared values (kind 3), loads as a BrokenValue and is written back so that a program that
 * knows the class gets an instance of it again. (Found by a bug hunt: it loaded as a plain
 * object holding the class marker, and lost its class once written back unshared.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokenValue, MemoryStorage, open, Persistent, persistent } from 'trove';
import { dump, runProgram, storageFrom } from '../support/other-program.js';

@persistent('brokenShared.Holder')
class Holder extends Persistent {
  a: unknown;
  b: unknown;
}

const OLD = `
const { open, Persistent, registerClass } = trove;
class Holder extends Persistent {}
registerClass(Holder, 'brokenShared.Holder');
class Money { constructor(amount) { this.amount = amount; } }
registerClass(Money, 'brokenShared.Money');
`;

/** A storage where a program that knows Money stored one Money in two attributes of `h`. */
async function sharedMoneyStored() {
  const old = runProgram(`${OLD}
const db = await open({ storage });
const h = new Holder();
const m = new Money(5);
h.a = m; h.b = m; // shared: the record is written with structured clone
db.root.set('h', h);
await db.commit();
`);
  return storageFrom(old.transactions);
}

describe('a value of an unregistered class in a record with shared values', () => {
  it('loads as a BrokenValue', async () => {
    const storage = await sharedMoneyStored();
    const db = await open({ storage });
    const h = db.root.get('h') as Holder;
    assert.ok(h.a instanceof BrokenValue);
    assert.equal(h.a.className, 'brokenShared.Money');
    assert.deepEqual(h.a.state, { amount: 5 });
    assert.equal(h.b, h.a);
  });

  it('is written back so the class comes back once the value is no longer shared', async () => {
    const storage = await sharedMoneyStored();
    const db = await open({ storage });
    const h = db.root.get('h') as Holder;
    h.b = null; // the value is no longer shared: the record is written plain
    await db.commit();
    const next = runProgram(
      `${OLD}
const db = await open({ storage });
const a = db.root.get('h').a;
output = { isMoney: a instanceof Money, keys: Object.keys(a), amount: a.amount };
`,
      await dump(storage),
    );
    assert.deepEqual(next.output, { isMoney: true, keys: ['amount'], amount: 5 });
  });

  // Found in review: the user's own data with the marker's key read back as a BrokenValue.
  for (const shared of [true, false]) {
    it(`a plain object of the user's with the marker's key stays one (${shared ? 'shared' : 'not shared'})`, async () => {
      const storage = new MemoryStorage();
      const db = await open({ storage });
      const data = { '\u0000trove.class': 'user text', x: 1 };
      const holder = new Holder();
      holder.a = data;
      holder.b = shared ? data : { y: 2 };
      db.root.set('h', holder);
      await db.commit();
      const again = (await open({ storage })).root.get('h') as Holder;
      assert.ok(!(again.a instanceof BrokenValue));
      assert.deepEqual({ ...(again.a as object) }, data);
      if (shared) assert.equal(again.b, again.a);
    });
  }
});
