/**
 * Persistent classes shared by the file-storage tests and the child processes and worker
 * threads they start (both sides must register the same names).
 */
import { Persistent, registerClass } from 'trove';

/** One number, incremented by read-modify-write transactions. */
export class Tally extends Persistent {
  count: number;

  constructor(count = 0) {
    super();
    this.count = count;
  }
}
registerClass(Tally, 'test.file-storage.Tally');

/** An object with a payload, for pack and history tests. */
export class Item extends Persistent {
  name: string;
  payload: string;
  next: Item | undefined;

  constructor(name: string, payload = '', next?: Item) {
    super();
    this.name = name;
    this.payload = payload;
    this.next = next;
  }
}
registerClass(Item, 'test.file-storage.Item');
