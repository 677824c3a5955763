/**
 * Change tracking: how writes to a persistent object, and to plain arrays, objects, Maps,
 * Sets and Dates nested in its state, mark the object changed, so that no program ever has
 * to remember a `_p_changed` ritual.
 *
 * A nested value is handed out as a view: a proxy over the raw value whose writes mark the
 * owner changed and whose reads hand out views of deeper values. One raw value has one view
 * per owner (so `obj.tags === obj.tags`), and stored data always holds raw values.
 *
 * @module
 */

import { isStoredAsArray } from '../codec/exotic-values.js';
import { isStoredWhole, MAX_ARRAY_LENGTH, MAX_NESTING } from '../codec/state-scanner.js';
import { ClosedError, InvalidArgumentError, ReadOnlyError } from '../errors.js';
import { defineData } from '../util/define-data.js';
import { FROZEN, JarStatus, metaOf, type ObjectMeta, ObjectState } from './object-meta.js';

/** The raw value behind each view. */
const rawByView = new WeakMap<object, object>();
/** An argument as the raw value it stands for (for lookups by identity). */
export function unwrapArgument(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (rawByView.get(value) ?? value) : value;
}

/** The object each view belongs to. */
const handlerOfView = new WeakMap<object, ViewHandler>();

/** The raw value behind `value` if it is a change-tracking view, else undefined. */
export function rawOfView(value: object): object | undefined {
  return rawByView.get(value);
}

/**
 * True when the owner's transaction has ended. `then` is answered (undefined) even then: a
 * promise resolving to an object looks it up, and that must not fail after the transaction.
 */
export function isClosed(meta: ObjectMeta): boolean {
  return meta.jar !== undefined && meta.jar.status === JarStatus.Closed;
}

/**
 * Checks that the owner may be read now; throws ClosedError or ReadOnlyError otherwise.
 */
export function checkReadable(meta: ObjectMeta): void {
  const jar = meta.jar;
  if (jar !== undefined && jar.status === JarStatus.Closed) jar.refuse(false);
}

/**
 * Throws ClosedError or ReadOnlyError if `meta`'s object may not be written now; marks
 * nothing.
 */
function refuseWrite(meta: ObjectMeta): void {
  const jar = meta.jar;
  if (jar !== undefined) {
    if (jar.status !== JarStatus.Writable) jar.refuse(true);
    // Load first: a ghost learns its class (and whether it may change) when it loads.
    if (meta.state === ObjectState.Ghost) jar.activate(meta);
  }
  if (meta.frozen) {
    const why = (Object.getPrototypeOf(meta.target) as { [FROZEN]?: unknown })[FROZEN];
    throw new ReadOnlyError(
      typeof why === 'function'
        ? (why as (target: object) => string)(meta.target)
        : `object ${meta.oid ?? '(new)'} is of a class whose instances cannot be changed`,
    );
  }
}

/**
 * Marks the owner changed before a write to it or to a value nested in it; throws
 * ClosedError or ReadOnlyError if the owner may not be written now.
 */
export function noteWrite(meta: ObjectMeta): void {
  refuseWrite(meta);
  const jar = meta.jar;
  if (jar !== undefined && meta.state === ObjectState.Saved) {
    meta.state = ObjectState.Changed;
    jar.registerChange(meta);
  }
  // An object never stored has nothing to record: its whole state is written when it is.
}

/**
 * The value to store in `owner` for `value`: raw values as they are; a view of a value of
 * the same owner, its raw value (sharing inside one object is kept); a view of a value of
 * another object, a copy, because a nested value belongs to one object's record and sharing
 * it would let a change through one object show in the other without being stored; a frozen
 * (sealed, non-extensible) object or array, a thawed copy (see thawed), unless it is a `key`
 * of a Map or an element of a Set, which must stay the object it is looked up by.
 */
export function adopt(owner: ObjectMeta, value: unknown, key = false): unknown {
  if (typeof value !== 'object' || value === null) return value;
  return adoptValue(owner, value, {}, 1, !key);
}

/**
 * Where the items an Array method inserts begin in its arguments, for the methods that
 * insert several: `push(...items)`, `unshift(...items)`, `splice(start, count, ...items)`.
 */
const INSERTED_FROM: ReadonlyMap<string | symbol, number> = new Map([
  ['push', 0],
  ['unshift', 0],
  ['splice', 2],
]);

const ARRAY_METHODS = Array.prototype as unknown as Record<string, unknown>;

/**
 * The Array methods that change an array in place and take no callback: run on the stored
 * array itself (see applyInPlace). Through a view, each item they move was a read
 * and a write through its traps: `shift` on 100,000 items took some 100 ms.
 *
 * @internal
 */
export const IN_PLACE_METHODS: ReadonlySet<string | symbol> = new Set([
  'copyWithin',
  'fill',
  'pop',
  'push',
  'reverse',
  'shift',
  'splice',
  'unshift',
]);

/**
 * The Array methods that look for a value and hand out no item: run on the stored items,
 * with a view given as the value unwrapped (a view read from the array is not the item
 * stored, and an object just put in is stored as it is, not as the view reads hand out).
 *
 * @internal
 */
export const SEARCH_METHODS: ReadonlySet<string | symbol> = new Set([
  'includes',
  'indexOf',
  'lastIndexOf',
]);

/**
 * Runs the in-place Array method `name` (one of IN_PLACE_METHODS) on `items`, an array of
 * `owner`'s state. Unless the method changes nothing (see setsSomething: such a call is a
 * read, allowed in a read-only transaction and not stored), a write the owner may not take
 * is refused first; then what the method inserts is adopted, so a value refused (nested too
 * deep) leaves the array and its owner as they were; then `write` marks the owner changed.
 * What the method takes out is handed out tracked, as reads hand it out. Returns what the
 * method returns (`items` itself for those returning their array).
 *
 * @internal
 */
export function applyInPlace(
  owner: ObjectMeta,
  name: string | symbol,
  items: unknown[],
  args: unknown[],
  write: () => void,
): unknown {
  if (setsSomething(name, items.length, args)) {
    // Refused before anything is adopted: a refusal leaves the caller's values as they were.
    refuseWrite(owner);
    const from = INSERTED_FROM.get(name);
    if (from !== undefined) {
      for (let i = from; i < args.length; i++) args[i] = adopt(owner, args[i]);
    } else if (name === 'fill') {
      // One value in every slot, as Array.prototype.fill puts it.
      args[0] = adopt(owner, args[0]);
    }
    write();
  }
  const result = (ARRAY_METHODS[name as string] as Function).apply(items, args);
  if (name === 'shift' || name === 'pop') return track(owner, result);
  if (name === 'splice') return (result as unknown[]).map((item) => track(owner, item));
  return result;
}

/**
 * Whether the in-place method `name` changes an array of `length` items: a reverse of one
 * item, a fill of an empty range, a pop of an empty array or a push of nothing leaves it as
 * it was (an array's method may still set its length to what it was). Positions given as
 * objects are not converted here (their `valueOf` runs in the method, after it has read the
 * length, as on an array): such a call is taken to change the array.
 */
function setsSomething(name: string | symbol, length: number, args: unknown[]): boolean {
  if (name === 'reverse') return length > 1;
  if (name === 'pop' || name === 'shift') return length > 0;
  if (name === 'push' || name === 'unshift') return args.length > 0;
  if (name === 'splice') {
    if (args.length === 0) return false;
    if (args.length > 2) return true;
    const start = relativeIndex(args[0], length, 0);
    if (start === undefined) return true;
    if (args.length === 1) return start < length;
    const count = integerOf(args[1]);
    return count === undefined || Math.min(Math.max(count, 0), length - start) > 0;
  }
  if (name === 'fill' || name === 'copyWithin') {
    const fill = name === 'fill';
    const target = fill ? 0 : relativeIndex(args[0], length, 0);
    const start = relativeIndex(args[1], length, 0);
    const end = relativeIndex(args[2], length, length);
    if (target === undefined || start === undefined || end === undefined) return true;
    return fill ? start < end : Math.min(end - start, length - target) > 0;
  }
  return true;
}

/**
 * `arg` as an integer, as Array methods convert it (NaN is 0, fractions are cut, infinities
 * stay); undefined for an object, whose conversion runs code and is left to the method.
 */
function integerOf(arg: unknown): number | undefined {
  if (typeof arg === 'object' && arg !== null) return undefined;
  if (typeof arg === 'function') return undefined;
  // Unary plus converts as the method would (a BigInt or Symbol throws TypeError).
  const number = +(arg as number);
  return Number.isNaN(number) ? 0 : Math.trunc(number);
}

/**
 * The index `arg` stands for in an array of `length` items, as Array methods read a relative
 * index (negative from the end, clamped); `absent` if it is undefined, and undefined for an
 * object (see integerOf).
 */
function relativeIndex(arg: unknown, length: number, absent: number): number | undefined {
  if (arg === undefined) return absent;
  const integer = integerOf(arg);
  if (integer === undefined) return undefined;
  return integer < 0 ? Math.max(length + integer, 0) : Math.min(integer, length);
}

/**
 * The containers whose views were adopted (see adoptWithin), by the object they went into:
 * walked once for it, so that building a structure piece by piece (each new node pointing
 * at the ones before) does not walk the whole of it again at each step.
 */
const adoptedInto = new WeakMap<object, ObjectMeta>();

/**
 * The refusal of a value assigned that is nested too deep. Its `argument` is the value
 * assigned (`value`, as of a setter); its path from the root is known only to a commit.
 */
function tooDeep(): InvalidArgumentError {
  return new InvalidArgumentError(
    `cannot store a value nested more than ${MAX_NESTING} levels deep`,
    { argument: 'value' },
  );
}

const isObject = (value: unknown): value is object => typeof value === 'object' && value !== null;

/** The copies one adopt call made (made when first needed: most calls copy nothing). */
interface Copies {
  made?: Map<object, unknown>;
}

/**
 * As adopt; one copy of each value met, so sharing inside a value is kept. `depth` is how
 * deep `value` is in the value adopted (1 for that value).
 */
function adoptValue(
  owner: ObjectMeta,
  value: unknown,
  copies: Copies,
  depth: number,
  thaw = true,
): unknown {
  if (!isObject(value)) return value;
  const raw = rawByView.get(value);
  if (raw === undefined) {
    if (!Object.isExtensible(value) && viewKind(value) === ViewKind.Plain) {
      // A key of a Map or an element of a Set stays as it is, nothing in it adopted (it
      // cannot take a replacement): a copy would not be found by the object the
      // application looks it up with.
      return thaw ? thawed(owner, value, copies, depth) : value;
    }
    // A new container may hold views itself (`a.summary = { tags: b.tags }`): they are
    // adopted too, in place, or the two objects would share the nested value.
    adoptWithin(owner, value, copies, depth);
    return value;
  }
  const handler = handlerOfView.get(value)!;
  // What a view of a dropped state reads is no longer its object's: not copied, refused.
  if (handler.stale) throw staleView();
  if (handler.meta === owner) return raw;
  copies.made ??= new Map();
  return copyValue(raw, copies.made, depth);
}

/**
 * A copy, thawed, of a frozen, sealed or non-extensible object or array given to be stored
 * (one copy of each such value for an object's state, so sharing inside it is kept). Stored
 * as it is, a view of it could not hand out views of its members, nor take writes (the
 * proxy's invariants forbid both); and a stored value loads thawed anyway.
 */
function thawed(owner: ObjectMeta, value: object, copies: Copies, depth: number): object {
  // One copy for the object's state: given again (`box.a = f; box.b = f`), it is shared
  // there, as a value not frozen is.
  const earlier = thawedCopies.get(value);
  if (earlier?.owner === owner && earlier.generation === owner.generation) return earlier.copy;
  // Not `slice()`: it follows a `constructor` the array may have of its own.
  const copy: object = Array.isArray(value)
    ? new Array(value.length)
    : (Object.create(Object.getPrototypeOf(value)) as object);
  for (const key of Reflect.ownKeys(value)) {
    if (Array.isArray(value) && key === 'length') continue;
    const descriptor = Reflect.getOwnPropertyDescriptor(value, key)!;
    Reflect.defineProperty(copy, key, {
      ...descriptor,
      ...('value' in descriptor ? { writable: true } : {}),
      configurable: true,
    });
  }
  // Noted before the walk, so a cycle back to it ends there.
  thawedCopies.set(value, { owner, generation: owner.generation, copy });
  try {
    adoptWithin(owner, copy, copies, depth);
  } catch (error) {
    // Refused (too deep, say): not stored, so not the copy to give out next time.
    thawedCopies.delete(value);
    throw error;
  }
  return copy;
}

/** The copy thawed (see thawed) of each frozen value, for the object state it went into. */
const thawedCopies = new WeakMap<
  object,
  { readonly owner: ObjectMeta; readonly generation: number; readonly copy: object }
>();

/** Adopts (see adopt) the views inside a plain container, replacing them in place. */
function adoptWithin(owner: ObjectMeta, container: object, copies: Copies, depth: number): void {
  // Only the containers that get views can hold any: not persistent objects (their class's
  // prototype), dates or binary data.
  const kind = viewKind(container);
  if (kind === undefined || kind === ViewKind.Date) return;
  // The commit refuses it whole (see MAX_ARRAY_LENGTH); a walk over its holes, one by one,
  // took minutes for `a[2 ** 32 - 2] = x`.
  if (Array.isArray(container) && container.length > MAX_ARRAY_LENGTH) return;
  // The usual case, primitives only (an array of tags): nothing to adopt, nothing to note.
  if (
    kind === ViewKind.Plain &&
    !Array.prototype.some.call(
      Array.isArray(container) ? container : Object.values(container),
      isObject,
    )
  ) {
    return;
  }
  // Noted before the walk, so a cycle back to it ends there.
  if (adoptedInto.get(container) === owner) return;
  // The commit would refuse it (see MAX_NESTING); refused here, the walk cannot overflow.
  if (depth > MAX_NESTING) {
    throw tooDeep();
  }
  adoptedInto.set(container, owner);
  try {
    walkAdopting(owner, container, kind, copies, depth);
  } catch (error) {
    // Unnoted on the way out, so that the parts not walked are walked when next adopted.
    adoptedInto.delete(container);
    throw error;
  }
}

/** The walk of adoptWithin over a container's items. */
function walkAdopting(
  owner: ObjectMeta,
  container: object,
  kind: ViewKind,
  copies: Copies,
  depth: number,
): void {
  const adoptItem = (item: unknown): unknown => adoptValue(owner, item, copies, depth + 1);
  const adoptKey = (item: unknown): unknown => adoptValue(owner, item, copies, depth + 1, false);
  const isArray = Array.isArray(container);
  if (isArray) {
    const array = container as unknown[];
    for (let i = 0; i < array.length; i++) {
      const item = array[i];
      const adopted = adoptItem(item);
      if (adopted !== item) array[i] = adopted;
    }
  } else if (kind === ViewKind.Map) {
    const map = container as Map<unknown, unknown>;
    const entries = [...map];
    const adopted = entries.map(([key, item]) => [adoptKey(key), adoptItem(item)] as const);
    if (adopted.some(([key, item], i) => key !== entries[i]![0] || item !== entries[i]![1])) {
      // Rebuilt, not patched: the entries keep their order.
      map.clear();
      for (const [key, item] of adopted) map.set(key, item);
    }
  } else if (kind === ViewKind.Set) {
    const set = container as Set<unknown>;
    const items = [...set];
    const adopted = items.map(adoptKey);
    if (adopted.some((item, i) => item !== items[i])) {
      // Rebuilt, not patched: the elements keep their order.
      set.clear();
      for (const item of adopted) set.add(item);
    }
  } else {
    const record = container as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const item = record[key];
      const adopted = adoptItem(item);
      if (adopted !== item) record[key] = adopted;
    }
  }
}

/**
 * A deep copy of a nested value (at `depth` in the value adopted); persistent objects are
 * kept by reference.
 */
function copyValue(value: unknown, copies: Map<object, unknown>, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (metaOf(value) !== undefined) return value;
  const done = copies.get(value);
  if (done !== undefined) return done;
  // A value built up one level at a time (`a.x = { next: a.x }`) was never walked whole.
  if (depth > MAX_NESTING) {
    throw tooDeep();
  }
  const copyItem = (item: unknown): unknown => copyValue(item, copies, depth + 1);
  // By exact prototype, as the commit's scanner stores values: a subclass copied as its
  // base class would be stored where the original is refused.
  const proto = Object.getPrototypeOf(value) as object | null;
  if (isStoredAsArray(value, proto)) {
    const array = value as unknown[];
    const copy: unknown[] = [];
    copies.set(value, copy);
    for (let i = 0; i < array.length; i++) copy.push(copyItem(array[i]));
    return copy;
  }
  if (proto === Map.prototype) {
    const copy = new Map();
    copies.set(value, copy);
    for (const [key, item] of value as Map<unknown, unknown>)
      copy.set(copyItem(key), copyItem(item));
    return copy;
  }
  if (proto === Set.prototype) {
    const copy = new Set();
    copies.set(value, copy);
    for (const item of value as Set<unknown>) copy.add(copyItem(item));
    return copy;
  }
  // structuredClone gives a Buffer back as a Uint8Array.
  if (proto === Buffer.prototype) return Buffer.from(value as Buffer);
  if (isStoredWhole(proto)) return structuredClone(value);
  if (proto === Object.prototype || proto === null) {
    const copy = Object.create(proto) as Record<string, unknown>;
    copies.set(value, copy);
    for (const key of Object.keys(value))
      defineData(copy, key, copyItem((value as Record<string, unknown>)[key]));
    return copy;
  }
  // Value classes and errors are shared, not copied (README: their in-place changes are not
  // seen); anything else is refused by the commit, as it would be where it came from.
  return value;
}

/** Kinds of values that get views. */
enum ViewKind {
  Plain = 0,
  Map = 1,
  Set = 2,
  Date = 3,
}

function viewKind(value: object): ViewKind | undefined {
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === Array.prototype || proto === null) {
    return ViewKind.Plain;
  }
  if (proto === Map.prototype) return ViewKind.Map;
  if (proto === Set.prototype) return ViewKind.Set;
  if (proto === Date.prototype) return ViewKind.Date;
  return undefined;
}

/**
 * A property descriptor with its value as `owner` hands it out (a view for nested values),
 * so a change made through `Object.getOwnPropertyDescriptor(obj, key).value` is seen.
 */
export function trackDescriptor(
  meta: ObjectMeta,
  descriptor: PropertyDescriptor | undefined,
): PropertyDescriptor | undefined {
  if (
    descriptor === undefined ||
    typeof descriptor.value !== 'object' ||
    descriptor.value === null
  ) {
    return descriptor;
  }
  // A proxy may report a value other than the target's only for a property that can change.
  if (descriptor.configurable === false && descriptor.writable === false) return descriptor;
  descriptor.value = track(meta, descriptor.value);
  return descriptor;
}

/**
 * What `owner` hands out for a value read from its state: a view for trackable nested
 * values, the value itself for everything else (persistent objects, primitives, binary).
 */
export function track(meta: ObjectMeta, value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  // Persistent objects answer META without loading; everything else has no such key.
  if (metaOf(value) !== undefined) return value;
  if (rawByView.has(value)) return value;
  let views = meta.views;
  const existing = views?.get(value);
  if (existing !== undefined) return existing;
  const kind = viewKind(value);
  if (kind === undefined) return value;
  if (views === undefined) {
    views = new WeakMap();
    meta.views = views;
  }
  const handler =
    kind === ViewKind.Plain ? new PlainViewHandler(meta) : new MethodViewHandler(meta, kind);
  const view = new Proxy(value, handler);
  rawByView.set(view, value);
  handlerOfView.set(view, handler);
  views.set(value, view);
  return view;
}

/** Drops the views of the current state (when the state is dropped or replaced). */
export function forgetViews(meta: ObjectMeta): void {
  meta.views = undefined;
  meta.generation++;
}

abstract class ViewHandler {
  readonly meta: ObjectMeta;
  readonly generation: number;

  constructor(meta: ObjectMeta) {
    this.meta = meta;
    this.generation = meta.generation;
  }

  /**
   * Refuses `Object.freeze` and `Object.preventExtensions`: a frozen nested value is not
   * stored as frozen (it loads thawed), and a view of a frozen value could not hand out
   * views of its members (the proxy's invariants forbid it).
   */
  preventExtensions(): boolean {
    throw new InvalidArgumentError(
      'a nested value of a persistent object cannot be frozen or made non-extensible',
      { argument: 'value' },
    );
  }

  /**
   * Refuses a change of prototype with an error of trove's own (a trap answering false
   * makes the engine throw a TypeError): the stored value has its kind's prototype. Setting
   * the prototype it has changes nothing, as on a plain value.
   */
  setPrototypeOf(target: object, proto: object | null): boolean {
    if (proto === Reflect.getPrototypeOf(target)) return true;
    throw new InvalidArgumentError(
      'the prototype of a nested value of a persistent object cannot be changed',
      { argument: 'prototype' },
    );
  }

  /** True once the owner's state this view reads was dropped or replaced. */
  get stale(): boolean {
    return this.meta.generation !== this.generation;
  }

  /**
   * Refuses reads through a view of a dropped state (as writes are): the owner was reloaded
   * since (after a commit, abort, invalidation, or an eviction from the cache), and what
   * the view would read is no longer the object's.
   */
  read(): void {
    checkReadable(this.meta);
    if (this.stale) throw staleView();
  }

  /** Marks the owner changed, refusing writes through a view of a dropped state. */
  write(): void {
    if (this.stale) throw staleView();
    noteWrite(this.meta);
  }

  /** What `await view` asks: answered (none) for a view that can no longer be read. */
  noThen(key: string | symbol): boolean {
    return key === 'then' && (isClosed(this.meta) || this.stale);
  }
}

/**
 * The refusal of what belongs to a dropped state of an object (`what`: a nested value, an
 * iterator).
 *
 * @internal
 */
export function staleView(what = 'this nested value'): ClosedError {
  return new ClosedError(
    `${what} belongs to an earlier state of its object (reloaded after a commit, abort, invalidation or eviction from the cache); read it from the object again`,
  );
}

/** Views of plain objects and arrays: every write goes through a trap. */
class PlainViewHandler extends ViewHandler implements ProxyHandler<object> {
  /**
   * An array's in-place and search methods (see applyInPlace, SEARCH_METHODS), run on the
   * array itself; made once.
   */
  #onItems: Map<string | symbol, Function> | undefined;

  get(target: object, key: string | symbol, receiver: unknown): unknown {
    if (this.noThen(key)) return undefined;
    this.read();
    const value = Reflect.get(target, key, receiver);
    if (
      typeof value === 'function' &&
      (IN_PLACE_METHODS.has(key) || SEARCH_METHODS.has(key)) &&
      value === ARRAY_METHODS[key as string] &&
      Array.isArray(target)
    ) {
      this.#onItems ??= new Map();
      let method = this.#onItems.get(key);
      if (method === undefined) {
        const handler = this;
        const search = SEARCH_METHODS.has(key);
        method = function (this: unknown, ...args: unknown[]): unknown {
          // Called on something else than this view (taken off it): as the method itself.
          if (handlerOfView.get(this as object) !== handler) return value.apply(this, args);
          // Checked as the method's reads through the view would be, even where it writes nothing.
          handler.read();
          if (search) return value.call(target, unwrapArgument(args[0]), ...args.slice(1));
          const result = applyInPlace(handler.meta, key, target as unknown[], args, () =>
            handler.write(),
          );
          return result === target ? this : result;
        };
        this.#onItems.set(key, method);
      }
      return method;
    }
    return track(this.meta, value);
  }

  set(target: object, key: string | symbol, value: unknown, receiver: unknown): boolean {
    this.write();
    return Reflect.set(target, key, adopt(this.meta, value), receiver);
  }

  getOwnPropertyDescriptor(target: object, key: string | symbol): PropertyDescriptor | undefined {
    this.read();
    return trackDescriptor(this.meta, Reflect.getOwnPropertyDescriptor(target, key));
  }

  has(target: object, key: string | symbol): boolean {
    this.read();
    return Reflect.has(target, key);
  }

  ownKeys(target: object): (string | symbol)[] {
    this.read();
    return Reflect.ownKeys(target);
  }

  defineProperty(target: object, key: string | symbol, descriptor: PropertyDescriptor): boolean {
    this.write();
    if ('value' in descriptor) descriptor.value = adopt(this.meta, descriptor.value);
    return Reflect.defineProperty(target, key, descriptor);
  }

  deleteProperty(target: object, key: string | symbol): boolean {
    this.write();
    return Reflect.deleteProperty(target, key);
  }
}

/** Methods of Maps, Sets and Dates that change them. */
const MUTATORS: Record<number, ReadonlySet<string>> = {
  [ViewKind.Map]: new Set(['set', 'delete', 'clear']),
  [ViewKind.Set]: new Set(['add', 'delete', 'clear']),
  [ViewKind.Date]: new Set(
    Object.getOwnPropertyNames(Date.prototype).filter((name) => name.startsWith('set')),
  ),
};

/** Methods of Maps and Sets whose results hand out stored values. */
const VALUE_READERS = new Set<string | symbol>(['get', 'values', 'entries', Symbol.iterator]);

/**
 * Views of Maps, Sets and Dates. Their methods need the raw object as `this` (internal
 * slots), so the view hands out bound methods; mutators mark the owner changed first.
 */
class MethodViewHandler extends ViewHandler implements ProxyHandler<object> {
  readonly kind: ViewKind;
  #methods: Map<string | symbol, Function> | undefined;

  constructor(meta: ObjectMeta, kind: ViewKind) {
    super(meta);
    this.kind = kind;
  }

  get(target: object, key: string | symbol): unknown {
    if (this.noThen(key)) return undefined;
    this.read();
    const value = Reflect.get(target, key, target);
    if (typeof value !== 'function') return value;
    let methods = this.#methods;
    if (methods === undefined) {
      methods = new Map();
      this.#methods = methods;
    }
    let method = methods.get(key);
    if (method === undefined) {
      method = this.#wrap(target, key, value);
      methods.set(key, method);
    }
    return method;
  }

  #wrap(target: object, key: string | symbol, fn: Function): Function {
    const meta = this.meta;
    if (typeof key === 'string' && MUTATORS[this.kind]!.has(key)) {
      return (...args: unknown[]) => {
        this.write();
        // The first argument of `set` and `add` is a key, or an element: kept as it is.
        const result = fn.apply(
          target,
          args.map((arg, i) => adopt(meta, arg, i === 0)),
        );
        // `map.set(...)` and `set.add(...)` return the collection: the view, so a write
        // chained on it (`.set(a, 1).set(b, 2)`) is seen too.
        return result === target ? this.viewOf(target) : result;
      };
    }
    // Checked at each call, not only when the method is looked up: a method kept from a view
    // (`const get = map.get`) would otherwise read a dropped state.
    if (this.kind === ViewKind.Date) {
      return (...args: unknown[]) => {
        this.read();
        return fn.apply(target, args);
      };
    }
    const isMap = this.kind === ViewKind.Map;
    // Keys and values handed out are views too (a change to a key object is a change to
    // this object); arguments are unwrapped, so a view finds the raw value it stands for.
    if (key === 'forEach') {
      return (callback: Function, thisArg?: unknown) => {
        this.read();
        return fn.call(target, (value: unknown, itemKey: unknown) => {
          this.read();
          return callback.call(
            thisArg,
            track(meta, value),
            track(meta, itemKey),
            this.viewOf(target),
          );
        });
      };
    }
    if (VALUE_READERS.has(key) || key === 'keys') {
      const entries = key === 'entries' || (key === Symbol.iterator && isMap);
      return (...args: unknown[]) => {
        this.read();
        const result = fn.apply(target, args.map(unwrapArgument));
        if (key === 'get') return track(meta, result);
        // Each step checks too: an iterator kept across a reload would go on over the
        // dropped state, handing out views that look current.
        return mapIterator(result as Iterator<unknown>, (item) => {
          this.read();
          return entries
            ? [
                track(meta, (item as [unknown, unknown])[0]),
                track(meta, (item as [unknown, unknown])[1]),
              ]
            : track(meta, item);
        });
      };
    }
    return (...args: unknown[]) => {
      this.read();
      return fn.apply(target, args.map(unwrapArgument));
    };
  }

  viewOf(target: object): unknown {
    return this.meta.views?.get(target) ?? target;
  }

  set(target: object, key: string | symbol, value: unknown): boolean {
    // Past the view, Object.prototype's __proto__ setter would change the raw value's
    // prototype, and the raw value (a Map, a Set, a Date) would be stored as something else.
    if (key === '__proto__' && !Object.hasOwn(target, key)) {
      return this.setPrototypeOf(target, value as object | null);
    }
    this.write();
    return Reflect.set(target, key, adopt(this.meta, value), target);
  }

  deleteProperty(target: object, key: string | symbol): boolean {
    this.write();
    return Reflect.deleteProperty(target, key);
  }
}

/** An iterator (and iterable) over `source` with each item passed through `map`. */
function mapIterator<T, U>(source: Iterator<T>, map: (item: T) => U): IterableIterator<U> {
  return {
    next(): IteratorResult<U> {
      const step = source.next();
      return step.done ? step : { done: false, value: map(step.value) };
    },
    [Symbol.iterator]() {
      return this;
    },
  };
}
