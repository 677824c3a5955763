/**
 * Property-based tests of the record codec through the public API: any value trove can store,
 * held in an attribute of a persistent object, committed and read back through a fresh
 * handle, comes back equal (same types, same contents, same sharing and cycles). Values that
 * cannot be stored (functions, symbols, instances of unregistered classes, at any depth) fail
 * the commit with InvalidArgumentError whose `path` points at them, and nothing is written.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { types } from 'node:util';
import fc from 'fast-check';
import {
  type Database,
  InvalidArgumentError,
  MemoryStorage,
  open,
  Persistent,
  registerClass,
} from 'trove';

class Holder extends Persistent {
  [key: string]: unknown;
}
registerClass(Holder, 'test.properties.codec.Holder');

/** A registered value class: stored by value, with its class. */
class Point {
  [key: string]: unknown;
  constructor(
    public x: unknown,
    public y: unknown,
  ) {}
}
registerClass(Point, 'test.properties.codec.Point');

class Unregistered {
  constructor(public v = 1) {}
}
class UnregisteredPersistent extends Persistent {}

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 200);

// ---- comparing what was read with what was written ---------------------------------------

function bytesOf(view: ArrayBufferView | ArrayBuffer): number[] {
  return ArrayBuffer.isView(view)
    ? [...new Uint8Array(view.buffer, view.byteOffset, view.byteLength)]
    : [...new Uint8Array(view)];
}

const TOKEN = Symbol('test.identity');
let tokens = 0;

/**
 * The identity of a value read through a writable handle. Nested values come back as
 * change-tracking views, but some (Map keys, the insides of value-class instances) come back
 * raw, so the same stored object can show as two JavaScript objects; a token written on it
 * (through the view or not, it lands on the stored object) tells which stored object it is.
 * The handle is never committed.
 */
function tokenOf(obj: object): unknown {
  const holder = obj as { [TOKEN]?: number };
  if (holder[TOKEN] === undefined) holder[TOKEN] = ++tokens;
  return holder[TOKEN];
}

/**
 * Asserts that `actual` (read back through a handle, so nested values may be change-tracking
 * views) is the stored form of `expected`: same types, same contents (numbers by Object.is),
 * same order of keys and entries. With `identity`, also the same sharing: two places hold
 * one object in `actual` exactly when they do in `expected`; without it, cycles are only
 * followed once.
 */
function assertStoredEqual(
  actual: unknown,
  expected: unknown,
  identity?: (obj: object) => unknown,
): void {
  const forward = new Map<object, unknown>();
  const backward = new Map<unknown, object>();
  const compare = (a: unknown, e: unknown, path: string): void => {
    if (typeof e !== 'object' || e === null) {
      assert.equal(typeof a, typeof e, `type at ${path}`);
      assert.ok(Object.is(a, e), `value at ${path}: ${String(a)} !== ${String(e)}`);
      return;
    }
    assert.ok(typeof a === 'object' && a !== null, `an object at ${path}`);
    const id = identity?.(a);
    if (forward.has(e)) {
      if (identity) assert.equal(id, forward.get(e), `the same object at ${path} as elsewhere`);
      return;
    }
    if (identity) {
      assert.ok(!backward.has(id), `a distinct object at ${path} (shared in what was read)`);
      backward.set(id, e);
    }
    forward.set(e, id);
    const proto = Object.getPrototypeOf(e);
    assert.equal(Object.getPrototypeOf(a), proto, `prototype at ${path}`);
    if (e instanceof Date) {
      assert.ok(Object.is((a as Date).getTime(), e.getTime()), `date at ${path}`);
    } else if (e instanceof RegExp) {
      assert.equal((a as RegExp).source, e.source, `regexp at ${path}`);
      assert.equal((a as RegExp).flags, e.flags, `regexp flags at ${path}`);
    } else if (ArrayBuffer.isView(e) && !(e instanceof DataView)) {
      const x = a as unknown as ArrayLike<unknown>;
      const y = e as unknown as ArrayLike<unknown>;
      assert.equal(x.length, y.length, `length at ${path}`);
      for (let i = 0; i < y.length; i++) {
        assert.ok(Object.is(x[i], y[i]), `item ${i} at ${path}: ${x[i]} !== ${y[i]}`);
      }
    } else if (e instanceof DataView || e instanceof ArrayBuffer) {
      assert.deepEqual(bytesOf(a as ArrayBuffer), bytesOf(e), `bytes at ${path}`);
    } else if (Array.isArray(e)) {
      assert.ok(Array.isArray(a), `an array at ${path}`);
      assert.equal((a as unknown[]).length, e.length, `length at ${path}`);
      e.forEach((item, i) => {
        compare((a as unknown[])[i], item, `${path}[${i}]`);
      });
    } else if (e instanceof Map) {
      const got = [...(a as Map<unknown, unknown>)];
      const want = [...e];
      assert.equal(got.length, want.length, `size at ${path}`);
      want.forEach(([key, value], i) => {
        compare(got[i]![0], key, `${path}<key ${i}>`);
        compare(got[i]![1], value, `${path}<value ${i}>`);
      });
    } else if (e instanceof Set) {
      const got = [...(a as Set<unknown>)];
      const want = [...e];
      assert.equal(got.length, want.length, `size at ${path}`);
      want.forEach((item, i) => {
        compare(got[i], item, `${path}<item ${i}>`);
      });
    } else {
      if (e instanceof Error) {
        const error = a as Error;
        assert.ok(types.isNativeError(error), `a real error at ${path}`);
        assert.equal(error.name, e.name, `error name at ${path}`);
        assert.equal(error.stack, e.stack, `error stack at ${path}`);
        compare(error.message, e.message, `${path}.message`);
        for (const part of ['cause', 'errors'] as const) {
          assert.equal(Object.hasOwn(error, part), Object.hasOwn(e, part), `${part} at ${path}`);
          if (Object.hasOwn(e, part)) {
            compare(
              (error as AggregateError)[part],
              (e as AggregateError)[part],
              `${path}.${part}`,
            );
          }
        }
      } else {
        assert.ok(
          proto === Object.prototype || proto === null || proto === Point.prototype,
          `storable at ${path}`,
        );
      }
      assert.deepEqual(Object.keys(a), Object.keys(e), `keys at ${path}`);
      for (const key of Object.keys(e)) {
        compare(
          (a as Record<string, unknown>)[key],
          (e as Record<string, unknown>)[key],
          `${path}.${key}`,
        );
      }
    }
  };
  compare(actual, expected, 'value');
}

// ---- storable values -------------------------------------------------------------------------

// -0 is left out here: trove stores it as 0 (see the regression test below).
const numberArb = fc.oneof(
  fc.integer(),
  fc.double().map((x) => (Object.is(x, -0) ? 0 : x)),
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 32,
    2 ** 53,
    2 ** 63,
    -(2 ** 63),
    2 ** 64,
    0.1,
  ),
);

const bigintArb = fc.oneof(
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
  fc.bigInt({ min: -(2n ** 4000n), max: 2n ** 4000n }),
  fc.constantFrom(
    0n,
    -1n,
    2n ** 63n - 1n,
    2n ** 63n,
    -(2n ** 63n),
    -(2n ** 63n) - 1n,
    2n ** 64n - 1n,
  ),
);

// Well-formed strings only here: a lone surrogate does not survive (see the regression test).
const stringArb = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', maxLength: 5 }),
);

const typedArrayArb: fc.Arbitrary<object> = fc.oneof(
  fc.uint8Array(),
  fc.uint8Array().map((a) => Buffer.from(a)),
  fc.uint8Array({ minLength: 2 }).map((a) => a.subarray(1)),
  fc.int8Array(),
  fc.uint8ClampedArray(),
  fc.int16Array(),
  fc.uint16Array(),
  fc.int32Array(),
  fc.uint32Array(),
  fc.float32Array(),
  fc.float64Array(),
  fc.bigInt64Array(),
  fc.bigUint64Array(),
  fc.uint8Array().map((a) => new DataView(a.buffer)),
  fc.uint8Array().map((a) => a.buffer),
);

const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, undefined, true, false),
  numberArb,
  stringArb,
  bigintArb,
  fc.date({ noInvalidDate: false }),
  typedArrayArb,
  fc
    .tuple(fc.constantFrom('a+b', '^x$', '\\d{2,}', ''), fc.constantFrom('', 'g', 'i', 'gimsuy'))
    .map(([source, flags]) => new RegExp(source, flags)),
);

/** Object keys: any string, and awkward ones (kept as data, never as a prototype or marker). */
const keyArb = fc.oneof(
  fc.string(),
  fc.constantFrom(
    '__proto__',
    '\u0000trove.class',
    'lone \uD800 surrogate',
    'constructor',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'then',
    'length',
    '',
    '0',
    '1',
    '-1',
    '1.5',
    'a.b',
    'with space',
  ),
);

/** Keys of an error's own properties: not those the error has or reads from its class. */
const errorKeyArb = keyArb.filter(
  (key) => !['message', 'stack', 'cause', 'errors', 'name', 'constructor'].includes(key),
);

/** Defines an own data property the way an assignment would (`__proto__` included). */
function defineOwn(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

function objectOf(
  entries: Array<[string, unknown]>,
  nullPrototype = false,
): Record<string, unknown> {
  const obj: Record<string, unknown> = nullPrototype ? Object.create(null) : {};
  for (const [key, value] of entries) defineOwn(obj, key, value);
  return obj;
}

const { value: storableTreeArb } = fc.letrec<{
  value: unknown;
  array: unknown[];
  object: Record<string, unknown>;
  map: Map<unknown, unknown>;
  set: Set<unknown>;
  point: Point;
  error: Error;
}>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    tie('array'),
    tie('object'),
    tie('map'),
    tie('set'),
    tie('point'),
    tie('error'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc
    .tuple(fc.array(fc.tuple(keyArb, tie('value')), { maxLength: 4 }), fc.boolean())
    .map(([entries, nullPrototype]) => objectOf(entries, nullPrototype)),
  map: fc
    .array(
      fc.tuple(
        fc.oneof(
          stringArb,
          numberArb,
          bigintArb,
          fc.constantFrom(null, undefined, true),
          tie('value'),
        ),
        tie('value'),
      ),
      { maxLength: 4 },
    )
    .map((entries) => new Map(entries)),
  set: fc.array(tie('value'), { maxLength: 4 }).map((items) => new Set(items)),
  point: fc.tuple(tie('value'), tie('value')).map(([x, y]) => new Point(x, y)),
  error: fc
    .record({
      kind: fc.constantFrom<ErrorKind>('Error', 'TypeError', 'RangeError', 'AggregateError'),
      message: stringArb,
      cause: fc.option(fc.tuple(tie('value')), { nil: undefined }),
      errors: fc.array(tie('value'), { maxLength: 2 }),
      properties: fc.array(fc.tuple(errorKeyArb, tie('value')), { maxLength: 2 }),
    })
    .map(({ kind, message, cause, errors, properties }) => {
      const error = makeError(kind, message, cause, errors);
      for (const [key, value] of properties) defineOwn(error, key, value);
      return error;
    }),
}));

type ErrorKind = 'Error' | 'TypeError' | 'RangeError' | 'AggregateError';

/** An error of `kind`; `cause` is a one-tuple when there is one (undefined is a cause too). */
function makeError(
  kind: ErrorKind,
  message: string,
  cause: [unknown] | undefined,
  errors: unknown[],
): Error {
  const options = cause === undefined ? undefined : { cause: cause[0] };
  if (kind === 'AggregateError') return new AggregateError(errors, message, options);
  return new { Error, TypeError, RangeError }[kind](message, options);
}

function isContainer(value: unknown): value is object {
  return (
    Array.isArray(value) ||
    value instanceof Map ||
    value instanceof Set ||
    value instanceof Point ||
    value instanceof Error ||
    (typeof value === 'object' &&
      value !== null &&
      (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null))
  );
}

/** A copy of the containers of a generated tree (leaf objects are shared, never changed). */
function cloneTree(value: unknown): unknown {
  if (!isContainer(value)) return value;
  if (Array.isArray(value)) return value.map(cloneTree);
  if (value instanceof Map) {
    return new Map([...value].map(([k, v]) => [cloneTree(k), cloneTree(v)]));
  }
  if (value instanceof Set) return new Set([...value].map(cloneTree));
  if (value instanceof Point) {
    const point = new Point(undefined, undefined);
    for (const key of Object.keys(value)) point[key] = cloneTree(value[key]);
    return point;
  }
  if (value instanceof Error) {
    const error = makeError(
      Object.getPrototypeOf(value).constructor.name as ErrorKind,
      value.message,
      Object.hasOwn(value, 'cause') ? [cloneTree(value.cause)] : undefined,
      value instanceof AggregateError ? value.errors.map(cloneTree) : [],
    );
    // The copy is the error the test stores: it keeps the original's stack to compare.
    Object.defineProperty(error, 'stack', {
      value: value.stack,
      writable: true,
      configurable: true,
    });
    for (const key of Object.keys(value)) {
      defineOwn(error, key, cloneTree((value as unknown as Record<string, unknown>)[key]));
    }
    return error;
  }
  return objectOf(
    Object.entries(value).map(([k, v]) => [k, cloneTree(v)]),
    Object.getPrototypeOf(value) === null,
  );
}

/** Every object of a tree, containers first-seen order. */
function objectsOf(root: unknown): { containers: object[]; all: object[] } {
  const containers: object[] = [];
  const all: object[] = [];
  const seen = new Set<object>();
  const walk = (value: unknown) => {
    if (typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    all.push(value);
    if (!isContainer(value)) return;
    containers.push(value);
    if (value instanceof Map) {
      for (const [k, v] of value) {
        walk(k);
        walk(v);
      }
    } else if (value instanceof Set) value.forEach(walk);
    else {
      if (value instanceof Error) {
        if (Object.hasOwn(value, 'cause')) walk(value.cause);
        if (value instanceof AggregateError) value.errors.forEach(walk);
      }
      Object.values(value).forEach(walk);
    }
  };
  walk(root);
  return { containers, all };
}

/** Whether `to` is `from` or inside it. */
function reaches(from: object, to: object): boolean {
  return objectsOf(from).all.includes(to);
}

/**
 * Storable values, shared and cyclic ones included: a generated tree with links added from
 * some of its containers to other objects of it (its ancestors make cycles).
 */
const storableArb: fc.Arbitrary<unknown> = fc
  .tuple(
    fc.oneof(storableTreeArb, fc.array(storableTreeArb, { minLength: 1, maxLength: 3 })),
    fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
  )
  .map(([tree, links]) => {
    const root = cloneTree(tree);
    const { containers, all } = objectsOf(root);
    if (containers.length === 0) return root;
    links.forEach(([from, to], i) => {
      const container = containers[from % containers.length]!;
      const target = all[to % all.length]!;
      // A value-class instance reachable from its own properties loses its class
      // (regression test below); the property leaves out links that would make one.
      const inCycle = (o: object) => o instanceof Point && reaches(o, container);
      if (reaches(target, container) && objectsOf(target).all.some(inCycle)) return;
      const key = `@link${i}`;
      if (Array.isArray(container)) container.push(target);
      else if (container instanceof Map) container.set(key, target);
      else if (container instanceof Set) container.add(target);
      else defineOwn(container, key, target);
    });
    return root;
  });

// ---- the database ------------------------------------------------------------------------

/** A database of its own for each test, so that no test sees another's pending changes. */
interface Store {
  readonly storage: MemoryStorage;
  readonly db: Database;
}

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  try {
    await fn({ storage, db });
  } finally {
    await db.close();
  }
}

let counter = 0;

/** Stores `value` as an attribute, commits, and reads it back through a new handle. */
async function roundTrip({ storage, db }: Store, value: unknown): Promise<unknown> {
  const holder = new Holder();
  holder.value = value;
  const key = `h${counter++}`;
  db.root.set(key, holder);
  try {
    await db.commit();
  } catch (error) {
    db.abort(); // so that one failure does not fail the commits after it
    throw error;
  }
  const fresh = await open({ storage });
  const read = fresh.root.get(key) as Holder;
  assert.deepEqual(Object.keys(read), ['value']);
  return read.value;
}

describe('codec round trip (fast-check)', () => {
  it('any storable value reads back equal through a fresh handle', () =>
    withStore(async (store) => {
      await fc.assert(
        fc.asyncProperty(storableArb, async (value) => {
          assertStoredEqual(await roundTrip(store, value), value, tokenOf);
        }),
        { numRuns: NUM_RUNS, includeErrorInReport: true },
      );
    }));

  it('a value reads back equal through db.read and through the writing handle', () =>
    withStore(async (store) => {
      const { db } = store;
      await fc.assert(
        fc.asyncProperty(storableArb, async (value) => {
          const holder = new Holder();
          holder.value = value;
          const key = `h${counter++}`;
          db.root.set(key, holder);
          await db.commit();
          const read = await db.read((tx) => {
            const copy = (tx.root.get(key) as Holder).value;
            assertStoredEqual(copy, value);
            return true;
          });
          assert.equal(read, true);
          // The writing handle, after its commit, still shows what it stored.
          assertStoredEqual((db.root.get(key) as Holder).value, value);
        }),
        { numRuns: Math.ceil(NUM_RUNS / 2), includeErrorInReport: true },
      );
    }));
});

// ---- values that cannot be stored --------------------------------------------------------

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A path segment as trove writes it in error messages. */
function segment(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

type BadKind =
  | 'function'
  | 'arrow'
  | 'class'
  | 'async'
  | 'generator'
  | 'bound'
  | 'symbol'
  | 'wellKnownSymbol'
  | 'registeredSymbol'
  | 'unregistered'
  | 'anonymousClass'
  | 'weakMap'
  | 'promise'
  | 'objectCreate'
  | 'symbolKey'
  | 'unregisteredPersistent';

function badValue(kind: BadKind): unknown {
  switch (kind) {
    case 'function':
      return function named() {
        return 1;
      };
    case 'arrow':
      return () => 1;
    case 'class':
      return class Foo {};
    case 'async':
      return async () => 1;
    case 'generator':
      return function* gen() {
        yield 1;
      };
    case 'bound':
      return Math.max.bind(null);
    case 'symbol':
      return Symbol('x');
    case 'wellKnownSymbol':
      return Symbol.iterator;
    case 'registeredSymbol':
      return Symbol.for('trove.test');
    case 'unregistered':
      return new Unregistered();
    case 'anonymousClass':
      return new (class {})();
    case 'weakMap':
      return new WeakMap();
    case 'promise':
      return Promise.resolve(1);
    case 'objectCreate':
      return Object.create({ inherited: 1 });
    case 'symbolKey':
      return { ok: 1, [Symbol('k')]: 2 };
    case 'unregisteredPersistent':
      return new UnregisteredPersistent();
  }
}

const badKindArb = fc.constantFrom<BadKind>(
  'function',
  'arrow',
  'class',
  'async',
  'generator',
  'bound',
  'symbol',
  'wellKnownSymbol',
  'registeredSymbol',
  'unregistered',
  'anonymousClass',
  'weakMap',
  'promise',
  'objectCreate',
  'symbolKey',
  'unregisteredPersistent',
);

interface Placed {
  value: unknown;
  /** The path below the attribute, as trove writes it. */
  path: string;
  /** True when the bad value is a Map key (the path then names the key only roughly). */
  asKey: boolean;
}

/**
 * Puts `bad` into a copy of `tree` (an array or plain object) somewhere below: `choices`
 * says which child to descend into at each level; it is put into the container where the
 * descent stops.
 */
function place(tree: unknown, choices: number[], bad: unknown, newKey: string, asKey: boolean) {
  const root = cloneTree(tree);
  let container = root as object;
  let path = '';
  for (const choice of choices) {
    const children: Array<[string | number, unknown]> = [];
    if (Array.isArray(container)) {
      container.forEach((v, i) => {
        children.push([i, v]);
      });
    } else if (container instanceof Map) {
      for (const [k, v] of container) {
        if (typeof k === 'string' || typeof k === 'number') children.push([k, v]);
      }
    } else if (container instanceof Set) {
      [...container].forEach((v, i) => {
        children.push([i, v]);
      });
    } else {
      for (const key of Object.keys(container)) {
        children.push([key, (container as Record<string, unknown>)[key]]);
      }
    }
    const next = children.filter(([, v]) => isContainer(v));
    if (next.length === 0) break;
    const [key, child] = next[choice % next.length]!;
    path += segment(key);
    container = child as object;
  }
  let keyUsed = false;
  if (Array.isArray(container)) {
    path += segment(container.length);
    container.push(bad);
  } else if (container instanceof Map) {
    if (asKey) {
      container.set(bad, 1);
      keyUsed = true;
    } else {
      path += segment(newKey);
      container.set(newKey, bad);
    }
  } else if (container instanceof Set) {
    path += segment(container.size);
    container.add(bad);
  } else {
    path += segment(newKey);
    (container as Record<string, unknown>)[newKey] = bad;
  }
  return { value: root, path, asKey: keyUsed } satisfies Placed;
}

const badPlacementArb = fc
  .tuple(
    fc.oneof(storableTreeArb.filter(isContainer), fc.array(storableTreeArb, { maxLength: 3 })),
    fc.array(fc.nat(), { maxLength: 6 }),
    badKindArb,
    fc.constantFrom('bad', 'bad key', '1x', 'ok'),
    fc.boolean(),
  )
  .map(([tree, choices, kind, newKey, asKey]) => ({
    kind,
    // An unregistered persistent object as a Map key has a path bug of its own (regression
    // test below); here such objects go in as values only.
    placed: place(
      tree,
      choices,
      badValue(kind),
      newKey,
      asKey && kind !== 'unregisteredPersistent',
    ),
  }));

describe('values that cannot be stored (fast-check)', () => {
  it('fail the commit with InvalidArgumentError and the path to them; nothing is written', () =>
    withStore(async (store) => {
      const { storage, db } = store;
      await fc.assert(
        fc.asyncProperty(badPlacementArb, async ({ placed }) => {
          const holder = new Holder();
          holder.value = placed.value;
          const key = `bad${counter++}`;
          db.root.set(key, holder);
          const lastTid = storage.lastTid();
          const commits = storage.stats().commits;
          const expected = `root.${key}.value${placed.path}`;
          try {
            await assert.rejects(db.commit(), (error: unknown) => {
              assert.ok(error instanceof InvalidArgumentError, String(error));
              assert.equal(error.code, 'TROVE_INVALID_ARGUMENT');
              if (placed.asKey) {
                assert.ok(
                  error.path?.startsWith(`${expected}[`),
                  `path ${error.path} names a key of ${expected}`,
                );
              } else assert.equal(error.path, expected);
              assert.ok(error.message.includes(error.path!), 'the message gives the path');
              return true;
            });
            assert.equal(storage.lastTid(), lastTid, 'nothing was written');
            assert.equal(storage.stats().commits, commits);
            // The change is still pending; abort drops it, and nothing of it was stored.
            assert.ok(db.root.get(key) === holder, 'the change is still pending');
          } finally {
            db.abort();
          }
          assert.equal(db.root.has(key), false);
          const fresh = await open({ storage });
          assert.equal(fresh.root.has(key), false);
        }),
        { numRuns: NUM_RUNS, includeErrorInReport: true },
      );
    }));
});

// ---- regressions: counterexamples found by the properties -----------------------------------

describe('codec regressions', () => {
  it('stores -0 as -0 (Object.is(read, -0))', () =>
    withStore(async (store) => {
      const read = (await roundTrip(store, { n: -0, list: [-0], map: new Map([['k', -0]]) })) as {
        n: number;
        list: number[];
        map: Map<string, number>;
      };
      assert.ok(Object.is(read.n, -0), `attribute: got ${read.n}`);
      assert.ok(Object.is(read.list[0], -0), 'array item');
      assert.ok(Object.is(read.map.get('k'), -0), 'map value');
    }));

  it('a value-class instance in a cycle through itself keeps its class', () =>
    withStore(async (store) => {
      // Found by the property: [new Map([[0n, p]])] with p = new Point([], null), p['@link0'] = p.
      const p = new Point(1, 2);
      p.self = p;
      const read = (await roundTrip(store, [p])) as Point[];
      assert.equal(Object.getPrototypeOf(read[0]), Point.prototype, 'the instance is a Point');
      assert.ok(read[0]!.self === read[0], 'the cycle is kept');
      const q = new Point(1, 2);
      q.inner = { back: q };
      const again = (await roundTrip(store, q)) as Point;
      assert.ok(again instanceof Point, 'an indirect cycle keeps the class too');
      assert.ok((again.inner as { back: unknown }).back === again, 'the cycle is kept');
    }));

  it('keeps an own property named __proto__ (not renamed, not a prototype)', () =>
    withStore(async (store) => {
      const value = JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as Record<string, unknown>;
      assert.ok(Object.hasOwn(value, '__proto__'));
      const read = (await roundTrip(store, value)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(read), ['__proto__', 'a']);
      assert.equal(Object.getPrototypeOf(read), Object.prototype);
      assert.deepEqual(
        { ...(Object.getOwnPropertyDescriptor(read, '__proto__')?.value as object) },
        {
          x: 1,
        },
      );
    }));

  it('round-trips strings with lone surrogates, or refuses them', () =>
    withStore(async (store) => {
      const { db } = store;
      // JavaScript strings may hold unpaired UTF-16 surrogates; UTF-8 cannot. Storing one must
      // either keep it or fail with InvalidArgumentError, never silently change it.
      for (const text of ['\ud800', 'a\udc00b', '\udbff\ud800']) {
        let read: unknown;
        try {
          read = await roundTrip(store, text);
        } catch (error) {
          assert.ok(error instanceof InvalidArgumentError, String(error));
          db.abort();
          continue;
        }
        assert.equal(read, text, `${JSON.stringify(text)} came back as ${JSON.stringify(read)}`);
      }
    }));

  it('names the path of an unregistered persistent object used as a Map key', () =>
    withStore(async (store) => {
      const { storage, db } = store;
      const holder = new Holder();
      holder.value = { m: new Map([[new UnregisteredPersistent(), 1]]) };
      db.root.set('badKey', holder);
      const lastTid = storage.lastTid();
      try {
        await assert.rejects(db.commit(), (error: unknown) => {
          assert.ok(error instanceof InvalidArgumentError, String(error));
          assert.equal(error.code, 'TROVE_INVALID_ARGUMENT');
          // Found by the property: the path was '<new UnregisteredPersistent>'.
          assert.ok(
            error.path?.startsWith('root.badKey.value.m['),
            `path ${error.path} points into root.badKey.value.m`,
          );
          return true;
        });
        assert.equal(storage.lastTid(), lastTid);
      } finally {
        db.abort();
      }
    }));
});

describe('change-tracking regressions (found by the codec properties)', () => {
  it('finds a Map entry and a Set item by an object key read from the same object', () =>
    withStore(async (store) => {
      const { storage, db } = store;
      const key = { a: 1 };
      const holder = new Holder();
      holder.key = key;
      holder.map = new Map([[key, 'found']]);
      holder.set = new Set([key]);
      db.root.set('lookup', holder);
      await db.commit();
      const fresh = await open({ storage });
      const read = fresh.root.get('lookup') as {
        key: object;
        map: Map<object, string>;
        set: Set<object>;
      };
      // The key object is shared inside the record (it is one object when stored)...
      const T = Symbol('mark');
      (read.key as Record<symbol, unknown>)[T] = 1;
      assert.equal(([...read.map.keys()][0] as Record<symbol, unknown>)[T], 1);
      // ...so looking it up must work, in the fresh handle and in the writing one.
      assert.equal(read.map.get(read.key), 'found');
      assert.equal(read.map.has(read.key), true);
      assert.equal(read.set.has(read.key), true);
      const written = db.root.get('lookup') as typeof read;
      assert.equal(written.map.get(written.key), 'found');
      assert.equal(written.set.has(written.key), true);
    }));

  it('a change to an object used as a Map key is stored at the next commit', () =>
    withStore(async (store) => {
      const { storage, db } = store;
      const holder = new Holder();
      holder.map = new Map([[{ n: 1 }, 'v']]);
      db.root.set('mapKey', holder);
      await db.commit();
      const writer = await open({ storage });
      const key = [
        ...(writer.root.get('mapKey') as { map: Map<{ n: number }, string> }).map.keys(),
      ][0]!;
      key.n = 2;
      await writer.commit();
      const reader = await open({ storage });
      const stored = [
        ...(reader.root.get('mapKey') as { map: Map<{ n: number }, string> }).map.keys(),
      ][0]!;
      // Found by the property: Map keys are handed out raw (not as change-tracking views), so
      // the write did not mark the holder changed and was silently lost.
      assert.equal(stored.n, 2);
    }));
});
