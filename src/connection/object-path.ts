/**
 * Names where an object sits in the graph (`root.users.ada`), for error messages. Objects do
 * not know their parents, so this searches from the root through loaded objects only (it
 * never loads anything); it runs only when an error is being reported.
 *
 * @module
 */

import { MAX_NESTING, pathSegment } from '../codec/state-scanner.js';
import { metaOf, type ObjectMeta, ObjectState } from '../persistent/object-meta.js';
import { ITEMS_KEY, stateOf } from '../persistent/persistent.js';
import { describe } from '../util/validate.js';

function className(meta: ObjectMeta): string {
  return (
    (Object.getPrototypeOf(meta.target) as { constructor?: Function }).constructor?.name || 'object'
  );
}

/** A fallback name for an object that was not found from the root. */
function detachedName(meta: ObjectMeta): string {
  return meta.oid === undefined
    ? `<new ${className(meta)}>`
    : `<${className(meta)} with oid ${meta.oid}>`;
}

/**
 * The path from `root` to `wanted`, like `root.users.ada`, or a name like
 * `<User with oid 7>` when it cannot be found through loaded objects.
 */
export function describePath(root: ObjectMeta | undefined, wanted: ObjectMeta): string {
  if (root === undefined) return detachedName(wanted);
  if (root === wanted) return 'root';
  const seenObjects = new Set<ObjectMeta>([root]);
  const seenValues = new Set<object>();
  let frontier: Array<[ObjectMeta, string]> = [[root, 'root']];
  while (frontier.length > 0) {
    const next: Array<[ObjectMeta, string]> = [];
    for (const [meta, path] of frontier) {
      if (meta.state === ObjectState.Ghost) continue;
      let found: string | undefined;
      const visit = (value: unknown, at: string, depth = 1): void => {
        if (found !== undefined || typeof value !== 'object' || value === null) return;
        // No deeper than values are stored (deeper, the recursion could overflow the stack).
        if (depth > MAX_NESTING) return;
        const child = metaOf(value);
        if (child !== undefined) {
          if (child === wanted) found = at;
          else if (!seenObjects.has(child)) {
            seenObjects.add(child);
            next.push([child, at]);
          }
          return;
        }
        if (seenValues.has(value)) return;
        seenValues.add(value);
        if (value instanceof Map) {
          for (const [key, item] of value) {
            visit(key, `${at}[key ${describe(key)}]`, depth + 1);
            visit(item, `${at}${pathSegment(key)}`, depth + 1);
          }
        } else if (value instanceof Set) {
          let index = 0;
          for (const item of value) visit(item, `${at}[${index++}]`, depth + 1);
        } else if (Array.isArray(value)) {
          value.forEach((item, index) => {
            visit(item, `${at}[${index}]`, depth + 1);
          });
        } else {
          for (const key of Object.keys(value)) {
            visit((value as Record<string, unknown>)[key], `${at}${pathSegment(key)}`, depth + 1);
          }
        }
      };
      const state = stateOf(meta);
      for (const key of Object.keys(state)) {
        // A collection's items read as the collection's own entries: root.users, not root['@items'].users.
        if (key === ITEMS_KEY) visit(state[key], path, 0);
        else visit(state[key], `${path}${pathSegment(key)}`);
        if (found !== undefined) return found;
      }
    }
    frontier = next;
  }
  return detachedName(wanted);
}

/** Describes a class for messages. */
export function describeClass(cls: Function): string {
  return cls.name ? `class ${cls.name}` : describe(cls);
}
