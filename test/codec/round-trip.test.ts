/**
 * Values through the record codec: each is stored as an attribute of a persistent object,
 * committed, and read back through another database handle on the same storage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokenValue, MemoryStorage, oidOf, open, Persistent, registerClass } from 'trove';
import { reopen } from '../support/handles.js';

class Box extends Persistent {
  value: any;
  constructor(value?: unknown) {
    super();
    this.value = value;
  }
}
registerClass(Box, 'codecRoundTrip.Box');

class Money {
  constructor(
    public amount: number,
    public currency: string,
  ) {}
  format(): string {
    return `${this.amount} ${this.currency}`;
  }
}
registerClass(Money, 'codecRoundTrip.Money');

class Period {
  constructor(
    public from: Date,
    public to: Date,
    public tags: Map<string, Set<number>>,
    public price: Money,
  ) {}
}
registerClass(Period, 'codecRoundTrip.Period');

/** Stores `value`, then returns it as read back by a fresh handle. */
async function roundTrip(value: unknown): Promise<any> {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  db.root.set('box', new Box(value));
  await db.commit();
  return ((await reopen(storage)).root.get('box') as Box).value;
}

/**
 * A deep copy made of native values. Maps, Sets and Dates read from a persistent object are
 * change-tracking proxies, which node:assert cannot look into (it reads their internal slots).
 */
function unview(value: unknown): unknown {
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [unview(k), unview(v)]));
  if (value instanceof Set) return new Set([...value].map(unview));
  if (value instanceof Date) return new Date(value.getTime());
  if (Array.isArray(value)) return value.map(unview);
  if (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unview(v)]));
  }
  return value;
}

/** Round-trips `value` and checks it comes back deep-equal (Object.is for primitives). */
async function same(value: unknown): Promise<void> {
  const back = await roundTrip(value);
  if (typeof value !== 'object' || value === null) assert.ok(Object.is(back, value), String(value));
  else assert.deepEqual(unview(back), value);
}

describe('codec round trip', () => {
  // Found in a bug hunt: each value class registered was one more `instanceof` for every
  // reference, Date or Set written (with 800, twenty times slower commits).
  it('registered value classes are not tried one by one for each value written', async () => {
    let asked = 0;
    const classes = Array.from({ length: 20 }, (_, i) => {
      const cls = class Counted {
        constructor(readonly n: number) {}
        static [Symbol.hasInstance](value: unknown): boolean {
          asked++;
          return Function.prototype[Symbol.hasInstance].call(Counted, value);
        }
      };
      return registerClass(cls, `roundTrip.Counted${i}`);
    });
    const db = await open({ storage: new MemoryStorage() });
    const holder = new Box({
      when: Array.from({ length: 50 }, (_, i) => new Date(i)),
      tags: new Set(['a', 'b']),
      others: Array.from({ length: 50 }, () => new Box()),
      counted: new classes[7]!(7),
    });
    db.root.set('holder', holder);
    asked = 0;
    await db.commit();
    assert.equal(asked, 0);
    const back = (await reopen(db.storage as MemoryStorage)).root.get('holder') as Box;
    const value = back.value as { when: Date[]; counted: { n: number } };
    assert.equal(value.when[49]!.getTime(), 49);
    assert.ok(value.counted instanceof classes[7]!);
    assert.equal(value.counted.n, 7);
  });

  it('numbers, including the awkward ones', async () => {
    for (const n of [
      0,
      1,
      -1,
      1.5,
      -2.25,
      0.1,
      Math.PI,
      127,
      128,
      255,
      256,
      65535,
      65536,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 32,
      2 ** 40,
      -(2 ** 40),
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      2 ** 53 + 2,
      2 ** 64,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      Number.EPSILON,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
    ]) {
      const back = await roundTrip(n);
      assert.equal(typeof back, 'number', `${n} comes back as a number`);
      assert.ok(Object.is(back, n), `${n} comes back as ${back}`);
    }
  });

  it('strings and booleans', async () => {
    for (const s of [
      '',
      'a',
      'héllo wörld',
      '日本語',
      '🎉 emoji',
      '\u0000nul',
      'x'.repeat(100_000),
    ]) {
      await same(s);
    }
    await same(true);
    await same(false);
  });

  it('-0 keeps its sign', async () => {
    assert.ok(Object.is(await roundTrip(-0), -0));
    assert.ok(Object.is((await roundTrip([-0]))[0], -0));
  });

  it('strings with lone surrogates come back unchanged', async () => {
    // A JavaScript string is UTF-16 and may hold unpaired surrogates (structuredClone keeps them).
    for (const s of ['lone \ud800 high', 'lone \udc00 low', '\udbff']) {
      const back = await roundTrip(s);
      assert.equal(back, s, JSON.stringify(s));
    }
  });

  it('undefined and null stay distinct, as values and as properties', async () => {
    assert.equal(await roundTrip(undefined), undefined);
    assert.equal(await roundTrip(null), null);
    const back = await roundTrip({ u: undefined, n: null, nested: [undefined, null] });
    assert.ok(Object.hasOwn(back, 'u'), 'a property holding undefined is kept');
    assert.equal(back.u, undefined);
    assert.equal(back.n, null);
    assert.equal(back.nested[0], undefined);
    assert.equal(back.nested[1], null);
    assert.equal(back.nested.length, 2);
  });

  it('bigints, small and beyond 64 bits, stay bigints', async () => {
    for (const b of [
      0n,
      1n,
      -1n,
      127n,
      2n ** 32n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 63n,
      2n ** 64n - 1n,
      2n ** 64n,
      -(2n ** 64n),
      2n ** 100n + 7n,
      -(2n ** 200n),
      10n ** 40n,
    ]) {
      const back = await roundTrip(b);
      assert.equal(typeof back, 'bigint', `${b} comes back as a bigint, got ${typeof back}`);
      assert.equal(back, b);
    }
    const mixed = await roundTrip({ n: 5, b: 5n, list: [1n, 1] });
    assert.deepEqual(mixed, { n: 5, b: 5n, list: [1n, 1] });
  });

  it('Dates, to the millisecond, including before 1970 and invalid', async () => {
    for (const ms of [0, 1, 1234567890123, -1, -86_400_000 * 365 * 100, 8.64e15, -8.64e15]) {
      const back = await roundTrip(new Date(ms));
      assert.ok(back instanceof Date);
      assert.equal(back.getTime(), ms);
    }
    const invalid = await roundTrip(new Date(Number.NaN));
    assert.ok(invalid instanceof Date);
    assert.ok(Number.isNaN(invalid.getTime()));
  });

  it('Maps and Sets, with keys of every kind, keeping order', async () => {
    const map = new Map<unknown, unknown>([
      ['s', 1],
      [2, 'two'],
      [3n, 'big'],
      [true, null],
      [null, undefined],
      [undefined, 'undef key'],
      [new Date(7).getTime(), 'time'],
    ]);
    const back = await roundTrip(map);
    assert.ok(back instanceof Map);
    assert.deepEqual([...back], [...map]);
    const objectKeyed = await roundTrip(new Map([[{ k: 1 }, 'object key']]));
    assert.deepEqual(unview([...objectKeyed]), [[{ k: 1 }, 'object key']]);

    const set = new Set<unknown>(['a', 1, 2n, null, undefined, { o: 1 }, [1, 2]]);
    const setBack = await roundTrip(set);
    assert.ok(setBack instanceof Set);
    assert.deepEqual(unview([...setBack]), [...set]);
    await same(new Map());
    await same(new Set());
    await same(new Map([['nested', new Map([['deeper', new Set([1])]])]]));
  });

  it('arrays and plain objects, nested and sparse', async () => {
    await same([]);
    await same([1, 'two', [3, [4, [5]]], { six: 6 }]);
    await same({});
    await same({ a: { b: { c: { d: [1, { e: 'deep' }] } } } });
    await same({ 'key with spaces': 1, '': 2, '0': 3, '42': 4, ünïcode: 5, constructor: 6 });
    const big = Array.from({ length: 10_000 }, (_, i) => ({ i, s: String(i) }));
    await same(big);
    // A hole reads back as undefined (msgpack has no holes); the length is kept.
    // biome-ignore lint/suspicious/noSparseArray: a hole, on purpose
    const sparse = await roundTrip([1, , 3]);
    assert.equal(sparse.length, 3);
    assert.equal(sparse[1], undefined);
  });

  it('an own property named __proto__ is data, not a prototype', async () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}');
    assert.ok(Object.hasOwn(value, '__proto__'));
    const back = await roundTrip(value);
    assert.equal(Object.getPrototypeOf(back), Object.prototype, 'the prototype is untouched');
    assert.equal(({} as any).polluted, undefined);
    assert.ok(Object.hasOwn(back, '__proto__'), 'the property is kept as data');
    assert.deepEqual(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, { polluted: true });

    // Copied when assigned from one object to another, it is still data.
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('from', new Box(value));
    await db.commit();
    const other = new Box((db.root.get('from') as Box).value);
    db.root.set('to', other);
    await db.commit();
    const copied = ((await reopen(storage)).root.get('to') as Box).value;
    assert.equal(Object.getPrototypeOf(copied), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(copied, '__proto__')?.value, {
      polluted: true,
    });
  });

  it('attribute names of every kind come back as they were, as data', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const box = new Box();
    const shared = { n: 1 };
    const attributes: Record<string, unknown> = {
      '\uD800x': 'lone surrogate',
      '\u0000trove.class': 'codecRoundTrip.Money',
      ['__proto__']: 'data', // computed: an own property, not the prototype
      a: shared,
      b: shared,
    };
    for (const [key, value] of Object.entries(attributes)) {
      Object.defineProperty(box, key, {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    }
    db.root.set('box', box);
    await db.commit();
    const back = (await reopen(storage)).root.get('box') as any;
    assert.equal(Object.getPrototypeOf(back), Box.prototype);
    assert.deepEqual(Object.keys(back).sort(), ['value', ...Object.keys(attributes)].sort());
    for (const key of ['\uD800x', '\u0000trove.class', '__proto__']) {
      assert.equal(Object.getOwnPropertyDescriptor(back, key)?.value, attributes[key], key);
    }
    assert.equal(back.a, back.b);
  });

  it('objects with 65,536 keys and more, nested or as attributes', async () => {
    const wide: Record<string, number> = {};
    for (let i = 0; i < 70_000; i++) wide[`k${i}`] = i;
    const back = await roundTrip(wide);
    assert.equal(Object.keys(back).length, 70_000);
    assert.equal(back.k69999, 69_999);

    const storage = new MemoryStorage();
    const db = await open({ storage });
    const box = Object.assign(new Box(), wide);
    db.root.set('box', box);
    await db.commit();
    const loaded = (await reopen(storage)).root.get('box') as Box & Record<string, number>;
    assert.equal(Object.keys(loaded).length, 70_001);
    assert.equal(loaded.k12345, 12_345);
  });

  it('objects with a null prototype keep it, and their properties, alone or shared', async () => {
    const value = Object.assign(Object.create(null), { a: 1, b: [2] });
    const back = await roundTrip(value);
    assert.equal(Object.getPrototypeOf(back), null);
    assert.deepEqual({ ...back }, { a: 1, b: [2] });
    const [first, second] = await roundTrip([value, value]);
    assert.equal(first, second);
    assert.equal(Object.getPrototypeOf(first), null);
    assert.deepEqual({ ...first }, { a: 1, b: [2] });
  });

  it('an object with a key written as entries (__proto__) keeps its identity in a cycle', async () => {
    const node = JSON.parse('{"__proto__": "data", "name": "node"}');
    node.self = node;
    const back = await roundTrip(node);
    assert.equal(back.self, back);
    assert.equal(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, 'data');
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
  });

  it('a BrokenValue whose state has such keys is written back as it was read', async () => {
    for (const key of ['__proto__', '\u0000trove.class']) {
      const state = Object.defineProperty({ a: 1 }, key, {
        value: 'data',
        writable: true,
        enumerable: true,
        configurable: true,
      });
      const broken = new (BrokenValue as any)('codecRoundTrip.Gone', state) as BrokenValue;
      for (const back of [await roundTrip(broken), (await roundTrip([broken, broken]))[0]]) {
        assert.ok(back instanceof BrokenValue, key);
        assert.equal(back.className, 'codecRoundTrip.Gone');
        assert.deepEqual(Object.keys(back.state), ['a', key]);
        assert.equal(Object.getOwnPropertyDescriptor(back.state, key)?.value, 'data');
      }
    }
  });

  it('a value-class instance with such keys keeps its class and its keys, alone or shared', async () => {
    for (const key of ['__proto__', '\uD800', '\u0000trove.class']) {
      const money = new Money(5, 'EUR');
      // An array under the marker key must not read back as a stored error either.
      Object.defineProperty(money, key, {
        value: ['Error', null, 'Error', 0, 'x', null, null, null, {}],
        writable: true,
        enumerable: true,
        configurable: true,
      });
      for (const back of [await roundTrip(money), (await roundTrip([money, money]))[0]]) {
        assert.ok(back instanceof Money, key);
        assert.equal(back.format(), '5 EUR');
        assert.deepEqual(Object.keys(back), ['amount', 'currency', key]);
        assert.deepEqual(Object.getOwnPropertyDescriptor(back, key)?.value[4], 'x');
      }
    }
  });

  it('Uint8Array and Buffer, including views into larger buffers', async () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255]);
    const back = await roundTrip(bytes);
    assert.ok(back instanceof Uint8Array);
    assert.deepEqual([...back], [...bytes]);

    const buffer = Buffer.from('hello, buffer');
    const bufferBack = await roundTrip(buffer);
    assert.ok(bufferBack instanceof Uint8Array);
    assert.equal(Buffer.from(bufferBack).toString(), 'hello, buffer');

    const view = new Uint8Array(new Uint8Array([9, 8, 7, 6, 5, 4]).buffer, 2, 3);
    const viewBack = await roundTrip(view);
    assert.deepEqual([...viewBack], [7, 6, 5]);

    const empty = await roundTrip(new Uint8Array(0));
    assert.ok(empty instanceof Uint8Array);
    assert.equal(empty.length, 0);

    const large = new Uint8Array(1 << 20).map((_, i) => i % 251);
    const largeBack = await roundTrip(large);
    assert.equal(Buffer.compare(Buffer.from(largeBack), Buffer.from(large)), 0);
  });

  it('every other typed array keeps its type and contents; so does an ArrayBuffer', async () => {
    const arrays: ArrayBufferView[] = [
      new Int8Array([-128, 0, 127]),
      new Uint8ClampedArray([0, 128, 255]),
      new Int16Array([-32768, 1, 32767]),
      new Uint16Array([0, 65535]),
      new Int32Array([-(2 ** 31), 2 ** 31 - 1]),
      new Uint32Array([0, 2 ** 32 - 1]),
      new Float32Array([1.5, -0.25, Number.POSITIVE_INFINITY]),
      new Float64Array([Math.PI, Number.NaN, -0]),
      new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
      new BigUint64Array([0n, 2n ** 64n - 1n]),
    ];
    for (const array of arrays) {
      const back = await roundTrip(array);
      assert.equal(
        Object.getPrototypeOf(back),
        Object.getPrototypeOf(array),
        `${array.constructor.name} keeps its type`,
      );
      assert.deepEqual([...(back as any)], [...(array as any)]);
    }
    // A typed array that is a view at an odd offset into a larger buffer.
    const offset = new Int16Array(new ArrayBuffer(16), 2, 3);
    offset.set([1, -2, 3]);
    assert.deepEqual([...(await roundTrip(offset))], [1, -2, 3]);

    const buffer = new Uint8Array([1, 2, 3]).buffer;
    const bufferBack = await roundTrip(buffer);
    assert.ok(bufferBack instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(bufferBack)], [1, 2, 3]);
  });

  it('RegExps and Errors', async () => {
    const re = await roundTrip(/a+b/giu);
    assert.ok(re instanceof RegExp);
    assert.equal(re.source, 'a+b');
    assert.equal(re.flags, 'giu');
    const error = await roundTrip(new TypeError('bad thing'));
    assert.ok(error instanceof Error);
    assert.equal(error.message, 'bad thing');
  });

  it('shared values inside one record stay shared', async () => {
    const shared = { x: 1 };
    const list = [1, 2];
    const back = await roundTrip({ a: shared, b: shared, l1: list, l2: list, in: [shared] });
    assert.deepEqual(back.a, { x: 1 });
    assert.equal(back.a, back.b);
    assert.equal(back.in[0], back.a);
    assert.equal(back.l1, back.l2);

    const map = new Map([['k', shared]]);
    const withMap = await roundTrip({ map, again: shared, set: new Set([shared]) });
    assert.equal(withMap.map.get('k'), withMap.again);
    assert.equal([...withMap.set][0], withMap.again);

    const date = new Date(5);
    const dates = await roundTrip({ d1: date, d2: date });
    assert.equal(dates.d1.getTime(), 5);
    assert.equal(dates.d1, dates.d2);
  });

  it('cyclic values inside one record come back cyclic', async () => {
    const node: any = { name: 'node' };
    node.self = node;
    const back = await roundTrip(node);
    assert.equal(back.self, back);
    assert.equal(back.name, 'node');

    const a: any[] = [1];
    a.push(a);
    const arrayBack = await roundTrip(a);
    assert.equal(arrayBack[1], arrayBack);

    const ring: any = { name: 'a', next: { name: 'b', next: { name: 'c' } } };
    ring.next.next.next = ring;
    const ringBack = await roundTrip({ ring });
    assert.equal(ringBack.ring.next.next.next, ringBack.ring);

    const map = new Map<string, unknown>();
    map.set('me', map);
    const mapBack = await roundTrip(map);
    assert.equal(mapBack.get('me'), mapBack);
  });

  it('shared values stay shared also after a change and a second commit', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const shared = { n: 1 };
    const box = new Box({ a: shared, b: shared });
    db.root.set('box', box);
    await db.commit();
    box.value.a.n = 2; // through a view
    await db.commit();
    const back = ((await reopen(storage)).root.get('box') as Box).value;
    assert.equal(back.a, back.b);
    assert.equal(back.b.n, 2);
  });

  it('references to other persistent objects load as those objects', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const target = new Box('target');
    const holder = new Box({ ref: target, list: [target], map: new Map([['t', target]]) });
    db.root.set('holder', holder);
    db.root.set('target', target);
    await db.commit();
    const root = (await reopen(storage)).root;
    const value = (root.get('holder') as Box).value;
    const loaded = root.get('target') as Box;
    assert.ok(value.ref instanceof Box);
    assert.equal(value.ref, loaded);
    assert.equal(value.list[0], loaded);
    assert.equal(value.map.get('t'), loaded);
    assert.equal(loaded.value, 'target');
  });

  it('the record stores the oids it references', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const a = new Box('a');
    const b = new Box('b');
    const holder = new Box({ a, again: a, deep: [{ b }] });
    db.root.set('holder', holder);
    await db.commit();
    const refs = storage.load(oidOf(holder)!).refs;
    assert.deepEqual([...refs].sort(), [oidOf(a)!, oidOf(b)!].sort());
    assert.ok(storage.load(0).refs.includes(oidOf(holder)!));
  });

  it('registered value classes come back as instances of their class', async () => {
    const price = await roundTrip(new Money(9.99, 'EUR'));
    assert.ok(price instanceof Money);
    assert.equal(price.format(), '9.99 EUR');

    const period = await roundTrip(
      new Period(new Date(1), new Date(2), new Map([['x', new Set([1, 2])]]), new Money(1, 'USD')),
    );
    assert.ok(period instanceof Period);
    assert.equal(period.to.getTime(), 2);
    assert.deepEqual([...period.tags.get('x')!], [1, 2]);
    assert.ok(period.price instanceof Money);

    const list = await roundTrip([new Money(1, 'A'), { inside: new Money(2, 'B') }]);
    assert.ok(list[0] instanceof Money);
    assert.ok(list[1].inside instanceof Money);
    assert.equal(list[1].inside.amount, 2);
  });

  it('a value-class instance shared inside one record stays shared', async () => {
    const price = new Money(1, 'EUR');
    const back = await roundTrip({ a: price, b: price });
    assert.ok(back.a instanceof Money);
    assert.equal(back.a, back.b);
  });

  it('changes inside a value-class instance held by a persistent object are stored', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const box = new Box(new Money(1, 'EUR'));
    db.root.set('box', box);
    await db.commit();
    box.value = new Money(2, 'EUR');
    await db.commit();
    const back = ((await reopen(storage)).root.get('box') as Box).value;
    assert.ok(back instanceof Money);
    assert.equal(back.amount, 2);
  });
});
