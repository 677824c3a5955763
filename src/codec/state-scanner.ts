/**
 * The walk over an object's state that runs before it is encoded. It finds the persistent
 * objects the state references (the record's refs, and new objects to store by
 * reachability), refuses values that cannot be stored with the path to them, swaps
 * change-tracking views for the raw values behind them, and notices shared or cyclic values
 * (which need msgpackr's slower structured-clone mode).
 *
 * msgpackr itself would silently write a function as undefined and an unregistered class
 * instance as a plain object; a database must refuse those instead of losing data, so the
 * checks happen here, once, before anything is written.
 *
 * @internal
 * @module
 */

import { InvalidArgumentError } from '../errors.js';
import { describe } from '../util/validate.js';
import { BrokenValue } from './broken-value.js';
import { type AnyClass, nameOfClass } from './class-registry.js';
import { isExoticPrimitive, isExoticString } from './exotic-values.js';
import { isPersistentClass, referenceType } from './reference-type.js';

/** What the scan found. */
export interface ScanResult {
  /** True when some non-persistent value is reachable twice (shared or cyclic). */
  readonly sharedValues: boolean;
  /** True when some value needs a marker to be stored exactly (see exotic-values). */
  readonly exoticValues: boolean;
  /** True when the state holds a Map (plain MessagePack maps cannot tell one from an object). */
  readonly maps: boolean;
  /** True when the state holds instances of value classes (or values of unknown ones). */
  readonly valueClasses: boolean;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Renders a path segment the way JavaScript would write the access. */
export function pathSegment(key: unknown): string {
  if (typeof key === 'number') return `[${key}]`;
  if (typeof key === 'string') return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return `[${describe(key)}]`;
}

function isLeafObject(value: object, proto: object | null): boolean {
  return (
    proto === Date.prototype ||
    ArrayBuffer.isView(value) ||
    proto === ArrayBuffer.prototype ||
    proto === RegExp.prototype ||
    value instanceof Error
  );
}

/**
 * Scans the values of `state` (an object's persisted properties). Calls `onReference` for
 * every persistent object referenced. Throws InvalidArgumentError naming the path to a
 * value that cannot be stored; `where` gives the path of the object whose state this is.
 */
export function scanState(
  state: Record<string, unknown>,
  onReference: (obj: object) => void,
  where: () => string,
): ScanResult {
  const refType = referenceType();
  const visited = new Set<object>();
  const path: unknown[] = [];
  let shared = false;
  let exotic = false;
  let maps = false;
  let valueClasses = false;

  const fail = (what: string, hint = ''): never => {
    const at = where() + path.map(pathSegment).join('');
    throw new InvalidArgumentError(`cannot store ${what} at ${at}${hint}`, { path: at });
  };

  // Returns the value to store in place of `value` (the raw object behind a view).
  const scan = (value: unknown): unknown => {
    if (typeof value !== 'object') {
      if (typeof value === 'function') fail(describe(value));
      if (typeof value === 'symbol') fail(describe(value));
      if (!exotic && isExoticPrimitive(value)) exotic = true;
      return value;
    }
    if (value === null) return value;
    const obj = refType.rawOf(value) ?? value;
    if (refType.isReference(obj)) {
      onReference(obj);
      return obj;
    }
    if (visited.has(obj)) {
      shared = true;
      return obj;
    }
    visited.add(obj);
    const proto = Object.getPrototypeOf(obj) as object | null;
    if (proto === Object.prototype || proto === null) {
      scanProperties(obj as Record<string, unknown>, true);
    } else if (proto === Array.prototype) {
      const array = obj as unknown[];
      for (let i = 0; i < array.length; i++) {
        path.push(i);
        const item = array[i];
        const stored = scan(item);
        if (stored !== item) array[i] = stored;
        path.pop();
      }
    } else if (proto === Map.prototype) {
      maps = true;
      const map = obj as Map<unknown, unknown>;
      for (const [key, item] of map) {
        path.push(key);
        scan(key);
        const stored = scan(item);
        if (stored !== item) map.set(key, stored);
        path.pop();
      }
    } else if (proto === Set.prototype) {
      let index = 0;
      for (const item of obj as Set<unknown>) {
        path.push(index++);
        scan(item);
        path.pop();
      }
    } else if (isLeafObject(obj, proto)) {
      // Stored whole by msgpackr (dates, binary data, regular expressions, errors).
    } else if (obj instanceof BrokenValue) {
      valueClasses = true;
      scanProperties(obj.state, false);
    } else {
      valueClasses = true;
      const cls = (proto as { constructor?: AnyClass }).constructor;
      if (cls === undefined || nameOfClass(cls) === undefined || isPersistentClass(cls)) {
        fail(
          describe(obj),
          ` (an unregistered class: register it with registerClass(${cls?.name || 'Class'}, 'app.${cls?.name || 'Name'}'))`,
        );
      }
      scanProperties(obj as Record<string, unknown>, true);
    }
    return obj;
  };

  const scanProperties = (obj: Record<string, unknown>, checkSymbols: boolean): void => {
    if (checkSymbols && Object.getOwnPropertySymbols(obj).length > 0) {
      fail('an object with symbol-keyed properties', ' (symbol keys cannot be stored)');
    }
    for (const key of Object.keys(obj)) {
      if (!exotic && (key === '__proto__' || isExoticString(key))) exotic = true;
      path.push(key);
      const item = obj[key];
      const stored = scan(item);
      if (stored !== item) obj[key] = stored;
      path.pop();
    }
  };

  for (const key of Object.keys(state)) {
    path.push(key);
    const item = state[key];
    const stored = scan(item);
    if (stored !== item) state[key] = stored;
    path.pop();
  }
  return { sharedValues: shared, exoticValues: exotic, maps, valueClasses };
}
