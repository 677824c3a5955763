/**
 * Small helpers shared by the behaviour suites: several database handles on one storage
 * (the way the user guides show "a second process" on the same file), and a gate to
 * interleave concurrent transactions deterministically.
 */
import { type Database, MemoryStorage, open } from 'trove';

/** Two database handles on one in-memory storage. */
export async function twoHandles(): Promise<{
  storage: MemoryStorage;
  db: Database;
  db2: Database;
}> {
  const storage = new MemoryStorage();
  const db = await open({ storage });
  const db2 = await open({ storage });
  return { storage, db, db2 };
}

/** A fresh handle on `storage`: reads everything from the storage, nothing from a cache. */
export function reopen(storage: MemoryStorage): Promise<Database> {
  return open({ storage });
}

/** A promise opened by hand: `await gate.promise` waits until `gate.open()`. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Resolves with the rejection of `promise`, failing if it fulfils. */
export async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}
