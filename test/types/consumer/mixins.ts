/**
 * Code that extends Persistent and exports what it makes, as a library built on trove
 * does: its declarations must be writable (tsconfig sets `declaration`), so every type
 * they infer from Persistent must be nameable outside the package.
 */
import { Persistent, registerClass } from 'trove';

type Constructor<T = object> = abstract new (...args: any[]) => T;

/** fixed: the inferred return type could not be written out (TS4058). */
export function Timestamped<Base extends Constructor<Persistent>>(base: Base) {
  abstract class WithTimestamp extends base {
    createdAt = new Date(0);
  }
  return WithTimestamp;
}

/** fixed: the class it extends could not be written out (TS4020). */
export class Note extends Timestamped(Persistent) {
  text = '';
}
registerClass(Note, 'consumer.Note');

/** fixed: an inferred class expression type could not be written out (TS4023). */
export const makeAnonymous = () => new (class extends Persistent {})();

export const note: Persistent = new Note();
export const brand: symbol = Persistent.persistentBrand;
