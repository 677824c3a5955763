import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from 'trove';
import { format, logEnd, openFileStorage, tempDir, transactions } from '../crash/support.js';
import { commit, put } from '../storage/storage-assertions.js';

/** The data file offset the saved index covers (its header's u64 at byte 24). */
function coveredOffset(path: string): number {
  return format.readU64(fs.readFileSync(`${path}.index`), 24);
}

/** Opens `path`, sets the root's `key` to `value`, and closes it. */
async function commitOnce(path: string, key: string, value: unknown): Promise<void> {
  const db = await open(path, { progress: false });
  try {
    await db.transaction((tx) => {
      tx.root.set(key, value);
    });
  } finally {
    await db.close();
  }
}

/** The root's `key`, read by a fresh open. */
async function readBack(path: string, key: string): Promise<unknown> {
  const db = await open(path, { readOnly: true, progress: false });
  try {
    return await db.read((tx) => tx.root.get(key));
  } finally {
    await db.close();
  }
}

describe('the index saved at close', () => {
  const dir = tempDir('trove-index-close-');
  after(() => dir.remove());

  it('is saved at the first close, and left as it is while little of the log follows it', async () => {
    const path = join(dir.path, 'little.trove');
    await commitOnce(path, 'n', 0);
    assert.equal(coveredOffset(path), logEnd(path), 'the first close saves it');
    const saved = fs.readFileSync(`${path}.index`);
    for (let n = 1; n <= 5; n++) await commitOnce(path, 'n', n);
    assert.ok(logEnd(path) > coveredOffset(path));
    assert.ok(fs.readFileSync(`${path}.index`).equals(saved), 'not written again');
    // The next open reads the log after what the index covers.
    assert.equal(await readBack(path, 'n'), 5);
  });

  it('is saved again once the log after it is longer than 1 MiB', async () => {
    const path = join(dir.path, 'long-tail.trove');
    await commitOnce(path, 'n', 0);
    const first = coveredOffset(path);
    await commitOnce(path, 'big', 'x'.repeat(1024 * 1024));
    assert.ok(coveredOffset(path) > first);
    assert.equal(coveredOffset(path), logEnd(path));
    assert.equal(((await readBack(path, 'big')) as string).length, 1024 * 1024);
  });

  it('of a large database is left as it is while the log after it is under a quarter of its size', async () => {
    const path = join(dir.path, 'large.trove');
    // An object in each page of 1,024 oids up to oid 300,000 makes an index of 293 pages:
    // 4.8 MB, a quarter 1.2 MB.
    let storage = await openFileStorage(path, {});
    const oids = await storage.newOids(300_000);
    const high = oids.at(-1)!;
    assert.equal(high, 300_000);
    const spread = oids.filter((oid) => oid % 1024 === 1 || oid === high);
    await commit(
      storage,
      spread.map((oid) => put(oid, 'one')),
    );
    await storage.close();
    const saved = fs.readFileSync(`${path}.index`);
    assert.equal(saved.length, 64 + 293 * (4 + 1024 * 16));
    const commitAndClose = async (bytes: number) => {
      storage = await openFileStorage(path, {});
      await commit(storage, [put(high, 'x'.repeat(bytes), storage.lastTid())]);
      await storage.close();
    };
    await commitAndClose(1100 * 1024);
    assert.ok(logEnd(path) - coveredOffset(path) > 1024 * 1024, 'more than 1 MiB after it');
    assert.ok(fs.readFileSync(`${path}.index`).equals(saved), 'left as it is');
    await commitAndClose(200 * 1024);
    assert.equal(coveredOffset(path), logEnd(path), 'saved once past a quarter');
  });

  it('is saved when the saved one could not be used at open (damaged entries)', async () => {
    const path = join(dir.path, 'damaged.trove');
    await commitOnce(path, 'n', 0);
    await commitOnce(path, 'n', 1);
    // Flip a byte of the entries: the header still reads well, the entries' checksum fails.
    const damaged = fs.readFileSync(`${path}.index`);
    damaged[64] = damaged[64]! ^ 0xff;
    fs.writeFileSync(`${path}.index`, damaged);
    await commitOnce(path, 'n', 2);
    assert.ok(!fs.readFileSync(`${path}.index`).equals(damaged), 'replaced');
    assert.equal(coveredOffset(path), logEnd(path));
    assert.equal(await readBack(path, 'n'), 2);
  });

  it('is not saved again at close after a checkpoint saved it', async () => {
    const path = join(dir.path, 'checkpointed.trove');
    await commitOnce(path, 'n', 0);
    fs.rmSync(`${path}.index`);
    const db = await open(path, { progress: false });
    try {
      await db.transaction((tx) => {
        tx.root.set('n', 1);
      });
      await db.checkpoint();
    } finally {
      // A save writes a new file and renames it into place: a new inode.
      const checkpointed = fs.statSync(`${path}.index`).ino;
      await db.close();
      assert.equal(fs.statSync(`${path}.index`).ino, checkpointed, 'close left it');
    }
  });

  it("is saved when the saved one belongs to another file or reaches past this file's log", async () => {
    const a = join(dir.path, 'a.trove');
    const b = join(dir.path, 'b.trove');
    await commitOnce(a, 'from', 'a');
    await commitOnce(b, 'from', 'b');
    // Another file's index (another generation) in b's place.
    fs.copyFileSync(`${a}.index`, `${b}.index`);
    await commitOnce(b, 'n', 1);
    assert.ok(!fs.readFileSync(`${b}.index`).equals(fs.readFileSync(`${a}.index`)));
    assert.equal(coveredOffset(b), logEnd(b));

    // b cut back to an earlier transaction's end (as a backup is a prefix), under an index
    // that covers more: the next close saves one that fits the log.
    await commitOnce(b, 'n', 2);
    await commitOnce(b, 'big', 'x'.repeat(2 * 1024 * 1024));
    const cut = transactions(b).at(-2)!;
    fs.truncateSync(b, cut.offset + cut.length);
    assert.ok(coveredOffset(b) > logEnd(b));
    await commitOnce(b, 'n', 3);
    assert.equal(coveredOffset(b), logEnd(b));
    assert.equal(await readBack(b, 'n'), 3);
    assert.equal(await readBack(b, 'big'), undefined);
  });
});
