/**
 * Three-way merge of object states, the conflict resolution of the built-in collections:
 * two transactions that changed different keys (or attributes) of one object both win; a
 * key changed differently by both is a real conflict.
 *
 * @internal
 * @module
 */

import { metaOf } from './object-meta.js';

/** Structural equality of stored values; persistent objects compare by identity. */
export function sameValue(a: unknown, b: unknown, depth = 0): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (depth > 64) return false;
  if (metaOf(a) !== undefined || metaOf(b) !== undefined) return false;
  const protoA = Object.getPrototypeOf(a);
  if (protoA !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === (b as Date).getTime();
  if (ArrayBuffer.isView(a)) {
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const yView = b as ArrayBufferView;
    const y = new Uint8Array(yView.buffer, yView.byteOffset, yView.byteLength);
    return x.length === y.length && x.every((byte, i) => byte === y[i]);
  }
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => sameValue(item, other[i], depth + 1));
  }
  if (a instanceof Map) {
    const other = b as Map<unknown, unknown>;
    if (a.size !== other.size) return false;
    for (const [key, value] of a) {
      if (!other.has(key) || !sameValue(value, other.get(key), depth + 1)) return false;
    }
    return true;
  }
  if (a instanceof Set) {
    const other = b as Set<unknown>;
    return a.size === other.size && [...a].every((item) => other.has(item));
  }
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  return keysA.every(
    (key) =>
      Object.hasOwn(b, key) &&
      sameValue(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        depth + 1,
      ),
  );
}

/** Thrown inside a merge when both sides changed the same key differently. */
class MergeConflict {}

const ABSENT = Symbol('absent');

function mergeValue(old: unknown, committed: unknown, mine: unknown): unknown {
  if (sameValue(committed, old)) return mine;
  if (sameValue(mine, old)) return committed;
  if (sameValue(mine, committed)) return committed;
  throw new MergeConflict();
}

function mergeMaps(
  old: Map<unknown, unknown>,
  committed: Map<unknown, unknown>,
  mine: Map<unknown, unknown>,
): Map<unknown, unknown> {
  const merged = new Map<unknown, unknown>();
  // Order: committed entries first (what others see), then keys only this side added.
  const keys = new Set([...committed.keys(), ...mine.keys(), ...old.keys()]);
  for (const key of keys) {
    const value = mergeValue(
      old.has(key) ? old.get(key) : ABSENT,
      committed.has(key) ? committed.get(key) : ABSENT,
      mine.has(key) ? mine.get(key) : ABSENT,
    );
    if (value !== ABSENT) merged.set(key, value);
  }
  return merged;
}

function mergeSets(old: Set<unknown>, committed: Set<unknown>, mine: Set<unknown>): Set<unknown> {
  const merged = new Set<unknown>();
  for (const item of new Set([...committed, ...mine, ...old])) {
    const inOld = old.has(item);
    // Present unless one side removed it, or absent unless one side added it.
    const keep = inOld
      ? committed.has(item) && mine.has(item)
      : committed.has(item) || mine.has(item);
    if (keep) merged.add(item);
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
      if (value !== ABSENT) merged[key] = value;
    }
    return merged;
  } catch (error) {
    if (error instanceof MergeConflict) return undefined;
    throw error;
  }
}
