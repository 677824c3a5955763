/**
 * Reachability over stored refs: what pack keeps and what an integrity check follows. Works
 * on oids and refs only, so it never needs the application's classes.
 *
 * @module
 */

import type { IntegrityFailure } from '../errors.js';
import { type Oid, ROOT_OID } from './types.js';

/**
 * The oids reachable from the root by following refs. `refsOf` returns an object's refs, or
 * undefined if it has no current revision (a dangling ref, which is not followed).
 */
export function reachableFromRoot(refsOf: (oid: Oid) => readonly Oid[] | undefined): Set<Oid> {
  const seen = new Set<Oid>();
  if (refsOf(ROOT_OID) === undefined) return seen;
  const stack: Oid[] = [ROOT_OID];
  seen.add(ROOT_OID);
  while (stack.length > 0) {
    const refs = refsOf(stack.pop()!);
    if (refs === undefined) continue;
    for (const ref of refs) {
      if (!seen.has(ref) && refsOf(ref) !== undefined) {
        seen.add(ref);
        stack.push(ref);
      }
    }
  }
  return seen;
}

/**
 * Integrity failures for refs that point at objects without a current revision. `objects`
 * yields each current object with its refs.
 */
export function danglingRefs(
  objects: Iterable<readonly [Oid, readonly Oid[]]>,
  exists: (oid: Oid) => boolean,
): IntegrityFailure[] {
  const failures: IntegrityFailure[] = [];
  for (const [oid, refs] of objects) {
    for (const ref of refs) {
      if (!exists(ref)) {
        failures.push({
          kind: 'dangling-ref',
          oid,
          detail: `object ${oid} refers to object ${ref}, which has no record`,
        });
      }
    }
  }
  return failures;
}
