import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BusyError,
  ClosedError,
  ConflictError,
  CorruptionError,
  ErrorCode,
  IntegrityError,
  InvalidArgumentError,
  isTroveError,
  NotFoundError,
  ReadOnlyError,
  StorageIOError,
  TroveError,
} from 'trove';

describe('error hierarchy', () => {
  const cases: Array<[TroveError, string]> = [
    [new NotFoundError('x'), 'TROVE_NOT_FOUND'],
    [new ConflictError('x'), 'TROVE_CONFLICT'],
    [new BusyError('x'), 'TROVE_BUSY'],
    [new CorruptionError('x'), 'TROVE_CORRUPTION'],
    [new IntegrityError('x', []), 'TROVE_INTEGRITY'],
    [new InvalidArgumentError('x'), 'TROVE_INVALID_ARGUMENT'],
    [new ClosedError('x'), 'TROVE_CLOSED'],
    [new ReadOnlyError('x'), 'TROVE_READ_ONLY'],
    [
      new StorageIOError('x', { cause: Object.assign(new Error('disk'), { code: 'ENOSPC' }) }),
      'TROVE_IO',
    ],
  ];

  for (const [error, code] of cases) {
    it(`${error.name} has code ${code} and is a TroveError`, () => {
      assert.ok(error instanceof TroveError);
      assert.ok(error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.name, error.constructor.name);
    });
  }

  it('isTroveError is true for an error of each class, false for anything else', () => {
    for (const [error] of cases) assert.equal(isTroveError(error), true, error.name);
    // A TroveError made with a code of the application's choosing has none of its class's
    // fields: it is not one of trove's errors.
    for (const other of [
      new TroveError('TROVE_INTEGRITY', 'made by hand'),
      new Error('x'),
      Object.assign(new Error('x'), { code: 'TROVE_CONFLICT' }),
      { code: 'TROVE_CONFLICT' },
      undefined,
      null,
      'TROVE_CONFLICT',
    ]) {
      assert.equal(isTroveError(other), false, String(other));
    }
  });

  it('lists every code in ErrorCode exactly once', () => {
    const codes = Object.values(ErrorCode);
    assert.equal(new Set(codes).size, codes.length);
    assert.deepEqual(new Set(cases.map(([, code]) => code)), new Set(codes));
  });

  it('keeps the system error code of an I/O failure', () => {
    const error = new StorageIOError('write failed', {
      cause: Object.assign(new Error('no space'), { code: 'ENOSPC' }),
    });
    assert.equal(error.systemCode, 'ENOSPC');
  });
});
