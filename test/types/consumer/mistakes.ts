/**
 * Wrong usages the published types must refuse: each `@ts-expect-error` line fails the check
 * (unused directive) if the types let it compile. All of these fail at run time.
 */
import {
  Blob,
  BrokenValue,
  Database,
  MemoryStorage,
  markChanged,
  oidOf,
  open,
  Persistent,
  type PersistentList,
  type PersistentMap,
  persistent,
  Transaction,
} from 'trove';

/** Fields only (a `#private` field would make it nominal by itself). */
class Person extends Persistent {
  name = '';
  tags: string[] = [];
}

declare const tx: Transaction;
declare const people: PersistentMap<string, Person>;
declare const list: PersistentList<number>;

// Persistent is nominal: an object of the same shape is not a persistent object.
// @ts-expect-error
export const plain: Persistent = {};
// @ts-expect-error
people.set('bob', { name: 'Bob', tags: [] });
// @ts-expect-error
oidOf({});
// @ts-expect-error
markChanged(new Map());
// @ts-expect-error
tx.readCurrent({});
// @ts-expect-error
@persistent('types.NotPersistent')
export class NotPersistent {
  a = 1;
}

// Made by trove only.
// @ts-expect-error
new Database();
// @ts-expect-error
new Transaction();
// @ts-expect-error
new BrokenValue();
// @ts-expect-error
export class MyDatabase extends Database {}
// @ts-expect-error
new Blob();
class Avatar extends Blob {}
// @ts-expect-error
new Avatar();

// The list methods that return the list do not return an array.
// @ts-expect-error
export const sorted: number[] = list.sort();
list.forEach((_value, _index, self) => {
  // @ts-expect-error
  const array: number[] = self;
  void array;
});

// Combinations open() refuses.
// @ts-expect-error
void open({ storage: new MemoryStorage() }, { cacheSize: 10 });
// (Refused by the earlier types too: an option of open(path) given to open({ storage }).)
// @ts-expect-error
void open({ storage: new MemoryStorage(), readOnly: true });
