/**
 * The Persistent base class: subclass it and instances are stored by reachability, tracked
 * for changes through a Proxy, and loaded lazily (as ghosts) when read back.
 *
 * Every persistent object is a Proxy over a raw object that holds its state. The constructor
 * returns the proxy, so class fields and constructor assignments both go through the traps.
 * Properties with string keys are the persisted state; symbol-keyed properties are volatile
 * (kept in memory only, never stored, dropped when the object is unloaded), and so are
 * `#private` fields, which live on the proxy itself and never reach the state.
 *
 * @module
 */

import { type InspectOptionsStylized, inspect } from 'node:util';
import { type AnyClass, constructsOnLoad, reserveClass } from '../codec/class-registry.js';
import { installReferenceType } from '../codec/record-codec.js';
import { isEncoding } from '../codec/reference-type.js';
import { InvalidArgumentError } from '../errors.js';
import type { Oid } from '../storage/types.js';
import { defineData } from '../util/define-data.js';
import { describe } from '../util/validate.js';
import {
  adopt,
  forgetViews,
  noteWrite,
  rawOfView,
  staleView,
  track,
  trackDescriptor,
} from './change-tracking.js';
import {
  FROZEN,
  type Jar,
  JarStatus,
  META,
  metaOf,
  ObjectMeta,
  ObjectState,
} from './object-meta.js';

/** Where list-like built-ins keep their items, and other built-ins their contents. */
export const ITEMS: unique symbol = Symbol('trove.items');
/**
 * The state key of a built-in collection's items (a list's, map's or set's). Paths (in
 * errors, in describePath) leave it out: an item of `root.list` is `root.list[2]`, an entry
 * of `root.users` is `root.users.ada`.
 *
 * @internal
 */
export const ITEMS_KEY = '@items';

/** ITEMS_KEY if the object is a built-in collection (its state holds its items there). */
export function itemsKeyOf(meta: ObjectMeta): string | undefined {
  return ITEMS in (meta.target as object) ? ITEMS_KEY : undefined;
}
/** Set on the prototype of classes whose proxy answers index access (`list[3]`). */
export const INDEXED: unique symbol = Symbol('trove.indexed');
export { FROZEN };
/** The method that returns an object's persisted state as a plain object. */
export const GET_STATE: unique symbol = Symbol('trove.getState');
/** The method that installs a loaded state into an object. */
export const SET_STATE: unique symbol = Symbol('trove.setState');

type Target = Record<string | symbol, unknown> & { [META]: ObjectMeta };

/** Parses a canonical array index ("0", "17"), or returns -1. */
function arrayIndex(key: string): number {
  const first = key.charCodeAt(0);
  if (first < 48 || first > 57) return -1;
  const index = Number(key);
  // 2^32 - 1 is not an array index: as a key of the items array it would be a property,
  // which is not stored.
  return Number.isInteger(index) && index >= 0 && index < 2 ** 32 - 1 && String(index) === key
    ? index
    : -1;
}

/** Brings an object up to date for a read: refuses closed jars, loads ghosts. */
function beforeRead(meta: ObjectMeta): void {
  const jar = meta.jar;
  if (jar === undefined) return;
  if (jar.status === JarStatus.Closed) jar.refuse(false);
  meta.access = ++jar.clock;
  if (meta.state === ObjectState.Ghost) jar.activate(meta);
}

/** Prepares an object for a write to its state (loading it, refusing what must be). */
function beforeWrite(meta: ObjectMeta): void {
  noteWrite(meta);
  if (meta.jar !== undefined) meta.access = ++meta.jar.clock;
}

/** What the traps need to know about a class, computed once per prototype. */
interface ClassInfo {
  readonly indexed: boolean;
  readonly frozen: boolean;
  readonly slowKeys: ReadonlySet<string | symbol> | undefined;
}

const classInfos = new WeakMap<object, ClassInfo>();

/**
 * The class information of a prototype. `slowKeys` are the keys with an accessor or a
 * read-only property somewhere on the prototype chain: for them the traps use the full
 * algorithm (so getters and setters run with the proxy as `this`); every other key is read
 * and written on the raw object directly, several times faster.
 */
function classInfo(proto: object): ClassInfo {
  let info = classInfos.get(proto);
  if (info === undefined) {
    const slow = new Set<string | symbol>();
    for (
      let p: object | null = proto;
      p !== null && p !== Object.prototype;
      p = Object.getPrototypeOf(p)
    ) {
      for (const key of Reflect.ownKeys(p)) {
        const descriptor = Object.getOwnPropertyDescriptor(p, key)!;
        if (
          descriptor.get !== undefined ||
          descriptor.set !== undefined ||
          descriptor.writable === false
        ) {
          slow.add(key);
        }
      }
    }
    const flags = proto as { [INDEXED]?: boolean; [FROZEN]?: unknown };
    info = {
      indexed: flags[INDEXED] === true,
      frozen: flags[FROZEN] !== undefined,
      slowKeys: slow.size > 0 ? slow : undefined,
    };
    classInfos.set(proto, info);
  }
  return info;
}

/** Copies the class information of the target's prototype onto its bookkeeping. */
function readClassFlags(meta: ObjectMeta, target: Target): void {
  const info = classInfo(Object.getPrototypeOf(target) as object);
  meta.indexed = info.indexed;
  meta.frozen = info.frozen;
  meta.slowKeys = info.slowKeys;
}

/** A descriptor as class fields and plain assignments create them. */
function isPlainData(descriptor: PropertyDescriptor): boolean {
  return (
    descriptor.writable === true &&
    descriptor.enumerable === true &&
    descriptor.configurable === true &&
    descriptor.get === undefined &&
    descriptor.set === undefined
  );
}

/** Stores `value` under `key`: directly on the raw object unless the key needs the chain. */
function assign(
  meta: ObjectMeta,
  target: Target,
  key: string | symbol,
  value: unknown,
  receiver: unknown,
): boolean {
  if (meta.slowKeys?.has(key) === true) return Reflect.set(target, key, value, receiver);
  target[key] = value;
  return true;
}

/**
 * Sets the prototype of a persistent object: refused with an error of trove's own (a trap
 * answering false makes the engine throw a TypeError), since the class is part of what is
 * stored; setting the prototype it has changes nothing, as on a plain object.
 */
function setPrototype(target: Target, proto: unknown): boolean {
  // A ghost made from a reference learns its class when it loads.
  if (proto === persistentHandler.getPrototypeOf!(target)) return true;
  throw new InvalidArgumentError(
    'the prototype of a persistent object cannot be changed: its class is part of what is stored',
    { argument: 'prototype' },
  );
}

const persistentHandler: ProxyHandler<Target> = {
  get(target, key, receiver) {
    const meta = target[META];
    if (key === META) return meta;
    const jar = meta.jar;
    if (jar !== undefined) {
      if (jar.status === JarStatus.Closed) {
        // A promise resolving to an object looks up `then`: answer it even then.
        if (key === 'then') return undefined;
        jar.refuse(false);
      }
      if (meta.state === ObjectState.Ghost) {
        if (isEncoding()) return Reflect.get(target, key);
        jar.activate(meta);
      }
      meta.access = ++jar.clock;
    }
    if (typeof key === 'symbol') return Reflect.get(target, key, receiver);
    if (meta.indexed) {
      const index = arrayIndex(key);
      if (index >= 0) return track(meta, (target[ITEMS] as unknown[])[index]);
    }
    const value =
      meta.slowKeys?.has(key) === true ? Reflect.get(target, key, receiver) : target[key];
    return typeof value === 'object' && value !== null ? track(meta, value) : value;
  },

  set(target, key, value, receiver) {
    const meta = target[META];
    if (receiver !== meta.proxy) {
      // A write to an object that inherits from this one (Object.create(obj), or
      // Reflect.set with another receiver) is that object's, as with a plain prototype: it
      // defines the property there (or runs a setter with it as `this`), not here.
      beforeRead(meta);
      return Reflect.set(target, key, value, receiver);
    }
    if (typeof key === 'symbol') return assign(meta, target, key, value, receiver);
    if (key === '__proto__') {
      beforeRead(meta);
      // Without an own attribute of that name, this sets the prototype (Object.prototype's
      // accessor), which the engine would do on the raw object, past setPrototypeOf.
      // (Unless the class has an accessor of that name: then it is that accessor's.)
      if (!Object.hasOwn(target, key) && meta.slowKeys?.has(key) !== true) {
        return setPrototype(target, value);
      }
    }
    if (meta.jar !== undefined || meta.frozen) beforeWrite(meta);
    const raw = typeof value === 'object' && value !== null ? adopt(meta, value) : value;
    if (meta.indexed) {
      const index = arrayIndex(key);
      if (index >= 0) {
        (target[ITEMS] as unknown[])[index] = raw;
        return true;
      }
    }
    return assign(meta, target, key, raw, receiver);
  },

  defineProperty(target, key, descriptor) {
    if (typeof key !== 'symbol') {
      const meta = target[META];
      // Loaded first: a ghost made from a reference learns only then that it is a list.
      beforeRead(meta);
      // An index of a list names an item, as in `set`, and `length` is the items' length:
      // only a writable, enumerable, configurable value can be stored there. (A data
      // property `length` would hide the accessor, and loading it would call the setter on
      // an object being loaded, without end.)
      const index = meta.indexed ? arrayIndex(key) : -1;
      if (index >= 0 || (meta.indexed && key === 'length')) {
        if (
          descriptor.get !== undefined ||
          descriptor.set !== undefined ||
          descriptor.writable === false ||
          descriptor.enumerable === false ||
          descriptor.configurable === false
        ) {
          throw new InvalidArgumentError(
            `${key === 'length' ? 'the length' : `item ${key}`} of a list can only be defined as a writable, enumerable, configurable value`,
            { argument: 'descriptor' },
          );
        }
        if (!('value' in descriptor)) return true;
      }
      if (meta.jar !== undefined || meta.frozen) beforeWrite(meta);
      if (
        'value' in descriptor &&
        typeof descriptor.value === 'object' &&
        descriptor.value !== null
      ) {
        descriptor.value = adopt(meta, descriptor.value);
      }
      if (index >= 0) {
        (target[ITEMS] as unknown[])[index] = descriptor.value;
        return true;
      }
      if (meta.indexed && key === 'length') {
        return Reflect.set(target, key, descriptor.value, meta.proxy);
      }
    }
    // A class field on a new object: define it directly unless something in the way
    // (a prototype accessor, an existing property) needs the full algorithm. (Assigned,
    // `__proto__` would set the prototype.)
    if (
      isPlainData(descriptor) &&
      target[META].slowKeys?.has(key) !== true &&
      key !== '__proto__' &&
      !Object.hasOwn(target, key)
    ) {
      target[key] = descriptor.value;
      return true;
    }
    return Reflect.defineProperty(target, key, descriptor);
  },

  deleteProperty(target, key) {
    if (typeof key === 'symbol') return Reflect.deleteProperty(target, key);
    const meta = target[META];
    beforeWrite(meta);
    if (meta.indexed) {
      const index = arrayIndex(key);
      // As on an array: the item becomes a hole (stored as undefined), the length stays.
      if (index >= 0) return delete (target[ITEMS] as unknown[])[index];
    }
    return Reflect.deleteProperty(target, key);
  },

  has(target, key) {
    const meta = target[META];
    if (key === META) return true;
    beforeRead(meta);
    if (meta.indexed && typeof key === 'string') {
      const index = arrayIndex(key);
      if (index >= 0) return index in (target[ITEMS] as unknown[]);
    }
    return Reflect.has(target, key);
  },

  ownKeys(target) {
    const meta = target[META];
    beforeRead(meta);
    // Not the bookkeeping: a copy made from the keys or descriptors (Object.create(proto,
    // Object.getOwnPropertyDescriptors(obj))) would carry it, and be stored as `obj` itself.
    const keys = Reflect.ownKeys(target).filter((key) => key !== META);
    if (!meta.indexed) return keys;
    // The indexes present (a deleted item is a hole, as in an array), then the attributes.
    return [...Object.keys(target[ITEMS] as unknown[]), ...keys];
  },

  getOwnPropertyDescriptor(target, key) {
    if (key === META) return undefined;
    const meta = target[META];
    beforeRead(meta);
    if (meta.indexed && typeof key === 'string') {
      const index = arrayIndex(key);
      const items = target[ITEMS] as unknown[];
      if (index >= 0 && index in items) {
        return {
          value: track(meta, items[index]),
          writable: true,
          enumerable: true,
          configurable: true,
        };
      }
    }
    // Symbol-keyed properties are volatile, handed out as they are (as by `get`).
    return typeof key === 'symbol'
      ? Reflect.getOwnPropertyDescriptor(target, key)
      : trackDescriptor(meta, Reflect.getOwnPropertyDescriptor(target, key));
  },

  getPrototypeOf(target) {
    const meta = target[META];
    // A ghost made from a reference does not know its class until it loads; `instanceof`
    // must answer for the real class, so it loads (except when the encoder asks).
    if (!meta.classKnown && meta.state === ObjectState.Ghost && !isEncoding()) beforeRead(meta);
    return Reflect.getPrototypeOf(target);
  },

  setPrototypeOf(target, proto) {
    return setPrototype(target, proto);
  },

  preventExtensions() {
    // A frozen object could not be loaded again after being unloaded.
    throw new InvalidArgumentError(
      'a persistent object cannot be frozen, sealed or made non-extensible: it could not be loaded again',
    );
  },
};

/**
 * The base class of persistent objects. Subclass it, register the subclass under a stable
 * name (`@persistent('app.User')` or `registerClass`), and instances reachable from the
 * database root are stored on commit. Attribute writes and deletes, and changes to plain
 * arrays, objects, Maps, Sets and Dates held in attributes, mark the object changed.
 *
 * A subclass may define `static resolveConflict(oldState, committedState, myState)`, which
 * merges a change with another transaction's (returning the merged state, a plain object),
 * and `static upgradeState(state)`, which returns the state to load for a stored one (giving
 * objects an earlier version stored the attributes added since).
 */
export class Persistent {
  /**
   * The key of the brand that makes the type nominal (see below). A static of the class,
   * so that declaration files of code extending Persistent (a mixin, an exported class
   * expression) can write the brand out as `Persistent.persistentBrand`: a symbol declared
   * apart could not be named from outside the package, and their emit failed (TS4058).
   */
  static readonly persistentBrand: unique symbol = Symbol('trove.persistentBrand');

  /**
   * Makes the type nominal: an object of the same shape that is not made by a subclass of
   * Persistent (a plain object literal) is not a persistent object, and trove refuses it
   * where one is needed. Declared only: no object has this property at run time. Keyed by
   * a symbol, and public, so mapped types (`Readonly<User>`) and exported mixins keep it,
   * where they drop or refuse a private member.
   */
  declare readonly [Persistent.persistentBrand]: true;

  /**
   * A new persistent object, not stored yet: it is stored by the first commit of a
   * transaction that reaches it from the root (or from another stored object).
   */
  constructor() {
    if (reviving !== undefined && new.target === reviving.cls) {
      // Loading by the constructor (constructOnLoad): the object exists already. Returned
      // here, it is what the subclasses' fields, #private ones included, are defined on.
      const proxy = reviving.meta.proxy;
      reviving = undefined;
      // biome-ignore lint/correctness/noConstructorReturn: the loaded object's identity
      return proxy as unknown as this;
    }
    const target = this as unknown as Target;
    const meta = new ObjectMeta(target, ObjectState.Unsaved, true);
    meta.constructed = true;
    // Configurable, so the traps may leave it out of the object's keys and descriptors (a
    // proxy must report a non-configurable property).
    Object.defineProperty(target, META, { value: meta, configurable: true });
    readClassFlags(meta, target);
    const proxy = new Proxy(target, persistentHandler);
    meta.proxy = proxy;
    // biome-ignore lint/correctness/noConstructorReturn: the proxy is the object's identity
    return proxy as unknown as this;
  }

  /** @internal The persisted state: the own string-keyed properties. */
  [GET_STATE](): Record<string, unknown> {
    const state: Record<string, unknown> = {};
    for (const key of Object.keys(this)) {
      if (key === '__proto__') defineData(state, key, (this as Record<string, unknown>)[key]);
      else state[key] = (this as Record<string, unknown>)[key];
    }
    return state;
  }

  /** @internal Installs a loaded state. */
  [SET_STATE](state: Record<string, unknown>): void {
    const slow = (this as unknown as Target)[META].slowKeys;
    if (
      !Object.hasOwn(state, '__proto__') &&
      (slow === undefined || !Object.keys(state).some((key) => slow.has(key)))
    ) {
      Object.assign(this, state);
      return;
    }
    // Assigned, a key '__proto__' would set the prototype instead of an attribute, and a key
    // the class has a getter without a setter or a read-only property for (a stored field a
    // later version made computed) would throw: those are installed as stored. A key with a
    // setter is assigned through it, as a class migrating the field expects.
    const proto = Object.getPrototypeOf(this) as object;
    for (const key of Object.keys(state)) {
      if (key === '__proto__' || (slow?.has(key) === true && !hasSetter(proto, key))) {
        defineData(this, key, state[key]);
      } else {
        (this as unknown as Record<string, unknown>)[key] = state[key];
      }
    }
  }
}

/** True if `key` is an accessor with a setter somewhere on `proto`'s chain. */
function hasSetter(proto: object | null, key: string): boolean {
  for (let p = proto; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    const descriptor = Object.getOwnPropertyDescriptor(p, key);
    if (descriptor !== undefined) return descriptor.set !== undefined;
  }
  return false;
}

reserveClass(Persistent);

/** The persistent objects being shown: one met again inside itself is a cycle. */
const showing = new Set<object>();

/** A plain object with the own properties of `obj` (accessors as accessors), but `leave`. */
function ownProperties(obj: object, leave: readonly symbol[]): object {
  const descriptors = Object.getOwnPropertyDescriptors(obj) as Record<
    string | symbol,
    PropertyDescriptor
  >;
  for (const key of leave) delete descriptors[key];
  return Object.defineProperties({}, descriptors);
}

/**
 * How `console.log` and `util.inspect` show a persistent object (called with the proxy as
 * `this`, after looking the method up on its raw object, past the traps: one not loaded yet
 * showed as an empty `Persistent {}`). Shown now: its class as far as known and its oid when
 * not loaded (showing it does not load it); else its class, its items (a list's, map's or
 * set's) and its own properties, taken from the raw object (showing it is no read, and runs
 * no getter), as a plain object's are shown, cycles included.
 */
function inspectPersistent(
  this: object,
  depth: number,
  options: InspectOptionsStylized,
  show: typeof inspect,
): string {
  const meta = metaOf(this);
  // An object that inherits from a persistent one: its own properties.
  if (meta === undefined) return show(ownProperties(this, []), { ...options, depth });
  const raw = meta.target as Target;
  const name = (Object.getPrototypeOf(raw) as { constructor?: { name?: string } } | null)
    ?.constructor?.name;
  const label = name || 'Persistent';
  if (meta.state === ObjectState.Ghost) {
    const oid = meta.oid === undefined ? '' : `, oid ${meta.oid}`;
    return options.stylize(`${label} <not loaded${oid}>`, 'special');
  }
  if (depth < 0) return options.stylize(`[${label}]`, 'special');
  if (showing.has(raw)) return options.stylize(`[Circular ${label}]`, 'special');
  showing.add(raw);
  try {
    // The stand-in for the object is at the object's own depth.
    const inner = { ...options, depth };
    const parts: string[] = [];
    const items = raw[ITEMS];
    if (items !== undefined) parts.push(show(items, inner));
    const properties = ownProperties(raw, [META, ITEMS]);
    if (items === undefined || Reflect.ownKeys(properties).length > 0) {
      parts.push(show(properties, inner));
    }
    return `${label} ${parts.join(' ')}`;
  } finally {
    showing.delete(raw);
  }
}

Object.defineProperty(Persistent.prototype, inspect.custom, {
  value: inspectPersistent,
  writable: true,
  configurable: true,
});

/**
 * Creates a ghost: an object known by oid whose state loads on first access. `cls` is its
 * class if known; otherwise it learns its class when it loads.
 *
 * @internal
 */
export function createGhost(jar: Jar, oid: Oid, cls?: Function): ObjectMeta {
  const target = Object.create((cls ?? Persistent).prototype) as Target;
  const meta = new ObjectMeta(target, ObjectState.Ghost, cls !== undefined);
  Object.defineProperty(target, META, { value: meta, configurable: true });
  meta.oid = oid;
  meta.jar = jar;
  readClassFlags(meta, target);
  meta.proxy = new Proxy(target, persistentHandler);
  return meta;
}

/** The object the next Persistent constructor of `cls` returns (see construct). */
let reviving: { cls: Function; meta: ObjectMeta } | undefined;

/**
 * Runs the constructor of `cls` over an object being loaded, so that it gets what only a
 * constructor gives (`#private` fields); then drops the attributes the constructor set,
 * which the stored state replaces. The connection is detached meanwhile: what the
 * constructor does is not a change of the object.
 */
function construct(meta: ObjectMeta, cls: Function): void {
  // A constructor runs once over an object: run again, it would define the #private fields
  // a second time (a TypeError). One that failed fails every later load of the object in
  // this handle with its error; another handle (or a new open) tries again.
  const failed = constructionFailures.get(meta);
  if (failed !== undefined) throw failed.error;
  const target = meta.target as Target;
  const jar = meta.jar;
  meta.jar = undefined;
  // Restored, not cleared, after: a constructor may load another such object before super().
  const outer = reviving;
  reviving = { cls, meta };
  try {
    Reflect.construct(cls, [], cls);
    for (const key of Object.keys(target)) {
      if (!Reflect.deleteProperty(target, key)) {
        throw new InvalidArgumentError(
          `objects of class ${cls.name || '(anonymous)'} cannot be made by their constructor when loaded (constructOnLoad): it defines attribute ${key} as non-configurable, which their stored state could not replace`,
          { argument: 'cls' },
        );
      }
    }
  } catch (error) {
    constructionFailures.set(meta, { error });
    throw error;
  } finally {
    reviving = outer;
    meta.jar = jar;
  }
  meta.constructed = true;
  forgetViews(meta);
}

/** Objects whose construction on load failed, with the error (see construct). */
const constructionFailures = new WeakMap<ObjectMeta, { error: unknown }>();

/**
 * Drops a loaded object's state and views: every key of its raw target but META; but the
 * symbol-keyed ones of a class made by its constructor when loaded are kept, as its
 * #private fields are (the constructor does not run again).
 */
function dropState(meta: ObjectMeta): void {
  const target = meta.target as Target;
  const cls = (Object.getPrototypeOf(target) as { constructor: AnyClass }).constructor;
  const keys = constructsOnLoad(cls) ? Object.keys(target) : Reflect.ownKeys(target);
  for (const key of keys) if (key !== META) delete target[key];
  forgetViews(meta);
}

/**
 * Gives a loading ghost its class, then installs its state.
 *
 * @internal
 */
export function installState(
  meta: ObjectMeta,
  cls: Function,
  state: Record<string, unknown>,
): void {
  const target = meta.target as Target;
  if (Object.getPrototypeOf(target) !== cls.prototype) {
    Object.setPrototypeOf(target, cls.prototype);
    readClassFlags(meta, target);
  }
  meta.classKnown = true;
  if (!meta.constructed && constructsOnLoad(cls as AnyClass)) construct(meta, cls);
  // A ghost holds no state and no views (ghostify dropped them, a new ghost never had any):
  // only a loaded object whose state is replaced has some to drop.
  if (meta.state !== ObjectState.Ghost) dropState(meta);
  (target[SET_STATE] as (state: Record<string, unknown>) => void).call(target, state);
}

/**
 * The persisted state of an object as a fresh plain object (the values are shared).
 *
 * @internal
 */
export function stateOf(meta: ObjectMeta): Record<string, unknown> {
  const target = meta.target as Target;
  return (target[GET_STATE] as () => Record<string, unknown>).call(target);
}

/**
 * Drops an object's state, making it a ghost that loads again on next access.
 *
 * @internal
 */
export function ghostify(meta: ObjectMeta): void {
  dropState(meta);
  meta.state = ObjectState.Ghost;
}

/**
 * The raw state holder of a persistent object, loaded and checked for reading. For the
 * built-in collections' methods, which work on their items directly.
 *
 * @internal
 */
export function readTarget<T>(obj: object): T & Target {
  const meta = (obj as Target)[META];
  beforeRead(meta);
  return meta.target as T & Target;
}

/**
 * The raw state holder of a persistent object, loaded, checked for writing and marked
 * changed.
 *
 * @internal
 */
export function writeTarget<T>(obj: object): T & Target {
  const meta = (obj as Target)[META];
  beforeWrite(meta);
  return meta.target as T & Target;
}

/** The bookkeeping of a persistent object, or an InvalidArgumentError naming `argument`. */
export function expectPersistent(value: unknown, argument: string): ObjectMeta {
  const meta = metaOf(value);
  if (meta !== undefined) return meta;
  throw new InvalidArgumentError(
    `${argument} must be a persistent object, got ${describe(value)}`,
    {
      argument,
    },
  );
}

/**
 * The oid of a stored persistent object, or undefined if it has not been stored yet.
 * Throws InvalidArgumentError for anything that is not a persistent object.
 */
export function oidOf(obj: Persistent): Oid | undefined {
  const meta = expectPersistent(obj, 'obj');
  return meta.jar === undefined ? undefined : meta.oid;
}

/**
 * Marks a persistent object changed, so its state is written at the next commit. Changes
 * made through the object are noticed by themselves; this is for changes trove cannot see,
 * such as writes into a typed array or Buffer held by the object.
 */
export function markChanged(obj: Persistent): void {
  const meta = expectPersistent(obj, 'obj');
  beforeRead(meta);
  beforeWrite(meta);
}

/**
 * Reads a value from an object's items for handing out: nested plain values come back as
 * change-tracking views.
 *
 * @internal
 */
export function trackItem(target: Target, value: unknown): unknown {
  return typeof value === 'object' && value !== null ? track(target[META], value) : value;
}

/** SameValueZero, as Map keys and Set elements compare. */
function sameKey(a: unknown, b: unknown): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/**
 * The items of a collection's current state, one by one, as `iterate` gives them (live, as
 * a Map's or a Set's iterator is). Each step reads the object again (loading it if it was
 * evicted, so a long loop keeps it in use) and checks the state is still the one the
 * iteration began on. If the object was loaded again meanwhile (a commit or abort of the
 * default connection after an eviction or a pack, another's commit, a merge), the iteration
 * goes on in the new state after the key it handed out last; ClosedError if that key is gone
 * or cannot be found again (an object key, which loads as a new object). Kept across a
 * reload, an iterator went on over the dropped state, and a write through a value it handed
 * out was lost.
 *
 * @internal
 */
export function* itemsOfState<T>(
  obj: object,
  iterate: (target: Target) => Iterator<T>,
  keyOf: (item: T) => unknown,
): Generator<T> {
  let target = readTarget<object>(obj);
  let generation = target[META].generation;
  let items = iterate(target);
  let handedOut = false;
  let lastKey: unknown;
  for (;;) {
    const step = items.next();
    // Read again at each step, the last one too: its transaction may have ended, or the
    // state been replaced (then the new one may hold more).
    target = readTarget<object>(obj);
    const meta = target[META];
    if (meta.generation !== generation) {
      generation = meta.generation;
      items = iterate(target);
      if (handedOut && !skipPast(items, lastKey, keyOf)) throw staleView('this iterator');
      continue;
    }
    if (step.done === true) return;
    handedOut = true;
    lastKey = keyOf(step.value);
    yield step.value;
  }
}

/** Advances `items` past the item with `key`; false if there is none. */
function skipPast<T>(items: Iterator<T>, key: unknown, keyOf: (item: T) => unknown): boolean {
  for (let step = items.next(); step.done !== true; step = items.next()) {
    if (sameKey(keyOf(step.value), key)) return true;
  }
  return false;
}

installReferenceType({
  base: Persistent,
  isReference: (obj) => metaOf(obj) !== undefined,
  oidOf(obj) {
    const oid = (obj as Target)[META].oid;
    if (oid === undefined)
      throw new Error('trove: encoding a reference to an object without an oid');
    return oid;
  },
  rawOf: rawOfView,
});

/**
 * Refuses an attribute whose name is the state key a built-in collection keeps its items
 * under: storing it would overwrite the items (or be overwritten by them).
 *
 * @internal
 */
export function refuseReservedKey(state: Record<string, unknown>, key: string): void {
  if (Object.hasOwn(state, key)) {
    throw new InvalidArgumentError(
      `an attribute named '${key}' cannot be stored on a built-in collection: the name is where it keeps its items`,
      { argument: key },
    );
  }
}
