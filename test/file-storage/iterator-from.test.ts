/**
 * `storage.iterator(fromTid)` on a file: it gives every transaction from that tid on, as an
 * iteration of the whole log filtered by tid would, and it starts near that tid instead of
 * at the log's start (found by the scale hunt: a consumer that polled for what is new read
 * the whole log each time, a third of a second at 200,000 commits, before its first item).
 */
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { describe, it } from 'node:test';
import { FileStorage, type TransactionRecord } from 'trove';
import { commit, put } from '../storage/storage-assertions.js';
import { scratch } from './support/temp-dir.js';

async function tidsOf(iteration: AsyncIterable<TransactionRecord>): Promise<number[]> {
  const tids: number[] = [];
  for await (const tx of iteration) tids.push(tx.tid);
  return tids;
}

/** Commits `count` transactions of about 20 kB each (a mebibyte of log every 50). */
async function commitMany(storage: FileStorage, count: number): Promise<void> {
  const [oid] = await storage.newOids(1);
  let tid = 0;
  for (let i = 0; i < count; i++) {
    tid = await commit(storage, [put(oid!, `${i}:`.padEnd(20_000, 'x'), tid)]);
  }
}

describe('storage.iterator(fromTid) on a file', () => {
  it('gives what a whole iteration from that tid gives, for every tid of the log', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const first = await FileStorage.open(path, { durability: 'none' });
    await commitMany(first, 120); // read back from the saved index at the next open
    await first.close();
    const storage = dir.track(await FileStorage.open(path, { durability: 'none' }));
    await commitMany(storage, 150); // read as this handle writes them
    const all = await tidsOf(storage.iterator());
    assert.equal(all.length, 270); // the commits (oid reservations hold no records)
    const probes = [0, 1, all[0]!, all[0]! + 1, ...all.filter((_, i) => i % 7 === 0)];
    probes.push(all.at(-1)!, all.at(-1)! + 1, Number.MAX_SAFE_INTEGER);
    for (const fromTid of probes) {
      assert.deepEqual(
        await tidsOf(storage.iterator(fromTid)),
        all.filter((tid) => tid >= fromTid),
        `from ${fromTid}`,
      );
    }
  });

  it('reads from near the tid it is given, not from the start of the log', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const first = await FileStorage.open(path, { durability: 'none' });
    await commitMany(first, 250); // 5 MB of log, covered by the saved index
    await first.close();
    const storage = dir.track(await FileStorage.open(path, { durability: 'none' }));
    await commitMany(storage, 100); // 2 MB more, as this handle writes them
    const last = (await tidsOf(storage.iterator())).at(-1)!;
    const nodeFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const readSync = nodeFs.readSync;
    let bytesRead = 0;
    nodeFs.readSync = ((...args: unknown[]) => {
      const read = (readSync as (...all: unknown[]) => number)(...args);
      bytesRead += read;
      return read;
    }) as typeof readSync;
    syncBuiltinESMExports();
    try {
      assert.deepEqual(await tidsOf(storage.iterator(last)), [last]);
    } finally {
      nodeFs.readSync = readSync;
      syncBuiltinESMExports();
    }
    // A mark a mebibyte apart at most before it; the whole log is 7 MB.
    assert.ok(bytesRead < 3 * 1024 * 1024, `${bytesRead} bytes read`);
  });
});
