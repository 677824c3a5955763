/**
 * close() and the operations under way when it is called, and operations started after it:
 * nothing reads or writes a file descriptor close() has given back (the number may belong to
 * another file by then), and nothing is left behind.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FileStorage } from 'trove';
import { scratch } from './support/temp-dir.js';

const quiet = { logger: () => undefined };

/** A storage with `count` one-object commits, each a record of its own. */
async function withCommits(path: string, count: number): Promise<FileStorage> {
  const storage = await FileStorage.open(path, quiet);
  const oids = await storage.newOids(count);
  for (const [i, oid] of oids.entries()) {
    await storage.commit({
      baseTid: storage.lastTid(),
      writes: [{ oid, data: new TextEncoder().encode(`record ${i}`), refs: [], expectedTid: 0 }],
    });
  }
  return storage;
}

describe('close and what is under way', () => {
  // Found in review: the blob was staged after close() had discarded the staged ones, and
  // its temporary file stayed on disk.
  it('a blob being staged when close() is called is discarded, and stageBlob fails with ClosedError', async (t) => {
    const dir = scratch(t);
    const storage = await FileStorage.open(dir.file(), quiet);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const staging = storage.stageBlob(
      (async function* () {
        yield new Uint8Array([1]);
        await gate;
        yield new Uint8Array([2]);
      })(),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    await storage.close();
    release();
    await assert.rejects(staging, { code: 'TROVE_CLOSED' });
    assert.deepEqual(
      readdirSync(dir.dir).filter((name) => name !== 'app.trove' && name !== 'app.trove.index'),
      [],
    );
  });

  // Found in review: an iterator's generator body runs from its first next(); after close()
  // it read the closed descriptor, or another file that had been given its number, and then
  // closed that file's descriptor.
  it('an iterator first advanced after close() fails with ClosedError', async (t) => {
    const dir = scratch(t);
    const storage = await withCommits(dir.file(), 3);
    const iterator = storage.iterator()[Symbol.asyncIterator]();
    await storage.close();
    const other = await withCommits(dir.file('other.trove'), 1);
    try {
      await assert.rejects(iterator.next(), { code: 'TROVE_CLOSED' });
      const [oid] = await other.newOids(1);
      await other.commit({
        baseTid: other.lastTid(),
        writes: [{ oid: oid!, data: new Uint8Array([7]), refs: [], expectedTid: 0 }],
      });
      assert.deepEqual([...other.load(oid!).data], [7], 'the other file works on');
    } finally {
      await other.close();
    }
  });

  // Found in review: records were read through the current file, at offsets of the file the
  // iterator had started on, which a pack had replaced.
  it('an iterator goes on reading the file it started on when a pack replaces it', async (t) => {
    const dir = scratch(t);
    const storage = await withCommits(dir.file(), 20);
    try {
      const expected: number[] = [];
      for await (const transaction of storage.iterator()) expected.push(transaction.tid);
      const iterator = storage.iterator()[Symbol.asyncIterator]();
      const seen: number[] = [];
      const first = await iterator.next();
      if (!first.done) seen.push(first.value.tid);
      await storage.pack();
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        seen.push(next.value.tid);
      }
      assert.deepEqual(seen, expected);
    } finally {
      await storage.close();
    }
  });
});
