/**
 * Three-way merge of object states, the conflict resolution of the built-in collections:
 * two transactions that changed different keys (or attributes) of one object both win; a
 * key changed differently by both is a real conflict.
 *
 * @module
 */

import { defineData } from '../util/define-data.js';
import { metaOf } from './object-meta.js';

/**
 * Nesting beyond which two values are not compared: the merge reports a conflict instead
 * (deeper recursion could overflow the stack).
 */
const MAX_DEPTH = 500;

/**
 * Structural equality of stored values; persistent objects compare by identity. Shared and
 * cyclic values compare by their structure too: a pair of objects met again while it is
 * being compared, or already found equal, counts as equal. That keeps cycles finite and
 * shared structure linear (each pair is compared once); what a failed comparison assumed
 * is forgotten with it, so no later answer rests on it.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  // Primitives (and the same object) answer without a Comparison: a merge of a map of a
  // million entries asks a million times.
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return new Comparison().same(a, b, 0);
}

class Comparison {
  /** Pairs assumed or found equal: `b`s by `a`. */
  readonly #pairs = new Map<object, Set<object>>();
  /** The pairs in the order they were noted, to forget those after a failure. */
  readonly #noted: [object, object][] = [];

  same(a: unknown, b: unknown, depth: number): boolean {
    if (Object.is(a, b)) return true;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
    if (this.#pairs.get(a)?.has(b) === true) return true;
    if (depth > MAX_DEPTH) throw new MergeConflict();
    this.#note(a, b);
    // A false answer reaches the top, or a #takeMatch that forgets what it assumed.
    return this.#compare(a, b, depth + 1);
  }

  #note(a: object, b: object): void {
    let bs = this.#pairs.get(a);
    if (bs === undefined) {
      bs = new Set();
      this.#pairs.set(a, bs);
    }
    bs.add(b);
    this.#noted.push([a, b]);
  }

  #forgetSince(mark: number): void {
    while (this.#noted.length > mark) {
      const [a, b] = this.#noted.pop()!;
      this.#pairs.get(a)!.delete(b);
    }
  }

  /** Removes the first of `candidates` that `matches`; false if none does. */
  #takeMatch(candidates: unknown[], matches: (candidate: unknown) => boolean): boolean {
    for (let i = 0; i < candidates.length; i++) {
      const mark = this.#noted.length;
      if (matches(candidates[i])) {
        candidates.splice(i, 1);
        return true;
      }
      this.#forgetSince(mark);
    }
    return false;
  }

  #compare(a: object, b: object, depth: number): boolean {
    if (metaOf(a) !== undefined || metaOf(b) !== undefined) return false;
    const protoA = Object.getPrototypeOf(a);
    if (protoA !== Object.getPrototypeOf(b)) return false;
    // Object.is: two invalid dates are the same date (NaN).
    if (a instanceof Date) return Object.is(a.getTime(), (b as Date).getTime());
    // Values whose state is not in their own enumerable keys (which alone would make any two
    // of a kind equal, and a merge keep a stale one over another transaction's change).
    if (a instanceof ArrayBuffer)
      return sameBytes(new Uint8Array(a), new Uint8Array(b as ArrayBuffer));
    if (a instanceof RegExp) {
      const other = b as RegExp;
      return a.source === other.source && a.flags === other.flags;
    }
    if (a instanceof Error) {
      const other = b as Error;
      if (a.name !== other.name || a.message !== other.message || a.stack !== other.stack) {
        return false;
      }
      // A cause and an AggregateError's errors are own properties that are not enumerable.
      for (const key of ['cause', 'errors'] as const) {
        if (
          (Object.hasOwn(a, key) || Object.hasOwn(other, key)) &&
          !this.same((a as AggregateError)[key], (other as AggregateError)[key], depth)
        ) {
          return false;
        }
      }
    }
    if (ArrayBuffer.isView(a)) {
      const other = b as ArrayBufferView;
      return sameBytes(
        new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
        new Uint8Array(other.buffer, other.byteOffset, other.byteLength),
      );
    }
    if (Array.isArray(a)) {
      const other = b as unknown[];
      return a.length === other.length && a.every((item, i) => this.same(item, other[i], depth));
    }
    if (a instanceof Map) {
      const other = b as Map<unknown, unknown>;
      if (a.size !== other.size) return false;
      // Object keys of two decoded states are different objects: matched by value, each once.
      const unmatched = [...other.keys()].filter(isPlainValueObject);
      for (const [key, value] of a) {
        const found = isPlainValueObject(key)
          ? this.#takeMatch(
              unmatched,
              (candidate) =>
                this.same(key, candidate, depth) && this.same(value, other.get(candidate), depth),
            )
          : other.has(key) && this.same(value, other.get(key), depth);
        if (!found) return false;
      }
      return true;
    }
    if (a instanceof Set) {
      const other = b as Set<unknown>;
      if (a.size !== other.size) return false;
      const unmatched = [...other].filter(isPlainValueObject);
      for (const item of a) {
        const found = isPlainValueObject(item)
          ? this.#takeMatch(unmatched, (candidate) => this.same(item, candidate, depth))
          : other.has(item);
        if (!found) return false;
      }
      return true;
    }
    const keysA = Object.keys(a);
    const keysB = Object.keys(b);
    if (keysA.length !== keysB.length) return false;
    return keysA.every(
      (key) =>
        Object.hasOwn(b, key) &&
        this.same((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], depth),
    );
  }
}

function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && x.every((byte, i) => byte === y[i]);
}

/** Whether `value` is an object stored by value (not a primitive, not a persistent object). */
function isPlainValueObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && metaOf(value) === undefined;
}

/**
 * A short string that is the same for values sameValue calls equal (the converse need not
 * hold): it sorts candidates into buckets, so matching elements by value stays about linear.
 */
function fingerprint(value: unknown, depth = 0): string {
  if (typeof value !== 'object' || value === null) return `${typeof value}:${String(value)}`;
  const meta = metaOf(value);
  if (meta !== undefined) return `P${meta.oid ?? ''}`;
  if (depth > 2) return '…';
  if (value instanceof Date) return `D${value.getTime()}`;
  if (ArrayBuffer.isView(value)) return `T${value.byteLength}`;
  if (value instanceof ArrayBuffer) return `B${value.byteLength}`;
  if (value instanceof RegExp) return `R${value.source}/${value.flags}`;
  if (value instanceof Error) return `E${value.name}:${value.message}`;
  if (Array.isArray(value)) {
    return `A${value.length}[${value.map((item) => fingerprint(item, depth + 1)).join(',')}]`;
  }
  // Their members compare by value in any order: the size alone.
  if (value instanceof Map) return `M${value.size}`;
  if (value instanceof Set) return `S${value.size}`;
  const keys = Object.keys(value).sort();
  return `O{${keys.join(',')}:${keys
    .map((key) => fingerprint((value as Record<string, unknown>)[key], depth + 1))
    .join(',')}}`;
}

/** Thrown inside a merge when both sides changed the same key differently. */
class MergeConflict {}

const ABSENT = Symbol('absent');

/**
 * The merged value of a key (or attribute): the side that changed it wins. Changed by both
 * it is a conflict, even when both wrote the same value: each may have computed it from
 * what it read (two increments of 0 both write 1), and a merge would lose an update.
 */
function mergeValue(old: unknown, committed: unknown, mine: unknown): unknown {
  if (sameValue(committed, old)) return mine;
  if (sameValue(mine, old)) return committed;
  throw new MergeConflict();
}

/** The places of the three states in the arrays the merge functions pass around. */
const OLD = 0;
const COMMITTED = 1;
const MINE = 2;

/**
 * The elements (or keys) of three collections as keys that compare by identity. A primitive
 * or a persistent object is its own key. The three states are decoded apart, so one stored
 * object element is three objects: each gets the key of a structurally equal element of an
 * earlier state (sameValue), matched at most once per state, so that equal elements that
 * are distinct within one collection stay distinct.
 */
function matchElements(states: readonly (readonly unknown[])[]): {
  keysOf: unknown[][];
  /** The element to store for each key: the committed state's, else mine, else the old. */
  stored: Map<unknown, unknown>;
} {
  const buckets = new Map<string, { value: object; key: object; usedBy: number }[]>();
  const keysOf = states.map((elements, state) =>
    elements.map((element) => {
      if (!isPlainValueObject(element)) return element;
      const print = fingerprint(element);
      let bucket = buckets.get(print);
      if (bucket === undefined) {
        bucket = [];
        buckets.set(print, bucket);
      }
      for (const candidate of bucket) {
        if (candidate.usedBy < state && sameValue(element, candidate.value)) {
          candidate.usedBy = state;
          return candidate.key;
        }
      }
      const key = {};
      bucket.push({ value: element, key, usedBy: state });
      return key;
    }),
  );
  const stored = new Map<unknown, unknown>();
  for (const state of [OLD, MINE, COMMITTED]) {
    const keys = keysOf[state]!;
    states[state]!.forEach((element, i) => {
      stored.set(keys[i], element);
    });
  }
  return { keysOf, stored };
}

/** Whether some key of `collections` is an object stored by value (see matchElements). */
function hasValueObjectKeys(collections: readonly (Map<unknown, unknown> | Set<unknown>)[]) {
  for (const collection of collections)
    for (const key of collection.keys()) if (isPlainValueObject(key)) return true;
  return false;
}

/**
 * The keys of three collections whose keys are their own identity (primitives, persistent
 * objects), each once: the committed state's, then those only mine has, then those only the
 * old one has (the order of a merged collection).
 */
function* unionOfKeys(
  old: Map<unknown, unknown> | Set<unknown>,
  committed: Map<unknown, unknown> | Set<unknown>,
  mine: Map<unknown, unknown> | Set<unknown>,
): Generator<unknown> {
  yield* committed.keys();
  for (const key of mine.keys()) if (!committed.has(key)) yield key;
  for (const key of old.keys()) if (!committed.has(key) && !mine.has(key)) yield key;
}

function mergeMaps(
  old: Map<unknown, unknown>,
  committed: Map<unknown, unknown>,
  mine: Map<unknown, unknown>,
): Map<unknown, unknown> {
  const states = [old, committed, mine];
  if (!hasValueObjectKeys(states)) {
    // Keys that are their own identity need no matching (which cost a merge of a map of a
    // million entries seconds, under the writer lock).
    const merged = new Map<unknown, unknown>();
    for (const key of unionOfKeys(old, committed, mine)) {
      const value = mergeValue(
        old.has(key) ? old.get(key) : ABSENT,
        committed.has(key) ? committed.get(key) : ABSENT,
        mine.has(key) ? mine.get(key) : ABSENT,
      );
      if (value !== ABSENT) merged.set(key, value);
    }
    return merged;
  }
  const { keysOf, stored } = matchElements(states.map((map) => [...map.keys()]));
  // Each state's entries by matched key.
  const entries = states.map((map, state) => {
    const byKey = new Map<unknown, unknown>();
    let i = 0;
    for (const value of map.values()) byKey.set(keysOf[state]![i++], value);
    return byKey;
  });
  const [o, c, m] = entries as [
    Map<unknown, unknown>,
    Map<unknown, unknown>,
    Map<unknown, unknown>,
  ];
  const merged = new Map<unknown, unknown>();
  // Order: committed entries first (what others see), then keys only this side added.
  for (const key of new Set([...keysOf[COMMITTED]!, ...keysOf[MINE]!, ...keysOf[OLD]!])) {
    const value = mergeValue(
      o.has(key) ? o.get(key) : ABSENT,
      c.has(key) ? c.get(key) : ABSENT,
      m.has(key) ? m.get(key) : ABSENT,
    );
    if (value !== ABSENT) merged.set(stored.get(key), value);
  }
  return merged;
}

function mergeSets(old: Set<unknown>, committed: Set<unknown>, mine: Set<unknown>): Set<unknown> {
  if (!hasValueObjectKeys([old, committed, mine])) {
    const merged = new Set<unknown>();
    for (const key of unionOfKeys(old, committed, mine)) {
      // Present unless one side removed it, or absent unless one side added it.
      const keep = old.has(key)
        ? committed.has(key) && mine.has(key)
        : committed.has(key) || mine.has(key);
      if (keep) merged.add(key);
    }
    return merged;
  }
  const { keysOf, stored } = matchElements([[...old], [...committed], [...mine]]);
  const [o, c, m] = keysOf.map((keys) => new Set(keys)) as [
    Set<unknown>,
    Set<unknown>,
    Set<unknown>,
  ];
  const merged = new Set<unknown>();
  for (const key of new Set([...keysOf[COMMITTED]!, ...keysOf[MINE]!, ...keysOf[OLD]!])) {
    const inOld = o.has(key);
    // Present unless one side removed it, or absent unless one side added it.
    const keep = inOld ? c.has(key) && m.has(key) : c.has(key) || m.has(key);
    if (keep) merged.add(stored.get(key));
  }
  return merged;
}

/**
 * Merges three states key by key (attributes, and the entries of Map and Set items); returns
 * undefined when some key was changed differently on both sides.
 */
export function mergeStates(
  old: Record<string, unknown>,
  committed: Record<string, unknown>,
  mine: Record<string, unknown>,
): Record<string, unknown> | undefined {
  try {
    const merged: Record<string, unknown> = {};
    const keys = new Set([...Object.keys(committed), ...Object.keys(mine), ...Object.keys(old)]);
    for (const key of keys) {
      const o = Object.hasOwn(old, key) ? old[key] : ABSENT;
      const c = Object.hasOwn(committed, key) ? committed[key] : ABSENT;
      const m = Object.hasOwn(mine, key) ? mine[key] : ABSENT;
      let value: unknown;
      if (o instanceof Map && c instanceof Map && m instanceof Map) value = mergeMaps(o, c, m);
      else if (o instanceof Set && c instanceof Set && m instanceof Set) value = mergeSets(o, c, m);
      else value = mergeValue(o, c, m);
      if (value !== ABSENT) defineData(merged, key, value); // a key '__proto__' is data
    }
    return merged;
  } catch (error) {
    if (error instanceof MergeConflict) return undefined;
    throw error;
  }
}
