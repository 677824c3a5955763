/**
 * The one error hierarchy of trove. Every error the library throws on purpose is a
 * {@link TroveError} with a stable `code`; programs branch on the code (or the class), never
 * on the message, which may be reworded between versions.
 *
 * @module
 */

/** The stable codes of trove's errors. */
export const ErrorCode = {
  notFound: 'TROVE_NOT_FOUND',
  conflict: 'TROVE_CONFLICT',
  busy: 'TROVE_BUSY',
  corruption: 'TROVE_CORRUPTION',
  integrity: 'TROVE_INTEGRITY',
  invalidArgument: 'TROVE_INVALID_ARGUMENT',
  closed: 'TROVE_CLOSED',
  readOnly: 'TROVE_READ_ONLY',
  io: 'TROVE_IO',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options shared by every trove error. */
export interface TroveErrorOptions {
  /** The lower-level error that caused this one, if any. */
  cause?: unknown;
}

/** The base class of every error trove throws on purpose. */
export class TroveError extends Error {
  /** A stable machine-readable code, for example `TROVE_CONFLICT`. */
  readonly code: ErrorCodeValue;

  /** An error with a stable `code` and a `message`; `options.cause` is what caused it. */
  constructor(code: ErrorCodeValue, message: string, options?: TroveErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    // Subclasses set their own name so stack traces and `console.log` say what failed.
    this.name = new.target.name;
  }
}

/** A requested object, record or blob content does not exist. */
export class NotFoundError extends TroveError {
  /** Always `TROVE_NOT_FOUND`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.notFound;

  /** An error saying `message`; `options.cause` is the error that caused it, if any. */
  constructor(message: string, options?: TroveErrorOptions) {
    super(ErrorCode.notFound, message, options);
  }
}

/** What a {@link ConflictError} says about the object it is about. */
export interface ConflictDetails extends TroveErrorOptions {
  /** The oid of the object that was changed by another transaction, if known. */
  oid?: number | undefined;
  /**
   * `write`: the object was written here and committed elsewhere since this transaction's
   * snapshot (also one guarded with `readCurrent` and written: it is not merged). `read`: an
   * object only read, guarded with `readCurrent`, was committed elsewhere.
   */
  kind?: 'write' | 'read' | undefined;
  /** The registered class name of the object, if known. */
  className?: string | undefined;
}

/**
 * Another transaction committed a change to an object this transaction changed (or guarded
 * with `readCurrent`) after this transaction's snapshot was taken, and the change could not be
 * resolved. Retrying the transaction on a fresh snapshot usually succeeds; `db.transaction`
 * does that by itself.
 */
export class ConflictError extends TroveError {
  /** Always `TROVE_CONFLICT`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.conflict;

  /** The oid of the conflicting object, if known. */
  readonly oid: number | undefined;
  /** Whether a written or a read-guarded object conflicted. */
  readonly kind: 'write' | 'read';
  /** The class name of the conflicting object, if known. */
  readonly className: string | undefined;

  /** A conflict saying `message`, about the object and change `details` name. */
  constructor(message: string, details: ConflictDetails = {}) {
    super(ErrorCode.conflict, message, details);
    this.oid = details.oid;
    this.kind = details.kind ?? 'write';
    this.className = details.className;
  }
}

/** A lock could not be taken in time, for example the writer lock of a shared file. */
export class BusyError extends TroveError {
  /** Always `TROVE_BUSY`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.busy;

  /** An error saying `message`; `options.cause` is the error that caused it, if any. */
  constructor(message: string, options?: TroveErrorOptions) {
    super(ErrorCode.busy, message, options);
  }
}

/** Where a {@link CorruptionError} was found. */
export interface CorruptionDetails extends TroveErrorOptions {
  /** The byte offset in the file where the damage was found. */
  offset?: number | undefined;
  /** The file that is damaged. */
  path?: string | undefined;
}

/**
 * Stored data failed a checksum or structure check. trove refuses to return data it cannot
 * vouch for, so reads of damaged records raise this instead of answering wrongly.
 */
export class CorruptionError extends TroveError {
  /** Always `TROVE_CORRUPTION`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.corruption;

  /** The byte offset of the damage, if known. */
  readonly offset: number | undefined;
  /** The damaged file, if known. */
  readonly path: string | undefined;

  /** Damage saying `message`, found where `details` says (offset and file). */
  constructor(message: string, details: CorruptionDetails = {}) {
    super(ErrorCode.corruption, message, details);
    this.offset = details.offset;
    this.path = details.path;
  }
}

/** One problem found by an integrity check. */
export interface IntegrityFailure {
  /**
   * What kind of problem: `checksum` (data that fails its checksum), `structure` (a
   * transaction that is not laid out as the format says, or whose tid is out of order),
   * `index` (the index disagrees with the log), `revision-chain` (a record's link to the
   * object's previous revision disagrees with the log), `dangling-ref` (a reference to an
   * object that has no record). Later versions may report other kinds too.
   */
  kind: 'checksum' | 'structure' | 'index' | 'revision-chain' | 'dangling-ref' | (string & {});
  /** The object concerned, if the problem is about one object. */
  oid?: number;
  /** The byte offset concerned, if the problem is at a place in a file. */
  offset?: number;
  /** A human-readable description. */
  detail: string;
}

/** An integrity check found problems; {@link IntegrityError.failures} lists them. */
export class IntegrityError extends TroveError {
  /** Always `TROVE_INTEGRITY`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.integrity;

  /** Every problem found. */
  readonly failures: readonly IntegrityFailure[];

  /** A failed integrity check saying `message`, with every failure it found. */
  constructor(message: string, failures: readonly IntegrityFailure[], options?: TroveErrorOptions) {
    super(ErrorCode.integrity, message, options);
    this.failures = failures;
  }
}

/** Where an {@link InvalidArgumentError} was found. */
export interface InvalidArgumentDetails extends TroveErrorOptions {
  /** The name of the argument that was wrong. */
  argument?: string | undefined;
  /** For a value that cannot be stored: the path from the root to it, like `root.users.ada.avatar`. */
  path?: string | undefined;
}

/**
 * The API was called with an argument of the wrong type or value, or asked to store a value
 * that cannot be stored. The message names the argument (or the path to the value) and what
 * was expected.
 */
export class InvalidArgumentError extends TroveError {
  /** Always `TROVE_INVALID_ARGUMENT`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.invalidArgument;

  /** The name of the wrong argument, if the error is about one. */
  readonly argument: string | undefined;
  /** The path to a value that cannot be stored, if the error is about one. */
  readonly path: string | undefined;

  /** A refusal saying `message`, of the argument (and the path in it) `details` name. */
  constructor(message: string, details: InvalidArgumentDetails = {}) {
    super(ErrorCode.invalidArgument, message, details);
    this.argument = details.argument;
    this.path = details.path;
  }
}

/** The database, connection, transaction or object was used after it was closed or ended. */
export class ClosedError extends TroveError {
  /** Always `TROVE_CLOSED`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.closed;

  /** An error saying `message`; `options.cause` is the error that caused it, if any. */
  constructor(message: string, options?: TroveErrorOptions) {
    super(ErrorCode.closed, message, options);
  }
}

/** A write was attempted through a read-only database, view or transaction. */
export class ReadOnlyError extends TroveError {
  /** Always `TROVE_READ_ONLY`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.readOnly;

  /** An error saying `message`; `options.cause` is the error that caused it, if any. */
  constructor(message: string, options?: TroveErrorOptions) {
    super(ErrorCode.readOnly, message, options);
  }
}

/**
 * The operating system refused an input or output operation (disk full, permission denied,
 * a failing device). The operation had no effect on the database; `cause` holds the system
 * error, whose `code` (for example `ENOSPC`) tells what happened.
 */
export class StorageIOError extends TroveError {
  /** Always `TROVE_IO`: typed as it, so that a check of `code` narrows. */
  declare readonly code: typeof ErrorCode.io;

  /** The system error code, for example `ENOSPC`, if there was one. */
  readonly systemCode: string | undefined;

  /** An error saying `message`; `options.cause` is the error that caused it, if any. */
  constructor(message: string, options?: TroveErrorOptions) {
    super(ErrorCode.io, message, options);
    const cause = options?.cause as { code?: unknown } | undefined;
    this.systemCode = typeof cause?.code === 'string' ? cause.code : undefined;
  }
}

/**
 * Every error class trove throws, as one union: once an error is known to be one of them
 * ({@link isTroveError}), a check of its `code` narrows it to its class (`TROVE_CONFLICT`
 * to a {@link ConflictError}, with its `oid` and `kind`), which a `TroveError` cannot do.
 */
export type AnyTroveError =
  | NotFoundError
  | ConflictError
  | BusyError
  | CorruptionError
  | IntegrityError
  | InvalidArgumentError
  | ClosedError
  | ReadOnlyError
  | StorageIOError;

/**
 * True for an error of one of trove's error classes (as trove throws on purpose); typed as
 * their union, so that `switch (error.code)` narrows each case to its class.
 */
export function isTroveError(value: unknown): value is AnyTroveError {
  // The classes, not their base: a TroveError made by the application with a code of its
  // choosing has none of the fields that code's class promises.
  return ERROR_CLASSES.some((cls) => value instanceof cls);
}

const ERROR_CLASSES = [
  NotFoundError,
  ConflictError,
  BusyError,
  CorruptionError,
  IntegrityError,
  InvalidArgumentError,
  ClosedError,
  ReadOnlyError,
  StorageIOError,
];
