/**
 * Right usages of the published types: all of this must compile. Lines marked "fixed:" did
 * not compile against earlier published types.
 */
import { Readable } from 'node:stream';
import {
  Blob,
  Broken,
  ConflictError,
  Counter,
  type Database,
  type ErrorCodeValue,
  type IntegrityFailure,
  InvalidArgumentError,
  isTroveError,
  MemoryStorage,
  markChanged,
  type NotFoundError,
  type OpenFileOptions,
  oidOf,
  open,
  Persistent,
  type PersistentList,
  PersistentMap,
  PersistentSet,
  persistent,
  registerClass,
  type Transaction,
  TroveError,
} from 'trove';

/** True when A and B are the same type. */
type Is<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const VOLATILE = Symbol('volatile');

@persistent('types.User')
export class User extends Persistent {
  tags: string[] = [];
  #secret = 'hidden';
  [VOLATILE] = 'volatile';
  declare nickname?: string;
  constructor(public name = '') {
    super();
  }
  get shout(): string {
    return this.name.toUpperCase();
  }
  secret(): string {
    return this.#secret;
  }
}

export class Account extends Persistent {
  #pin = 1234;
  pin(): number {
    return this.#pin;
  }
}
registerClass(Account, 'types.Account', { constructOnLoad: true });

/** A value class: stored by value. */
export class Point {
  constructor(
    public x = 0,
    public y = 0,
  ) {}
}
registerClass(Point, 'types.Point', { aliases: ['types.OldPoint'] });

// fixed: a subclass of Blob (whose constructor is protected) registers, and from() makes one.
export class Avatar extends Blob {}
registerClass(Avatar, 'types.Avatar');
@persistent('types.Photo')
export class Photo extends Blob {}
export const avatar: Avatar = Avatar.from(new Uint8Array([1, 2, 3]));
export const blob: Is<ReturnType<typeof Blob.from>, Blob> = true;
export const streamed: Blob = Blob.from(Readable.from([Buffer.from('ab')]));
const unbound = Blob.from;
export const fromUnbound: Blob = unbound(new Uint8Array([1]));

export async function everyday(cfg: {
  durability?: 'full' | 'os' | 'none';
  cacheSize?: number;
  readOnly?: boolean;
  note?: string;
  user?: string;
  attempts?: number;
  at?: Date;
  throwOnFailure?: boolean;
}): Promise<void> {
  // fixed (exactOptionalPropertyTypes): options take a value that may be undefined.
  const options: OpenFileOptions = {
    durability: cfg.durability,
    cacheSize: cfg.cacheSize,
    readOnly: cfg.readOnly,
  };
  const db: Database = await open('types.trove', options);
  await open('types.trove', { at: cfg.at, readOnly: true });
  await open('types.trove', { at: new Date() });
  await open({ storage: new MemoryStorage({ readOnly: cfg.readOnly }), cacheSize: cfg.cacheSize });
  await db.commit({ note: cfg.note, user: cfg.user });
  await db.transaction(() => 1, { attempts: cfg.attempts, note: cfg.note });
  await db.integrityCheck({ throwOnFailure: cfg.throwOnFailure });
  await db.pack({ keepHistorySince: cfg.at });
  await db.backup('copy.trove', { at: cfg.at });
  registerClass(class Later extends Persistent {}, 'types.Later', {
    constructOnLoad: cfg.readOnly,
  });
  void new InvalidArgumentError('x', { argument: cfg.note, path: cfg.user });
  void new ConflictError('x', { oid: cfg.attempts, className: cfg.note });

  const users = new PersistentMap<string, User>();
  db.root.set('users', users);
  users.set('ada', new User('Ada'));
  const ada = users.get('ada');
  if (ada !== undefined) {
    // fixed: these take persistent objects (and only those).
    const oid: number | undefined = oidOf(ada);
    markChanged(ada);
    await db.transaction((tx: Transaction) => tx.readCurrent(ada));
    void oid;
  }
  db.root.set('counter', new Counter(1));
  db.root.set('set', new PersistentSet([1, 2]));
  db.root.set('point', new Point(1, 2));
  await db.close();
}

export function lists(list: PersistentList<number>): void {
  // fixed: the methods that return the array return the list.
  const sorted: Is<ReturnType<typeof list.sort>, PersistentList<number>> = true;
  const reversed: Is<ReturnType<typeof list.reverse>, PersistentList<number>> = true;
  const filled: Is<ReturnType<typeof list.fill>, PersistentList<number>> = true;
  const copied: Is<ReturnType<typeof list.copyWithin>, PersistentList<number>> = true;
  void [sorted, reversed, filled, copied];
  list.sort((a, b) => a - b).push(4);
  // fixed: callbacks are given the list.
  list.forEach((_value, _index, self) => {
    self.push(1);
  });
  const total: number = list.reduce((sum, value, _index, self) => sum + value + self.length, 0);
  const strings: string[] = list.map((value, _index, self) => `${value}/${self.length}`);
  const evens: number[] = list.filter((value) => value % 2 === 0);
  const first: number | undefined = list[0];
  const small: 1 | 2 | undefined = list.find((value): value is 1 | 2 => value < 3);
  const flat: string[] = list.flatMap((value) => [String(value)]);
  void [total, strings, evens, first, small, flat];
}

export function errors(error: unknown): string {
  // fixed: each error class's code is its literal.
  const conflict: 'TROVE_CONFLICT' = new ConflictError('x').code;
  void conflict;
  if (!(error instanceof TroveError)) return 'not trove';
  const code: ErrorCodeValue = error.code;
  const known = error as ConflictError | InvalidArgumentError | NotFoundError;
  // fixed: the code narrows a union of error classes.
  switch (known.code) {
    case 'TROVE_CONFLICT':
      return `${code}: ${known.kind} ${known.oid ?? ''}`;
    case 'TROVE_INVALID_ARGUMENT':
      return `${code}: ${known.argument ?? ''}`;
    default:
      return known.message;
  }
}

export function errorsByGuard(error: unknown): string {
  // fixed (found by a hunt): a check of the code narrows once isTroveError has said it is one.
  if (!isTroveError(error)) return 'not trove';
  switch (error.code) {
    case 'TROVE_CONFLICT':
      return `${error.kind} ${error.oid ?? ''}`;
    case 'TROVE_CORRUPTION':
      return `${error.path ?? ''} ${error.offset ?? ''}`;
    case 'TROVE_INTEGRITY':
      return String(error.failures.length);
    case 'TROVE_IO':
      return error.systemCode ?? '';
    default:
      return error.message;
  }
}

export function integrity(failure: IntegrityFailure): string {
  // fixed: the kinds trove reports are listed (and others may come).
  const listed: Is<Extract<IntegrityFailure['kind'], 'dangling-ref'>, 'dangling-ref'> = true;
  const later: IntegrityFailure['kind'] = 'a-kind-of-a-later-version';
  void [listed, later];
  return failure.kind === 'checksum' ? `at ${failure.offset ?? '?'}` : failure.detail;
}

export function broken(value: unknown): unknown {
  // fixed: a Broken object's stored attributes can be read.
  if (value instanceof Broken) return [value.brokenClassName, value.title];
  return undefined;
}

// Fixed in review: an options type users extend, options built from variables, the brand
// kept by mapped types, and what getObject returns taken where a persistent object is.
export interface AppOptions extends OpenFileOptions {
  appName?: string;
}
export function openFrom(path: string, at: number | undefined, readOnly: boolean) {
  return open(path, { at, readOnly });
}
export function oidOfReadonly(user: Readonly<User>): number | undefined {
  return oidOf(user);
}
export async function guardObject(db: Database, oid: number): Promise<void> {
  await db.transaction((tx) => {
    const read = tx.getObject(oid);
    tx.readCurrent(read);
  });
  const got = db.getObject(oid);
  void oidOf(got);
}
export function openEither(target: string | { storage: MemoryStorage }) {
  return open(target);
}
