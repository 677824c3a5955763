/**
 * Helpers shared by the crash-safety and recovery tests: temporary directories, access to
 * FileStorage internals (byte layout, log reader, the file-operations seam), and a full
 * dump of a database to compare two opens of it.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Database, FileStorage, type FileStorageOptions, type Storage } from 'trove';
import type * as FileOpsModule from '../../dist/storage/file/file-ops.js';
import type * as FormatModule from '../../dist/storage/file/format.js';
import type * as LogReaderModule from '../../dist/storage/file/log-reader.js';
import type * as OpenFileModule from '../../dist/storage/file/open-file.js';
import type * as RecoveryModule from '../../dist/storage/file/recovery.js';
import type * as TemporaryFilesModule from '../../dist/storage/file/temporary-files.js';
import type * as TxBuilderModule from '../../dist/storage/file/tx-builder.js';
import type * as WriterLockModule from '../../dist/storage/file/writer-lock.js';

// Tests run from build/test/crash/, the package from dist/: internal modules are loaded by
// their place in the built package (the types come from the same files at compile time).
const dist = new URL('../../../dist/', import.meta.url);
const internal = <T>(path: string): Promise<T> => import(new URL(path, dist).href);

export const format = await internal<typeof FormatModule>('storage/file/format.js');
export const logReader = await internal<typeof LogReaderModule>('storage/file/log-reader.js');
export const fileOps = await internal<typeof FileOpsModule>('storage/file/file-ops.js');
export const recovery = await internal<typeof RecoveryModule>('storage/file/recovery.js');
export const txBuilder = await internal<typeof TxBuilderModule>('storage/file/tx-builder.js');
export const openFile = await internal<typeof OpenFileModule>('storage/file/open-file.js');
export const writerLock = await internal<typeof WriterLockModule>('storage/file/writer-lock.js');
export const temporaryFiles = await internal<typeof TemporaryFilesModule>(
  'storage/file/temporary-files.js',
);
export type FileOps = FileOpsModule.FileOps;
export type ScannedTransaction = LogReaderModule.ScannedTransaction;
export type ScanProblem = LogReaderModule.ScanProblem;

/** A fresh temporary directory; `remove()` deletes it with everything in it. */
export function tempDir(prefix = 'trove-crash-'): { path: string; remove: () => void } {
  // Its real path, as descriptors' paths are (/proc/self/fd), whatever TMPDIR goes through.
  const path = fs.realpathSync(fs.mkdtempSync(join(os.tmpdir(), prefix)));
  return { path, remove: () => fs.rmSync(path, { recursive: true, force: true }) };
}

/**
 * Opens a FileStorage with internal options (`fileOps`, `clock`), which the public types
 * omit.
 */
export function openFileStorage(
  path: string,
  options: FileStorageOptions & { fileOps?: FileOps; clock?: () => number },
): Promise<FileStorage> {
  return (FileStorage.open as (path: string, options: object) => Promise<FileStorage>)(
    path,
    options,
  );
}

/** Every valid transaction of a data file, in order (stops at the first invalid one). */
export function transactions(path: string): ScannedTransaction[] {
  const fd = fs.openSync(path, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const reader = new logReader.LogReader(fd);
    const found: ScannedTransaction[] = [];
    for (let offset = format.FILE_HEADER_SIZE; offset < size; ) {
      const tx = reader.readTransaction(offset, size);
      if (!logReader.isTransaction(tx)) break;
      found.push(tx);
      offset += tx.length;
    }
    return found;
  } finally {
    fs.closeSync(fd);
  }
}

/** The committed transactions (those with records: not oid reservations). */
export function commits(path: string): ScannedTransaction[] {
  return transactions(path).filter((tx) => tx.status === format.TxStatus.committed);
}

/** Where the log of a data file ends: after its last valid transaction. */
export function logEnd(path: string): number {
  const last = transactions(path).at(-1);
  return last === undefined ? format.FILE_HEADER_SIZE : last.offset + last.length;
}

/**
 * The bytes but for the zeros at their end. What a torn file keeps of the bytes it cuts off,
 * and what stays of a data file when its preallocated space (zeros) is disregarded.
 */
export function withoutTrailingZeros(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return bytes.subarray(0, end);
}

/** Where the data of a file ends: after its last byte that is not zero. */
export function dataEnd(path: string): number {
  return withoutTrailingZeros(fs.readFileSync(path)).length;
}

/**
 * Asserts the log of the file ends at `end` with only zeros (preallocated space) after it:
 * nothing of a failed write stayed.
 */
export function assertLogEndsAt(path: string, end: number, message: string): void {
  assert.equal(logEnd(path), end, message);
  assert.ok(dataEnd(path) <= end, `${message}: only zeros after the log`);
}

/** Real file operations that count the syncs (`syncs`). */
export function countingSyncs(): { ops: FileOps; syncs: number } {
  const counter = {
    syncs: 0,
    ops: {
      ...fileOps.nodeFileOps,
      sync: (fd: number, onCallingThread?: boolean) => {
        counter.syncs++;
        return fileOps.nodeFileOps.sync(fd, onCallingThread);
      },
    } as FileOps,
  };
  return counter;
}

/** Overwrites bytes [from, to) of a data file with zeros and removes its index file. */
export function zeroRange(path: string, from: number, to: number): void {
  const fd = fs.openSync(path, 'r+');
  try {
    fs.writeSync(fd, Buffer.alloc(to - from), 0, to - from, from);
  } finally {
    fs.closeSync(fd);
  }
  fs.rmSync(`${path}.index`, { force: true });
}

/** Flips bit `bit` of the byte at `offset` of the file. */
export function flipBit(path: string, offset: number, bit: number): void {
  const fd = fs.openSync(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, offset);
    byte[0]! ^= 1 << bit;
    fs.writeSync(fd, byte, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Oids in a page of the index file (docs/format.md, The index file). */
export const INDEX_PAGE_OIDS = 1024;

/**
 * Where the bytes of an index file (docs/format.md, The index file) hold `oid`'s offset and
 * tid; throws if the file has no page for it.
 */
export function indexEntry(index: Buffer, oid: number): { offset: number; tid: number } {
  const pages = Number(index.readBigUInt64LE(48));
  const number = Math.floor(oid / INDEX_PAGE_OIDS);
  for (let i = 0; i < pages; i++) {
    if (index.readUInt32LE(64 + 4 * i) !== number) continue;
    const slot = 64 + 4 * pages + i * INDEX_PAGE_OIDS * 16 + 8 * (oid % INDEX_PAGE_OIDS);
    return { offset: slot, tid: slot + INDEX_PAGE_OIDS * 8 };
  }
  throw new Error(`the index file has no page for oid ${oid}`);
}

/** The `<path>.torn-<n>` files beside a data file, sorted by n. */
export function tornFiles(path: string): string[] {
  const dir = join(path, '..');
  const base = path.slice(dir.length + 1);
  return fs
    .readdirSync(dir)
    .filter((name) => name.startsWith(`${base}.torn-`))
    .sort((a, b) => Number(a.slice(base.length + 6)) - Number(b.slice(base.length + 6)))
    .map((name) => join(dir, name));
}

/** What a storage holds, in full: every transaction's records, and each object's newest state. */
export interface Dump {
  readonly lastTid: number;
  readonly transactions: Array<{ tid: number; records: string[] }>;
  readonly objects: Record<number, string>;
}

function describeRecord(record: {
  oid: number;
  tid: number;
  data: Uint8Array;
  refs: readonly number[];
}): string {
  return `${record.oid}@${record.tid} [${record.refs.join(',')}] ${Buffer.from(record.data).toString('hex')}`;
}

/** Reads everything a storage holds, through its public reading API. */
export async function dump(storage: Storage): Promise<Dump> {
  const txs: Dump['transactions'] = [];
  const oids = new Set<number>();
  for await (const tx of storage.iterator()) {
    txs.push({ tid: tx.tid, records: tx.records.map(describeRecord) });
    for (const record of tx.records) oids.add(record.oid);
  }
  const objects: Record<number, string> = {};
  for (const oid of [...oids].sort((a, b) => a - b))
    objects[oid] = describeRecord(storage.load(oid));
  return { lastTid: storage.lastTid(), transactions: txs, objects };
}

/** Runs `fn` and returns what it threw (fails if it did not throw). */
export async function rejection(fn: () => unknown): Promise<any> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, but the operation succeeded');
}

/** Closes a database, ignoring errors (cleanup after a failed assertion). */
export async function closeQuietly(db: Database | undefined): Promise<void> {
  try {
    await db?.close();
  } catch {
    // already reported by the test
  }
}

/** A logger that keeps recovery messages out of the test output. */
export const quiet = (): void => undefined;

/** A promise with its resolve function, for tests that hold an operation at a point. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A child process running a script of this directory, with its stdout read line by line. */
export class Child {
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #partial = '';
  #waiters: Array<() => void> = [];

  constructor(script: string, args: string[]) {
    this.process = spawn(
      process.execPath,
      [fileURLToPath(new URL(script, import.meta.url)), ...args],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    this.process.stdout!.setEncoding('utf8');
    this.process.stdout!.on('data', (text: string) => {
      const parts = (this.#partial + text).split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => {
        for (const wake of this.#waiters.splice(0)) wake();
        resolve({ code, signal });
      });
    });
  }

  /** Resolves once a line satisfies `test`; rejects if the child exits first. */
  async waitFor(test: (line: string) => boolean): Promise<string> {
    for (;;) {
      const found = this.lines.find(test);
      if (found !== undefined) return found;
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        throw new Error(`the child exited (${this.process.exitCode ?? this.process.signalCode})`);
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Kills the child with SIGKILL and waits until it is gone. */
  async kill(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGKILL');
    }
    await this.exited;
  }
}
