/**
 * Errors stored as values: each comes back as an error of the same kind, with its message,
 * stack, cause, an AggregateError's errors and its own enumerable properties, whether the
 * record is a plain one, holds odd values, or holds shared and cyclic ones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { types } from 'node:util';
import {
  ConflictError,
  InvalidArgumentError,
  MemoryStorage,
  oidOf,
  open,
  Persistent,
  PersistentMap,
  registerClass,
} from 'trove';
import { reopen, twoHandles } from '../support/handles.js';

class Holder extends Persistent {
  value: any;
  constructor(value?: unknown) {
    super();
    this.value = value;
  }
}
registerClass(Holder, 'codecErrors.Holder');

class Note extends Persistent {
  constructor(public text: string) {
    super();
  }
}
registerClass(Note, 'codecErrors.Note');

class PaymentError extends Error {
  constructor(
    message: string,
    public readonly amount: number,
  ) {
    super(message);
  }
  override get name(): string {
    return 'PaymentError';
  }
  describeAmount(): string {
    return `${this.amount} due`;
  }
}
registerClass(PaymentError, 'codecErrors.PaymentError');

/** A registered class whose name is a getter that reads the error's own properties. */
class HttpError extends Error {
  constructor(
    message: string,
    public readonly status: number,
  ) {
    super(message);
  }
  override get name(): string {
    return `HttpError ${this.status}`;
  }
}
registerClass(HttpError, 'codecErrors.HttpError');

/** A subclass that is not registered: it comes back as the built-in class it extends. */
class UnregisteredError extends RangeError {
  override name = 'UnregisteredError';
}

/** Stores `value` in a new object, then returns it as read back by a fresh handle. */
async function roundTrip(value: unknown): Promise<any> {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  db.root.set('holder', new Holder(value));
  await db.commit();
  return ((await reopen(storage)).root.get('holder') as Holder).value;
}

/** The own properties of an error, each with its value and whether it is enumerable. */
function ownProperties(error: object): Record<string, [unknown, boolean]> {
  const out: Record<string, [unknown, boolean]> = {};
  for (const key of Object.getOwnPropertyNames(error).sort()) {
    const descriptor = Object.getOwnPropertyDescriptor(error, key)!;
    out[key] = [descriptor.value, descriptor.enumerable === true];
  }
  return out;
}

/** Checks that `back` is a real error of the same class and own properties as `error`. */
function assertSameError(back: unknown, error: Error): void {
  assert.ok(types.isNativeError(back), 'a real error, not an object that looks like one');
  assert.equal(Object.getPrototypeOf(back), Object.getPrototypeOf(error));
  assert.deepEqual(ownProperties(back as Error), ownProperties(error));
}

describe('errors as stored values', () => {
  it('keep message, stack, cause and own properties such as code', async () => {
    const error = Object.assign(new Error('disk full', { cause: { free: 0 } }), {
      code: 'ENOSPC',
      errno: -28,
    });
    const back = await roundTrip(error);
    assertSameError(back, error);
    assert.equal(back.stack, error.stack, 'the stack of where it was made, not of the loader');
    assert.equal(back.code, 'ENOSPC');
    assert.deepEqual(back.cause, { free: 0 });
  });

  it('keep their built-in class; an error made without a message has none of its own', async () => {
    for (const error of [
      new TypeError('t'),
      new RangeError('r'),
      new ReferenceError('ref'),
      new SyntaxError('s'),
      new EvalError('e'),
      new URIError('u'),
      new Error(),
    ]) {
      assertSameError(await roundTrip(error), error);
    }
    assert.equal(Object.hasOwn(await roundTrip(new Error()), 'message'), false);
    const bare = new AggregateError([1], 'errors taken away');
    delete (bare as { errors?: unknown }).errors;
    assertSameError(await roundTrip(bare), bare);
    const stackless = new Error('no stack');
    delete stackless.stack;
    assertSameError(await roundTrip(stackless), stackless);
  });

  it('an AggregateError keeps its message and its errors', async () => {
    const error = new AggregateError([new TypeError('first'), 'second'], 'both failed');
    const back = await roundTrip(error);
    assertSameError(back, error);
    assert.equal(back.message, 'both failed');
    assert.equal(back.errors.length, 2);
    assertSameError(back.errors[0], error.errors[0]);
    assert.equal(back.errors[1], 'second');
  });

  it('a registered subclass comes back as its class; an unregistered one as its built-in class', async () => {
    const payment = new PaymentError('card declined', 12);
    const back = await roundTrip(payment);
    assert.ok(back instanceof PaymentError);
    assert.equal(back.name, 'PaymentError');
    assert.equal(back.describeAmount(), '12 due');
    assertSameError(back, payment);

    const other = new UnregisteredError('out of range');
    const otherBack = await roundTrip(other);
    assert.ok(types.isNativeError(otherBack));
    assert.equal(Object.getPrototypeOf(otherBack), RangeError.prototype);
    assert.equal(otherBack.name, 'UnregisteredError');
    assert.equal(otherBack.message, 'out of range');
    assert.equal(otherBack.stack, other.stack);
  });

  it('a registered class that is not an error (the name now names another class) is not given to an error', async () => {
    // The constructor of a stored error is looked up by name when it is read; as if the name
    // had been given to a value class since, this error names one.
    class Point {
      x = 0;
    }
    registerClass(Point, 'codecErrors.Point');
    const error = new Error('odd');
    Object.defineProperty(error, 'constructor', { value: Point });
    const back = await roundTrip(error);
    assert.ok(types.isNativeError(back));
    assert.equal(Object.getPrototypeOf(back), Error.prototype);
    assert.equal(back.message, 'odd');
  });

  it("a registered class's getters run on the loaded error once its properties are there", async () => {
    const error = new HttpError('not found', 404);
    const back = await roundTrip(error);
    assert.ok(back instanceof HttpError);
    assert.equal(back.name, 'HttpError 404');
    assert.equal(Object.hasOwn(back, 'name'), false, 'the name is the class getter, not a copy');
    assertSameError(back, error);
    // A registered class whose getters refuse an object they did not make (a brand check).
    registerClass(DOMException, 'codecErrors.DOMException');
    const aborted = await roundTrip(new DOMException('stopped', 'AbortError'));
    assert.ok(aborted instanceof DOMException);
    assert.equal(aborted.message, 'stopped');
    assert.equal(Object.getOwnPropertyDescriptor(aborted, 'name')?.value, 'AbortError');
    const [first, second] = await roundTrip([error, error]); // shared: record kind 3
    assert.equal(first, second);
    assert.equal(first.name, 'HttpError 404');
  });

  it('nested values read from a persistent object are stored as values; the error is left as it was', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set(
      'source',
      new Holder({ list: [1, 2], lookup: new Map([['k', 1]]), when: new Date(5) }),
    );
    await db.commit();
    const source = (db.root.get('source') as Holder).value;
    const error = Object.freeze(
      Object.assign(new Error('with views', { cause: source.lookup }), {
        list: source.list,
        when: source.when,
      }),
    );
    db.root.set('holder', new Holder(error));
    await db.commit();
    assert.equal(error.list, source.list, 'the frozen error still holds what it held');
    const back = ((await reopen(storage)).root.get('holder') as Holder).value;
    assert.deepEqual([...back.cause], [['k', 1]]);
    assert.ok(back.cause instanceof Map);
    assert.deepEqual(back.list, [1, 2]);
    assert.equal(back.when.getTime(), 5);
  });

  it('a name or message that only the class gives is kept when the class is not registered', async () => {
    class Quiet extends Error {}
    Object.defineProperty(Quiet.prototype, 'name', { value: 'Quiet' });
    Object.defineProperty(Quiet.prototype, 'message', { value: 'from the prototype' });
    const back = await roundTrip(new Quiet());
    assert.equal(Object.getPrototypeOf(back), Error.prototype);
    assert.equal(back.name, 'Quiet');
    assert.equal(back.message, 'from the prototype');
  });

  it('odd values inside an error are kept exactly', async () => {
    const error = Object.assign(new Error('lone \uD800 surrogate'), {
      zero: -0,
      big: 2n ** 70n,
      when: new Date(7),
    });
    Object.defineProperty(error, '__proto__', {
      value: 'data',
      writable: true,
      enumerable: true,
      configurable: true,
    });
    const back = await roundTrip(error);
    const onlyMessage = await roundTrip(new Error('lone \uDC00'));
    assert.equal(onlyMessage.message, 'lone \uDC00');
    assert.equal(back.message, 'lone \uD800 surrogate');
    assert.ok(Object.is(back.zero, -0));
    assert.equal(back.big, 2n ** 70n);
    assert.equal(back.when.getTime(), 7);
    assert.equal(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, 'data');
    assert.equal(Object.getPrototypeOf(back), Error.prototype);
  });

  it('an error shared inside one record stays one error; so does one in a cycle', async () => {
    const shared = new TypeError('shared');
    const back = await roundTrip({ a: shared, b: [shared], m: new Map([[shared, 1]]) });
    assert.equal(back.a, back.b[0]);
    assert.equal([...back.m.keys()][0], back.a);
    assertSameError(back.a, shared);

    const selfCaused: Error = new Error('loop');
    selfCaused.cause = selfCaused;
    const loop = await roundTrip(selfCaused);
    assert.ok(types.isNativeError(loop));
    assert.equal(loop.cause, loop);

    const wrapper: any = { name: 'wrapper' };
    const inner = Object.assign(new Error('inner'), { owner: wrapper });
    wrapper.error = inner;
    const ring = await roundTrip(wrapper);
    assert.ok(types.isNativeError(ring.error));
    // Values inside an error are handed out as they are, not as views: compare raw with raw.
    assert.equal(ring.error.owner.error, ring.error);
    assert.equal(ring.error.owner.name, 'wrapper');
    assert.equal(ring.error.message, 'inner');
  });

  it('a persistent object as cause or property is stored and loads as that object', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const cause = new Note('the cause');
    const note = new Note('see here');
    db.root.set(
      'holder',
      new Holder([new Error('x', { cause }), Object.assign(new Error('y'), { note })]),
    );
    await db.commit();
    const [first, second] = ((await reopen(storage)).root.get('holder') as Holder).value;
    assert.ok(first.cause instanceof Note);
    assert.equal(first.cause.text, 'the cause');
    assert.ok(second.note instanceof Note);
    assert.equal(second.note.text, 'see here');
  });

  it('a value that cannot be stored inside an error fails the commit with its path; nothing is written', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const before = storage.lastTid();
    db.root.set('holder', new Holder(Object.assign(new Error('x'), { retry: () => {} })));
    await assert.rejects(db.commit(), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.equal(error.code, 'TROVE_INVALID_ARGUMENT');
      assert.match(String((error as InvalidArgumentError & { path?: string }).path), /retry$/);
      return true;
    });
    assert.equal(storage.lastTid(), before);
  });

  it('an error written the way msgpackr writes one (type 0x65) still reads', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const holder = new Holder('replaced below');
    db.root.set('holder', holder);
    await db.commit();
    const oid = oidOf(holder)!;
    const text = (value: string): number[] => [0xa0 + value.length, ...Buffer.from(value)];
    // [1, 'codecErrors.Holder', { value: <ext 0x65: ['TypeError', 'old', nil]> }]
    const record = Uint8Array.from([
      0x93,
      0x01,
      ...text('codecErrors.Holder'),
      0x81,
      ...text('value'),
      ...[0xd4, 0x65, 0x00, 0x93],
      ...text('TypeError'),
      ...text('old'),
      0xc0,
    ]);
    await storage.commit({
      baseTid: storage.lastTid(),
      writes: [{ oid, data: record, refs: [], expectedTid: storage.load(oid).tid }],
    });
    const back = ((await reopen(storage)).root.get('holder') as Holder).value;
    assert.ok(back instanceof TypeError);
    assert.equal(back.message, 'old');
  });

  it('two errors that differ only in their stack are different changes', async () => {
    const { db, db2 } = await twoHandles();
    db.root.set('m', new PersistentMap([['k', 0]]));
    await db.commit();
    db2.abort();
    const made = () => new Error('failed');
    (db.root.get('m') as PersistentMap).set('k', made());
    (db2.root.get('m') as PersistentMap).set('k', (() => new Error('failed'))());
    await db.commit();
    await assert.rejects(db2.commit(), ConflictError);
  });

  it('two AggregateErrors that differ only in their errors are different changes', async () => {
    const { db, db2 } = await twoHandles();
    db.root.set('m', new PersistentMap([['k', 0]]));
    await db.commit();
    db2.abort();
    (db.root.get('m') as PersistentMap).set('k', new AggregateError([1], 'failed'));
    (db2.root.get('m') as PersistentMap).set('k', new AggregateError([2], 'failed'));
    await db.commit();
    await assert.rejects(db2.commit(), ConflictError);
  });
});
