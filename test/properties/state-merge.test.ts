/**
 * The three-way merge of the built-in collections' states, against a model: for any old
 * state and two states made from it by changing, adding and removing entries (keys that are
 * their own identity: numbers, strings, -0, NaN), the merge is the model's, entry for entry
 * and in order, and it is a conflict exactly where the model finds one. The merge of such
 * keys takes a path of its own (found by the scale hunt: matching keys that need no
 * matching cost a merge of a million entries seconds under the writer lock).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type * as StateMergeModule from '../../dist/persistent/state-merge.js';

// Tests run from build/test/properties/, the package from dist/.
const { mergeStates } = (await import(
  new URL('../../../dist/persistent/state-merge.js', import.meta.url).href
)) as typeof StateMergeModule;

const ABSENT = Symbol('absent');
const key = fc.oneof(
  fc.integer({ min: 0, max: 12 }),
  fc.constantFrom('a', 'b', 'c', -0, Number.NaN),
);
const value = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant('x'), fc.constant(null));
/** A change of one key: a value set, or `ABSENT` for a removal. */
const changes = fc.array(fc.tuple(key, fc.oneof(value, fc.constant(ABSENT))), { maxLength: 8 });

function changed<K>(old: Map<K, unknown>, edits: readonly (readonly [K, unknown])[]) {
  const next = new Map(old);
  for (const [k, v] of edits) {
    if (v === ABSENT) next.delete(k);
    else next.set(k, v);
  }
  return next;
}

/** The model: a key changed by one side takes that side's value; by both, a conflict. */
function modelMerge(
  old: Map<unknown, unknown>,
  committed: Map<unknown, unknown>,
  mine: Map<unknown, unknown>,
): Map<unknown, unknown> | undefined {
  const merged = new Map<unknown, unknown>();
  const keys = new Set([...committed.keys(), ...mine.keys(), ...old.keys()]);
  for (const k of keys) {
    const [o, c, m] = [old, committed, mine].map((map) => (map.has(k) ? map.get(k) : ABSENT));
    let result: unknown;
    if (Object.is(c, o)) result = m;
    else if (Object.is(m, o)) result = c;
    else return undefined;
    if (result !== ABSENT) merged.set(k, result);
  }
  return merged;
}

function modelSetMerge(old: Set<unknown>, committed: Set<unknown>, mine: Set<unknown>) {
  const merged = new Set<unknown>();
  for (const k of new Set([...committed, ...mine, ...old])) {
    const keep = old.has(k) ? committed.has(k) && mine.has(k) : committed.has(k) || mine.has(k);
    if (keep) merged.add(k);
  }
  return merged;
}

describe('three-way merge of map and set states', () => {
  it('merges maps as the model does, conflicts included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, value), { maxLength: 10 }),
        changes,
        changes,
        (start, a, b) => {
          const old = new Map<unknown, unknown>(start);
          const committed = changed(old, a);
          const mine = changed(old, b);
          const merged = mergeStates({ items: old }, { items: committed }, { items: mine });
          const expected = modelMerge(old, committed, mine);
          if (expected === undefined) assert.equal(merged, undefined);
          else assert.deepEqual([...(merged!.items as Map<unknown, unknown>)], [...expected]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('merges sets as the model does', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 10 }), changes, changes, (start, a, b) => {
        const old = new Set<unknown>(start);
        const toSet = (edits: readonly (readonly [unknown, unknown])[]) => {
          const next = new Set(old);
          for (const [k, v] of edits) {
            if (v === ABSENT) next.delete(k);
            else next.add(k);
          }
          return next;
        };
        const [committed, mine] = [toSet(a), toSet(b)];
        const merged = mergeStates({ items: old }, { items: committed }, { items: mine });
        assert.deepEqual(
          [...(merged!.items as Set<unknown>)],
          [...modelSetMerge(old, committed, mine)],
        );
      }),
      { numRuns: 500 },
    );
  });
});
