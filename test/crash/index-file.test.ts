import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Database, open, PersistentList, PersistentMap } from 'trove';
import {
  closeQuietly,
  commits,
  type Dump,
  dump,
  flipBit,
  indexEntry,
  quiet,
  tempDir,
  transactions,
} from './support.js';

/** Commits `count` transactions of varied changes to the database at `path`. */
async function fill(path: string, count: number, tag: string): Promise<void> {
  const db = await open(path, { durability: 'none', logger: quiet });
  try {
    db.root.set('items', new PersistentList<PersistentMap<string, unknown>>());
    await db.commit();
    for (let i = 0; i < count; i++) {
      const items = db.root.get('items');
      items.push(
        new PersistentMap<string, unknown>([
          ['i', i],
          ['tag', tag],
        ]),
      );
      if (i % 3 === 0 && i > 0) items.at(i - 1).set('touched', i);
      db.root.set('last', i);
      await db.commit();
    }
  } finally {
    await db.close();
  }
}

describe('the index file is a cache: a bad one is rebuilt and the data is the same', () => {
  const dir = tempDir();
  const source = join(dir.path, 'source.trove');
  const otherSource = join(dir.path, 'other.trove');
  let bytes: Buffer;
  let index: Buffer;
  let expected: Dump;
  let copies = 0;

  before(async () => {
    await fill(source, 40, 'source');
    await fill(otherSource, 55, 'other');
    bytes = fs.readFileSync(source);
    index = fs.readFileSync(`${source}.index`);
    const db = await open(source, { readOnly: true, logger: quiet });
    expected = await dump(db.storage);
    await db.close();
    assert.equal(expected.transactions.length, 42, 'root creation, list, 40 commits');
  });

  after(() => dir.remove());

  /** A copy of the source database whose index file `prepare` sets up. */
  function copy(prepare: (indexPath: string) => void): string {
    const path = join(dir.path, `copy-${++copies}.trove`);
    fs.writeFileSync(path, bytes);
    fs.writeFileSync(`${path}.index`, index);
    prepare(`${path}.index`);
    return path;
  }

  /** Opens the copy (writable and read-only): same data as the source, integrity ok. */
  async function assertSameData(path: string): Promise<void> {
    for (const readOnly of [true, false]) {
      let db: Database | undefined;
      try {
        db = await open(path, { readOnly, durability: 'none', logger: quiet });
        assert.deepEqual(await dump(db.storage), expected);
        assert.equal(db.root.get('last'), 39);
        assert.equal(db.root.get('items').at(38).get('touched'), 39);
        assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
      } finally {
        await closeQuietly(db);
      }
    }
    // The writable open's clean close saved a good index again: it loads and agrees.
    assert.ok(fs.existsSync(`${path}.index`));
    const db = await open(path, { readOnly: true, logger: quiet });
    try {
      assert.deepEqual(await dump(db.storage), expected);
      assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await db.close();
    }
  }

  it('a valid index', async () => {
    await assertSameData(copy(() => undefined));
  });

  it('a deleted index', async () => {
    await assertSameData(copy((indexPath) => fs.rmSync(indexPath)));
  });

  it('a corrupted index: a flipped bit in its header, its page numbers, an offset, a tid', async () => {
    const entry = indexEntry(index, 3);
    for (const offset of [0, 9, 17, 25, 33, 41, 49, 57, 61, 64, entry.offset + 2, entry.tid + 5]) {
      await assertSameData(
        copy((indexPath) => {
          const damaged = Buffer.from(index);
          damaged[offset]! ^= 0x10;
          fs.writeFileSync(indexPath, damaged);
        }),
      );
    }
  });

  it('a truncated index, at several lengths', async () => {
    for (const length of [0, 1, 63, 64, 65, Math.floor(index.length / 2), index.length - 1]) {
      await assertSameData(copy((indexPath) => fs.truncateSync(indexPath, length)));
    }
  });

  it('an index with bytes appended', async () => {
    await assertSameData(copy((indexPath) => fs.appendFileSync(indexPath, Buffer.alloc(16))));
  });

  it('the index of another database file', async () => {
    await assertSameData(copy((indexPath) => fs.copyFileSync(`${otherSource}.index`, indexPath)));
  });

  it('the index of a copy of this file that went its own way (same generation)', async () => {
    // A plain file copy keeps the header, so both files have the same generation. The fork
    // starts from the first half of the log and commits different things after it.
    const fork = join(dir.path, 'fork.trove');
    fs.writeFileSync(fork, bytes.subarray(0, transactions(source)[22]!.offset));
    const db = await open(fork, { durability: 'none', logger: quiet });
    for (let i = 0; i < 12; i++) {
      db.root.get('items').at(i).set('forked', true);
      db.root.set('last', 1000 + i);
      await db.commit();
    }
    await db.close();
    assert.ok(fs.statSync(fork).size <= bytes.length);
    await assertSameData(copy((indexPath) => fs.copyFileSync(`${fork}.index`, indexPath)));
  });

  it('an index saved before later commits (it covers a prefix): the tail is read', async () => {
    const path = join(dir.path, 'prefix.trove');
    fs.writeFileSync(path, bytes);
    fs.writeFileSync(`${path}.index`, index);
    const db = await open(path, { durability: 'none', logger: quiet });
    const saved = fs.readFileSync(`${path}.index`);
    db.root.set('last', 'after the index');
    db.root.get('items').push(new PersistentMap([['i', 'new']]));
    await db.commit();
    const more = await dump(db.storage);
    await db.close();
    fs.writeFileSync(`${path}.index`, saved);
    for (const readOnly of [true, false]) {
      const reopened = await open(path, { readOnly, durability: 'none', logger: quiet });
      try {
        assert.deepEqual(await dump(reopened.storage), more);
        assert.equal(reopened.root.get('last'), 'after the index');
        assert.deepEqual(await reopened.integrityCheck(), { ok: true, failures: [] });
      } finally {
        await reopened.close();
      }
    }
  });

  it('an index that covers more than the file has (the file was cut back)', async () => {
    const short = join(dir.path, 'short.trove');
    const cut = transactions(source)[20]!.offset;
    fs.writeFileSync(short, bytes.subarray(0, cut));
    const db = await open(short, { readOnly: true, logger: quiet });
    const shortDump = await dump(db.storage);
    await db.close();
    // The commits before the cut (oid reservations are transactions too, not iterated).
    const kept = commits(source).filter((tx) => tx.offset < cut).length;
    assert.ok(kept > 10 && kept < 20);
    assert.equal(shortDump.transactions.length, kept);
    // The source's index: same generation, but it covers 40 commits.
    fs.writeFileSync(`${short}.index`, index);
    for (const readOnly of [true, false]) {
      const reopened = await open(short, { readOnly, durability: 'none', logger: quiet });
      try {
        assert.deepEqual(await dump(reopened.storage), shortDump);
        assert.deepEqual(await reopened.integrityCheck(), { ok: true, failures: [] });
      } finally {
        await reopened.close();
      }
    }
  });
});

// Since the index records the checksum of the last transaction it covers, a stored checksum
// damaged while the file was closed made the index look like another file's: the open read
// the whole log instead, took the last commit for a torn tail and cut it off.
describe('the stored checksum of the last transaction, damaged while the file was closed', () => {
  const dir = tempDir();
  after(() => dir.remove());

  /**
   * Reads the whole log, without the index: the damaged commit (its checksum rewritten) and
   * the one made after it are there, and the file is intact. (Left damaged, it is refused as
   * damage in the middle; taken for a torn tail, it would be cut off.)
   */
  async function assertWholeWithoutIndex(path: string): Promise<void> {
    fs.rmSync(`${path}.index`);
    const again = await open(path, { readOnly: true, logger: quiet });
    try {
      assert.equal(again.root.get('last'), 4);
      assert.equal(again.root.get('after'), 'a commit after it');
      assert.deepEqual(await again.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await again.close();
    }
  }

  for (const readOnly of [false, true]) {
    it(`${readOnly ? 'a read-only open' : 'an open'} uses the index and keeps the commit${readOnly ? '' : '; its next commit rewrites the checksum'}`, async () => {
      const path = join(dir.path, `damaged-checksum-${readOnly}.trove`);
      await fill(path, 5, 'checksum');
      const last = commits(path).at(-1)!;
      // The first byte of its trailer's checksum.
      flipBit(path, last.offset + last.length - 12, 3);
      const damaged = fs.readFileSync(path);
      const logged: string[] = [];
      const db = await open(path, { readOnly, logger: (message) => logged.push(message) });
      try {
        assert.equal(db.root.get('last'), 4, 'the last commit is there');
        if (!readOnly) {
          db.root.set('after', 'a commit after it');
          await db.commit();
        }
        assert.ok(logged.length > 0, 'the damage was reported');
      } finally {
        await db.close();
      }
      if (readOnly) {
        assert.ok(fs.readFileSync(path).equals(damaged), 'a read-only open changed nothing');
      } else {
        await assertWholeWithoutIndex(path);
      }
    });
  }

  // Found in review: a handle that found the damage saved an index before any writer had
  // rewritten the checksum, recording the damaged one; the next handle took the index as
  // matching, never saw the damage, and committed after it: without the index, the file
  // was refused.
  it('an index saved before a writer rewrote it: the next writer still rewrites it', async () => {
    const path = join(dir.path, 'damaged-then-checkpoint.trove');
    await fill(path, 5, 'checkpoint');
    // Its process may die without closing it (a close would rewrite the checksum itself).
    const first = await open(path, { logger: quiet });
    try {
      const last = commits(path).at(-1)!;
      flipBit(path, last.offset + last.length - 12, 3);
      // Reads the log's end (finds the damage) and saves an index; rewrites nothing.
      await first.checkpoint();
      const second = await open(path, { logger: quiet });
      try {
        second.root.set('after', 'a commit after it');
        await second.commit();
      } finally {
        await second.close();
      }
      await assertWholeWithoutIndex(path);
    } finally {
      await first.close();
    }
  });
});
