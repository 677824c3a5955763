/**
 * Blobs on FileStorage: bytes and streams round trip (through reopen, pack and backup), a
 * 1 GiB blob is streamed in and out in bounded memory, and a Blob cannot be changed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, statfsSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  Blob,
  type Database,
  MemoryStorage,
  oidOf,
  open,
  Persistent,
  PersistentMap,
  registerClass,
} from 'trove';
import { commits } from '../crash/support.js';
import { finished, startPeer } from './support/peers.js';
import { scratch } from './support/temp-dir.js';

const GIGABYTE_BLOB = new URL('./children/gigabyte-blob.js', import.meta.url);
const MiB = 1024 * 1024;

/** Bytes in uneven chunks, as a stream delivers them. */
function chunksOf(bytes: Uint8Array, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < bytes.byteLength; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(Buffer.from(bytes.subarray(at, at + size)));
    at += size;
  }
  return chunks;
}

/** A class whose merge always fails, by throwing. */
class Unmergeable extends Persistent {
  v = 0;
  static resolveConflict(): never {
    throw new Error('cannot merge');
  }
}
registerClass(Unmergeable, 'blobs.Unmergeable');

async function contentOf(blob: Blob): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of blob.stream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// The garbage collector, to see staged bytes freed once nothing can store them.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Staged blobs' files (not the owner file each handle that staged keeps while open). */
const stagedFiles = (dir: string) =>
  readdirSync(dir).filter((name) => /\.blob-\d+-[0-9a-f]{12}-\d+$/.test(name));

const small = randomBytes(1000);
const large = randomBytes(3 * MiB + 17);

/** Stores blobs of bytes, of a stream, and an empty one; returns what each must hold. */
async function storeBlobs(db: Database): Promise<Record<string, Buffer>> {
  await db.transaction(
    (tx) => {
      const blobs = tx.root as PersistentMap<string, unknown>;
      blobs.set('bytes', Blob.from(small));
      blobs.set('stream', Blob.from(Readable.from(chunksOf(large, [MiB - 3, 5, 700_000]))));
      blobs.set('empty', Blob.from(new Uint8Array(0)));
    },
    { attempts: 1 },
  );
  return { bytes: small, stream: large, empty: Buffer.alloc(0) };
}

async function assertBlobs(db: Database, expected: Record<string, Buffer>): Promise<void> {
  await db.read(async (tx) => {
    for (const [key, bytes] of Object.entries(expected)) {
      const blob = tx.root.get(key) as Blob;
      assert.ok(blob instanceof Blob, key);
      assert.equal(blob.size, bytes.byteLength, key);
      assert.ok((await contentOf(blob)).equals(bytes), key);
    }
  });
}

async function assertIntact(db: Database): Promise<void> {
  const report = await db.integrityCheck();
  assert.deepEqual(report.failures, []);
  assert.equal(report.ok, true);
}

describe('blobs in a file', () => {
  it('round trip from bytes and from a stream, and through a reopen', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = await open(path, { durability: 'none' });
    const fromBytes = Blob.from(small);
    assert.equal(fromBytes.size, small.byteLength);
    assert.ok((await contentOf(fromBytes)).equals(small), 'an unsaved blob of bytes streams');
    const fromStream = Blob.from(Readable.from([Buffer.from('not yet')]));
    assert.throws(() => fromStream.size, { code: 'TROVE_INVALID_ARGUMENT' });

    const expected = await storeBlobs(db);
    await assertBlobs(db, expected);
    await assertIntact(db);
    await db.close();

    const again = dir.track(await open(path, { durability: 'none' }));
    await assertBlobs(again, expected);
    await assertIntact(again);
  });

  it('round trip through a pack (which drops replaced content) and a backup', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    const other = dir.track(await open(path, { durability: 'none' }));
    const expected = await storeBlobs(db);
    const replaced = randomBytes(2 * MiB);
    await db.transaction((tx) => {
      tx.root.set('replaced', Blob.from(replaced));
    });
    const next = randomBytes(1234);
    await db.transaction((tx) => {
      tx.root.set('replaced', Blob.from(next));
    });
    const all = { ...expected, replaced: next };

    const result = await db.pack();
    assert.equal(result.objectsRemoved, 2, 'the replaced Blob and its content');
    assert.ok(result.bytesAfter < result.bytesBefore - 2 * MiB);
    await assertBlobs(db, all);
    await assertBlobs(other, all);
    await assertIntact(db);

    const copy = dir.file('copy.trove');
    await db.backup(copy);
    const fromCopy = dir.track(await open(copy, { readOnly: true }));
    await assertBlobs(fromCopy, all);
    await assertIntact(fromCopy);
  });

  it('a blob stream opened before a pack reads to its end after the file was swapped', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    const content = randomBytes(8 * MiB);
    await db.transaction((tx) => {
      tx.root.set('blob', Blob.from(content));
    });
    const read = await db.read(async (tx) => {
      const stream = (tx.root.get('blob') as Blob).stream();
      const chunks: Buffer[] = [];
      let packed = false;
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        if (!packed) {
          packed = true;
          await db.pack();
        }
      }
      return Buffer.concat(chunks);
    });
    assert.ok(read.equals(content));
    await assertBlobs(db, { blob: content });
  });

  // Found by a bug hunt: a NotFoundError, where an object removed so is a read conflict.
  it('a blob a pack removed since the snapshot was taken is a read conflict, retried', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    const other = dir.track(await open(path, { durability: 'none' }));
    await db.transaction((tx) => {
      tx.root.set('blob', Blob.from(Buffer.from('gone soon')));
    });
    let attempts = 0;
    const read = await db.transaction(async (tx) => {
      attempts++;
      const blob = tx.root.get('blob') as Blob | undefined;
      if (attempts === 1) {
        await other.transaction((otherTx) => {
          otherTx.root.delete('blob');
        });
        await other.pack();
        // A start of another transaction of this handle follows the pack to the new file.
        await db.read(() => undefined);
      }
      return blob === undefined ? 'deleted' : (await contentOf(blob)).toString();
    });
    assert.equal(read, 'deleted');
    assert.equal(attempts, 2);
  });

  // Found by a bug hunt: each attempt of db.transaction that failed with a conflict left
  // its staged bytes (a temporary file) behind until the database closed.
  it('staged bytes of a conflicting attempt are freed once nothing can store them', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const other = dir.track(await open(dir.file(), { durability: 'none' }));
    await db.transaction((tx) => {
      tx.root.set('n', 0);
    });
    // A Blob made outside fn is the same in every attempt: its staged bytes stay while it
    // can still be stored, and the retry stores them.
    const kept = Blob.from(small);
    let attempts = 0;
    await db.transaction(async (tx) => {
      attempts++;
      tx.root.set('n', (tx.root.get('n') as number) + 1);
      tx.root.set('fresh', Blob.from(large));
      tx.root.set('kept', kept);
      if (attempts === 1) {
        await other.transaction((tx2) => {
          tx2.root.set('n', 10);
        });
      }
    });
    assert.equal(attempts, 2);
    for (let i = 0; i < 100 && stagedFiles(dir.dir).length > 0; i++) {
      collectGarbage();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(stagedFiles(dir.dir), []);
    await assertBlobs(db, { fresh: large, kept: small });
    assert.equal(await db.read((tx) => tx.root.get('n')), 11);
  });

  // Found by a bug hunt: the database kept the conflict that discarded the changes, and
  // with it (through its stack's frames) the blob, whose staged file stayed on disk.
  // (And, found in review, when the conflict came from a resolveConflict that threw: its
  // cause held the frames too.)
  for (const merge of ['none', 'a resolveConflict that throws'] as const) {
    it(`staged bytes of the default connection's commit that a conflict discarded are freed (${merge})`, async (t) => {
      const dir = scratch(t);
      const db = dir.track(await open(dir.file(), { durability: 'none' }));
      const other = dir.track(await open(dir.file(), { durability: 'none' }));
      db.root.set('n', 0);
      db.root.set('merged', new Unmergeable());
      await db.commit();
      other.abort(); // (to see the first commit)
      if (merge === 'none') {
        db.root.set('n', 1);
        other.root.set('n', 2);
      } else {
        (db.root.get('merged') as Unmergeable).v = 1;
        (other.root.get('merged') as Unmergeable).v = 2;
      }
      db.root.set('blob', Blob.from(Readable.from([large])));
      await other.commit();
      await assert.rejects(db.commit(), { code: 'TROVE_CONFLICT' });
      for (let i = 0; i < 100 && stagedFiles(dir.dir).length > 0; i++) {
        collectGarbage();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.deepEqual(stagedFiles(dir.dir), []);
    });
  }

  // Found in a bug hunt: the retry read the stream its first attempt had read to its end,
  // and stored an empty blob.
  it('a stream something read already is refused, as when an attempt run again passes it again', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const other = dir.track(await open(dir.file(), { durability: 'none' }));
    await db.transaction((tx) => {
      tx.root.set('n', 0);
    });
    const upload = Readable.from(chunksOf(large, [MiB]));
    let attempts = 0;
    const outcome = db.transaction(async (tx) => {
      attempts++;
      tx.root.set('n', (tx.root.get('n') as number) + 1);
      tx.root.set('upload', Blob.from(upload));
      if (attempts === 1) {
        await other.transaction((tx2) => {
          tx2.root.set('n', 10);
        });
      }
    });
    await assert.rejects(outcome, { code: 'TROVE_INVALID_ARGUMENT' });
    assert.equal(attempts, 2);
    assert.equal(await db.read((tx) => tx.root.get('upload')), undefined);
    // The same for generators and web streams, once a commit has read them.
    async function* generated() {
      yield Buffer.from('once');
    }
    function* generatedSync() {
      yield Buffer.from('once');
    }
    const sources = [
      generated(),
      generatedSync(),
      new ReadableStream({
        start(controller) {
          controller.enqueue(new Uint8Array([1]));
          controller.close();
        },
      }),
    ];
    for (const source of sources) {
      await db.transaction((tx) => {
        tx.root.set('once', Blob.from(source as never));
      });
      assert.throws(() => Blob.from(source as never), { code: 'TROVE_INVALID_ARGUMENT' });
    }
    // Bytes and arrays of chunks read the same every time.
    const chunks = [Buffer.from('again')];
    for (let i = 0; i < 2; i++) {
      await db.transaction((tx) => {
        tx.root.set(`again${i}`, Blob.from(chunks));
      });
    }
    const half = Readable.from(chunksOf(small, [100]));
    half.read();
    assert.throws(() => Blob.from(half), { code: 'TROVE_INVALID_ARGUMENT' });
    // Read after Blob.from, before the commit: refused when it is staged.
    const late = Readable.from(chunksOf(small, [100]));
    await assert.rejects(
      db.transaction(
        (tx) => {
          tx.root.set('late', Blob.from(late));
          late.read();
        },
        { attempts: 1 },
      ),
      { code: 'TROVE_INVALID_ARGUMENT' },
    );
  });

  it("a source that fails passes its own error on (the application's, not an I/O error); nothing stays staged", async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const aborted = Object.assign(new Error('client went away'), { code: 'UPLOAD_ABORTED' });
    async function* upload() {
      yield Buffer.from('part 1');
      throw aborted;
    }
    db.root.set('upload', Blob.from(upload()));
    await assert.rejects(db.commit(), (error) => error === aborted);
    assert.deepEqual(stagedFiles(dir.dir), []);
  });

  // Found in a bug hunt: every blob commit (and every transaction a pack keeping history
  // copies) allocated two 8 MiB buffers, whatever its size; half the time went to collecting them.
  it('a web stream round trips, in chunks of any size', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const content = randomBytes(300_000);
    const chunks = chunksOf(content, [70_000, 1, 65_536]);
    db.root.set(
      'web',
      Blob.from(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            const next = chunks.shift();
            if (next === undefined) controller.close();
            else controller.enqueue(next);
          },
        }),
      ),
    );
    await db.commit();
    assert.ok((await contentOf(db.root.get('web') as Blob)).equals(content));
  });

  it('a small blob is committed with buffers of its own size, not megabytes', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    let allocated = 0;
    const allocUnsafe = Buffer.allocUnsafe;
    Buffer.allocUnsafe = (size: number) => {
      allocated += size;
      return allocUnsafe(size);
    };
    try {
      for (let i = 0; i < 5; i++) {
        db.root.set(`blob${i}`, Blob.from(small));
        await db.commit();
      }
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
    assert.ok(allocated < MiB, `${allocated} bytes allocated for five 1 kB blobs`);
    assert.deepEqual(await (db.root.get('blob4') as Blob).bytes(), small);
  });

  // A commit opened every staged file of its transaction before writing any: a transaction of
  // more blobs than the process may have descriptors open failed with EMFILE.
  it("a commit of many blobs holds one staged blob's file open at a time", async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const contents = Array.from({ length: 40 }, (_, i) => Buffer.from(`blob ${i}`));
    const stagedOpen = () =>
      readdirSync('/proc/self/fd').filter((entry) => {
        try {
          return /\.blob-\d+-[0-9a-f]{12}-\d+$/.test(readlinkSync(`/proc/self/fd/${entry}`));
        } catch {
          return false; // gone since the listing (readdirSync's own descriptor)
        }
      }).length;
    /** The most staged blob files open at once, counted at each open of one to read it. */
    let mostOpen = 0;
    const nodeFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const openFile = nodeFs.openSync;
    nodeFs.openSync = ((...args: Parameters<typeof openFile>) => {
      const fd = openFile(...args);
      if (String(args[0]).includes('.blob-') && args[1] === 'r') {
        mostOpen = Math.max(mostOpen, stagedOpen());
      }
      return fd;
    }) as typeof openFile;
    syncBuiltinESMExports();
    try {
      contents.forEach((content, i) => {
        db.root.set(`blob${i}`, Blob.from(content));
      });
      await db.commit();
    } finally {
      nodeFs.openSync = openFile;
      syncBuiltinESMExports();
    }
    assert.equal(mostOpen, 1);
    for (const [i, content] of contents.entries()) {
      assert.deepEqual(await (db.root.get(`blob${i}`) as Blob).bytes(), content);
    }
    assert.deepEqual(stagedFiles(dir.dir), []);
  });

  // Found in bug hunts: a Blob made with new was stored as one of unknown size that never
  // loaded, then (refused at commit) still had a size of undefined and a misleading stream().
  it('a Blob cannot be made with new, which would give it no content', () => {
    // The constructor is protected, so `new Blob()` does not compile: called anyway.
    assert.throws(() => Reflect.construct(Blob, []), { code: 'TROVE_INVALID_ARGUMENT' });
    assert.equal(Blob.from(Buffer.from('x')).size, 1);
    const from = Blob.from; // unbound: a Blob
    assert.ok(from(Buffer.from('x')) instanceof Blob);
  });

  // Found in review: the refusal of new Blob() refused the constructor a class made by its
  // constructor when loaded runs, so such a stored blob could not be loaded.
  it('a subclass of Blob is made by from(), and loads, made by its constructor too', async (t) => {
    class Attachment extends Blob {
      readonly #kind = 'attachment';
      kind(): string {
        return this.#kind;
      }
    }
    registerClass(Attachment, 'blobs.Attachment', { constructOnLoad: true });
    const dir = scratch(t);
    const path = dir.file();
    const db = await open(path, { durability: 'none' });
    const made = Attachment.from(small);
    assert.ok(made instanceof Attachment);
    assert.throws(() => Reflect.construct(Attachment, []), { code: 'TROVE_INVALID_ARGUMENT' });
    db.root.set('attachment', made);
    await db.commit();
    await db.close();
    const again = dir.track(await open(path));
    const loaded = again.root.get('attachment') as Attachment;
    assert.equal(loaded.kind(), 'attachment');
    assert.deepEqual(await loaded.bytes(), small);
  });

  // Found in a bug hunt: a view decoded a blob's bytes as an object's state (a
  // CorruptionError, or an object made of the user's bytes when they parsed as one).
  it("a view of the past refuses to load a blob's content as an object, as the database does", async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    db.root.set('x', 1);
    await db.commit();
    const upload = Blob.from(db.storage.load(0).data); // bytes that parse as a record
    db.root.set('upload', upload);
    const tid = await db.commit();
    const byContent = db.storage.load(oidOf(upload)!).refs[0]!; // the blob's content
    assert.throws(() => db.storage.load(byContent), { code: 'TROVE_INVALID_ARGUMENT' });
    const view = dir.track(await open(path, { at: tid }));
    assert.throws(() => view.storage.load(byContent), { code: 'TROVE_INVALID_ARGUMENT' });
    assert.throws(() => view.getObject(byContent), { code: 'TROVE_INVALID_ARGUMENT' });
    assert.equal(view.storage.loadBefore(byContent, tid + 1)?.blob, true);
  });

  it('a Blob cannot be changed: writes raise TROVE_READ_ONLY', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const fresh = Blob.from(small) as unknown as Record<string, unknown>;
    assert.throws(
      () => {
        fresh.size = 1;
      },
      { code: 'TROVE_READ_ONLY' },
    );
    assert.throws(
      () => {
        fresh.extra = 1;
      },
      { code: 'TROVE_READ_ONLY' },
    );
    await db.transaction((tx) => {
      tx.root.set('blob', Blob.from(small));
    });
    await db.transaction((tx) => {
      const stored = tx.root.get('blob') as Record<string, unknown>;
      for (const key of Object.keys(stored)) {
        assert.throws(
          () => {
            stored[key] = 0;
          },
          { code: 'TROVE_READ_ONLY' },
          key,
        );
        assert.throws(
          () => {
            delete stored[key];
          },
          { code: 'TROVE_READ_ONLY' },
          key,
        );
      }
      assert.throws(
        () => {
          stored.extra = 1;
        },
        { code: 'TROVE_READ_ONLY' },
      );
    });
    assert.equal(db.stats().storage.objects, 3, 'the root, the Blob and its content');
    await assertBlobs(db, { blob: small });
  });

  // The bound is an eighth of the blob: held whole, it would grow by the blob's size. It was
  // 64 MiB, with 47 to 53 grown alone, and up to 71 when the machine was busy (collections
  // come later there): a failure that said nothing about streaming.
  it('a 1 GiB blob from a stream is stored and read back with RSS growing by less than 128 MiB', async (t) => {
    const dir = scratch(t);
    const chunks = 1024;
    // The blob is on disk twice at the peak (its staged copy and the data file).
    const { bavail, bsize } = statfsSync(dir.dir);
    const free = bavail * bsize;
    if (free < 3 * 1024 * MiB) {
      t.skip(`needs 3 GiB free beside the test files; the disk has ${(free / MiB).toFixed(0)} MiB`);
      return;
    }
    const child = dir.track(startPeer('process', GIGABYTE_BLOB, { path: dir.file(), chunks }));
    const result = await child.next('result');
    await finished(child);
    const growth = (result.peak as number) - (result.before as number);
    const mib = (bytes: unknown) => ((bytes as number) / MiB).toFixed(1);
    t.diagnostic(
      `RSS before ${mib(result.before)} MiB; peak storing ${mib(result.peakStore)} MiB; peak overall ${mib(result.peak)} MiB`,
    );
    assert.equal(result.size, chunks * MiB);
    assert.equal(result.read, chunks * MiB);
    assert.equal(result.hashOut, result.hashIn);
    assert.ok(growth < 128 * MiB, `RSS grew by ${growth / MiB} MiB`);
  });
});

// Found by a bug hunt of blobs, on both storages.
describe('blobs, on a file and in memory', () => {
  const kinds = ['file', 'memory'] as const;
  async function openKind(t: TestContext, kind: (typeof kinds)[number]) {
    const dir = scratch(t);
    const db = dir.track(
      kind === 'file'
        ? await open(dir.file(), { durability: 'none' })
        : await open({ storage: new MemoryStorage() }),
    );
    return { dir, db };
  }

  for (const kind of kinds) {
    it(`a reader that changes the chunks it is given changes no blob (${kind})`, async (t) => {
      const { db } = await openKind(t, kind);
      const pending = Blob.from(Buffer.from('pending'));
      for await (const chunk of pending.stream()) (chunk as Buffer).fill(0x5a);
      db.root.set('pending', pending);
      db.root.set('stored', Blob.from(Buffer.from('stored')));
      await db.commit();
      for await (const chunk of (db.root.get('stored') as Blob).stream()) {
        (chunk as Buffer).fill(0x58);
      }
      assert.equal(Buffer.from(await (db.root.get('stored') as Blob).bytes()).toString(), 'stored');
      assert.equal(
        Buffer.from(await (db.root.get('pending') as Blob).bytes()).toString(),
        'pending',
      );
    });

    it(`one new blob set by two transactions at once keeps the content the first stored (${kind})`, async (t) => {
      const { db } = await openKind(t, kind);
      const blob = Blob.from(Buffer.from('hello'));
      const results = await Promise.allSettled([
        db.transaction((tx) => {
          tx.root.set('a', blob);
        }),
        db.transaction((tx) => {
          tx.root.set('c', blob);
        }),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (let i = 0; i < 3; i++) {
        const read = await db.read(async (tx) => {
          const stored = (tx.root.get('a') ?? tx.root.get('c')) as Blob;
          return Buffer.from(await stored.bytes()).toString();
        });
        assert.equal(read, 'hello');
      }
    });

    it(`a stream already flowing when it is committed is stored whole (${kind})`, async (t) => {
      const { db } = await openKind(t, kind);
      const stream = Readable.from([Buffer.from('abc')]);
      stream.resume();
      db.root.set('flowing', Blob.from(stream));
      await db.commit();
      assert.equal((db.root.get('flowing') as Blob).size, 3);
    });

    it(`a blob stream unfinished when the database closes ends with ClosedError (${kind})`, async (t) => {
      const { db } = await openKind(t, kind);
      db.root.set('blob', Blob.from(Buffer.alloc(3 * MiB, 1)));
      await db.commit();
      const stream = (db.root.get('blob') as Blob).stream();
      let read = await new Promise<number>((resolve) => {
        stream.once('data', (chunk: Buffer) => {
          stream.pause();
          resolve(chunk.byteLength);
        });
      });
      await db.close();
      await assert.rejects(
        (async () => {
          for await (const chunk of stream) read += (chunk as Buffer).byteLength;
        })(),
        { code: 'TROVE_CLOSED' },
      );
      assert.ok(read < 3 * MiB);
    });

    // Found by a hunt: close() neither stopped nor waited for a staging under way. A slow
    // source went on being written to a file of the closed storage for seconds, and a stalled
    // one kept its file and descriptor for good.
    // (A timeout: a staging that close() does not stop would otherwise hang the run.)
    it(`a staging under way when the storage closes ends with ClosedError, its source released, nothing left (${kind})`, {
      timeout: 30_000,
    }, async (t) => {
      const { dir, db } = await openKind(t, kind);
      // A stream that gives one chunk, then nothing more (an upload that stalls).
      let reads = 0;
      let firstTaken!: () => void;
      const taken = new Promise<void>((resolve) => {
        firstTaken = resolve;
      });
      const stream = new Readable({
        read() {
          if (reads++ === 0) this.push(Buffer.alloc(1000, 1));
          else firstTaken();
        },
      });
      const staging = db.storage.stageBlob(stream);
      staging.catch(() => undefined);
      await taken;
      await db.close();
      assert.equal(stream.destroyed, true, 'the source was released');
      await assert.rejects(staging, { code: 'TROVE_CLOSED' });
      assert.deepEqual(stagedFiles(dir.dir), []);
    });

    it(`a staging of a source that cannot be released leaves nothing once the storage closes (${kind})`, {
      timeout: 30_000,
    }, async (t) => {
      const { dir, db } = await openKind(t, kind);
      let firstTaken!: () => void;
      const taken = new Promise<void>((resolve) => {
        firstTaken = resolve;
      });
      let resume!: () => void;
      const stalled = new Promise<void>((resolve) => {
        resume = resolve;
      });
      let after = 0;
      // An async generator: nothing can stop it while it waits.
      async function* source() {
        yield Buffer.alloc(1000, 1);
        firstTaken();
        await stalled;
        yield Buffer.alloc(1000, 2);
        after++;
        yield Buffer.alloc(1000, 3);
      }
      const staging = db.storage.stageBlob(source());
      staging.catch(() => undefined);
      await taken;
      await db.close();
      assert.deepEqual(stagedFiles(dir.dir), [], 'its file went with the close');
      resume();
      await assert.rejects(staging, { code: 'TROVE_CLOSED' });
      assert.equal(after, 0, 'no chunk was asked for after the close');
      assert.deepEqual(stagedFiles(dir.dir), []);
    });

    it(`sources that are no bytes are refused with InvalidArgumentError (${kind})`, async (t) => {
      const { db } = await openKind(t, kind);
      // Strings: text decoded by some encoding, whose UTF-8 would be other bytes.
      db.root.set('text', Blob.from(Readable.from(['text'], { objectMode: true })));
      await assert.rejects(db.commit(), { code: 'TROVE_INVALID_ARGUMENT', argument: 'source' });
      db.abort();
      // A web stream that something else reads (it has a reader).
      const web = new ReadableStream({
        start(controller) {
          controller.enqueue(new Uint8Array([1]));
          controller.close();
        },
      });
      const reader = web.getReader();
      assert.throws(() => Blob.from(web as never), { code: 'TROVE_INVALID_ARGUMENT' });
      // One something read from: what is left of it is not the content.
      await reader.read();
      reader.releaseLock();
      assert.throws(() => Blob.from(web as never), { code: 'TROVE_INVALID_ARGUMENT' });
      // Blob.from called on a class that is not a Blob's.
      const from = Blob.from as (this: unknown, source: Uint8Array) => Blob;
      for (const cls of [Map, Object, PersistentMap]) {
        assert.throws(() => from.call(cls, new Uint8Array(1)), {
          code: 'TROVE_INVALID_ARGUMENT',
          argument: 'this',
        });
      }
    });
  }

  // Found in review: the read-through went on after the stream was destroyed, on a file
  // descriptor its storage may have closed (and the system given to another file).
  it('a blob stream destroyed while its content is checked reads no more of it', async (t) => {
    const { db } = await openKind(t, 'file');
    db.root.set('blob', Blob.from(Buffer.alloc(64 * MiB, 1)));
    await db.commit();
    const nodeFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const read = nodeFs.read;
    let destroyed = false;
    let readsAfter = 0;
    nodeFs.read = ((...args: Parameters<typeof read>) => {
      if (destroyed) readsAfter++;
      return (read as (...a: unknown[]) => void)(...args);
    }) as typeof read;
    syncBuiltinESMExports();
    try {
      const stream = (db.root.get('blob') as Blob).stream();
      stream.on('error', () => undefined);
      stream.resume();
      await new Promise((resolve) => setImmediate(resolve));
      stream.destroy();
      destroyed = true;
      await new Promise((resolve) => stream.once('close', resolve));
      await db.close();
      // The read under way at the destroy ends meanwhile; a check that went on would read
      // again then (a slower disk only lets this pass when it should not, never fail).
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      nodeFs.read = read;
      syncBuiltinESMExports();
    }
    assert.equal(readsAfter, 0);
  });

  /**
   * Runs `body` with node:fs's `read` and `closeSync` wrapped: each read's callback after
   * `delay` ms, and `change` given the bytes each read delivered (by count). Returns the
   * closes of a descriptor while a read of it was under way.
   */
  async function withWatchedReads(
    body: () => Promise<void>,
    { delay = 0, change = (_read: number, _bytes: Buffer) => {} } = {},
  ): Promise<number> {
    const nodeFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const { read, closeSync } = nodeFs;
    const reading = new Map<number, number>();
    let reads = 0;
    let closedUnderRead = 0;
    nodeFs.read = ((
      fd: number,
      buffer: Buffer,
      offset: number,
      length: number,
      position: number,
      callback: (error: Error | null, bytesRead: number) => void,
    ) => {
      const count = ++reads;
      reading.set(fd, (reading.get(fd) ?? 0) + 1);
      read(fd, buffer, offset, length, position, (error, bytesRead) => {
        setTimeout(() => {
          reading.set(fd, reading.get(fd)! - 1);
          if (error === null) change(count, buffer.subarray(offset, offset + bytesRead));
          callback(error, bytesRead);
        }, delay);
      });
    }) as typeof read;
    nodeFs.closeSync = ((fd: number) => {
      if ((reading.get(fd) ?? 0) > 0) closedUnderRead++;
      closeSync(fd);
    }) as typeof closeSync;
    syncBuiltinESMExports();
    try {
      await body();
    } finally {
      nodeFs.read = read;
      nodeFs.closeSync = closeSync;
      syncBuiltinESMExports();
    }
    return closedUnderRead;
  }

  // Found in review: the file went back to its storage while a read of it was under way,
  // and a close then shut a descriptor that read was using.
  it('a blob stream destroyed during a read gives its file back only when the read is done', async (t) => {
    const { dir } = await openKind(t, 'file');
    const path = dir.file('slow.trove');
    const setup = await open(path, { durability: 'none' });
    setup.root.set('blob', Blob.from(Buffer.alloc(3 * MiB, 2)));
    await setup.commit();
    await setup.close();
    for (const phase of ['check', 'stream'] as const) {
      const closedUnderRead = await withWatchedReads(
        async () => {
          const db = await open(path, { readOnly: true });
          const stream = (db.root.get('blob') as Blob).stream();
          stream.on('error', () => undefined);
          // During the check, or once the first chunk is out (the streaming pass).
          if (phase === 'stream') await new Promise((resolve) => stream.once('data', resolve));
          else stream.resume();
          await new Promise((resolve) => setTimeout(resolve, 5));
          stream.destroy();
          await db.close();
          await new Promise((resolve) => setTimeout(resolve, 100));
        },
        { delay: 30 },
      );
      assert.equal(closedUnderRead, 0, phase);
    }
  });

  // Found in review: the bytes read again for the stream were not checked; should they
  // change after the read-through, the stream now fails at its end.
  it('content that changes between the read-through and the stream fails at its end', async (t) => {
    const { db } = await openKind(t, 'file');
    db.root.set('blob', Blob.from(Buffer.alloc(3 * MiB, 2)));
    await db.commit();
    await withWatchedReads(
      async () => {
        // Reads 1 to 3 are the read-through; 4 to 6 the stream.
        await assert.rejects((db.root.get('blob') as Blob).bytes(), { code: 'TROVE_CORRUPTION' });
      },
      {
        change: (read, bytes) => {
          if (read === 5) bytes[0] = bytes[0]! ^ 0xff;
        },
      },
    );
  });

  // Found in review: with the staging file not opened, the commit waited for the source's
  // first chunk before it failed, for ever from a stalled upload; and the source was never
  // destroyed.
  it('a staging file that cannot be opened fails the commit at once, whatever the source does', async (t) => {
    const { db } = await openKind(t, 'file');
    const nodeFs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const openFile = nodeFs.openSync;
    nodeFs.openSync = ((...args: Parameters<typeof openFile>) => {
      if (String(args[0]).includes('.blob-')) {
        throw Object.assign(new Error('EMFILE (injected)'), { code: 'EMFILE' });
      }
      return openFile(...args);
    }) as typeof openFile;
    syncBuiltinESMExports();
    try {
      const stalled = new Readable({ read() {} });
      let webCancelled = false;
      const stalledWeb = new ReadableStream({
        cancel: () => {
          webCancelled = true;
        },
      });
      for (const source of [stalled, stalledWeb]) {
        db.root.set('blob', Blob.from(source));
        const failed = db.commit().then(
          () => 'stored',
          (error: { code?: string }) => error.code,
        );
        // The commit must not wait for the stalled source: without the fix it never ends.
        const outcome = await Promise.race([
          failed,
          new Promise((resolve) => setTimeout(resolve, 20_000, 'still waiting')),
        ]);
        assert.equal(outcome, 'TROVE_IO');
        db.abort();
      }
      // And the stalled sources are ended, not left open (found in review: an upload's
      // socket stayed open for good; then, a web stream's, as a fetch body's).
      assert.equal(stalled.destroyed, true);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(webCancelled, true);
    } finally {
      nodeFs.openSync = openFile;
      syncBuiltinESMExports();
    }
  });

  it('damaged content is a CorruptionError before any byte of it is handed out', async (t) => {
    const { dir, db } = await openKind(t, 'file');
    const content = Buffer.alloc(3 * MiB, 0x41);
    db.root.set('blob', Blob.from(content));
    await db.commit();
    await db.close();
    const path = dir.file();
    const bytes = readFileSync(path);
    // Where the content starts: after the header of the record that holds it, and its refs.
    // (A search for its bytes went wrong once in 256 runs: a header that happens to end in
    // the content's byte.)
    const record = commits(path)
      .flatMap((tx) => tx.records)
      .find((r) => bytes.readUInt32LE(r.offset + 24) === content.length)!;
    const at = record.offset + 48 + 4 * bytes.readUInt32LE(record.offset + 32);
    assert.ok(bytes.subarray(at, at + content.length).equals(content));
    for (const flip of [at + 10, at + 2 * MiB + 5]) {
      const damaged = Buffer.from(bytes);
      damaged[flip] = damaged[flip]! ^ 0xff;
      writeFileSync(path, damaged);
      const again = await open(path, { readOnly: true });
      try {
        let handedOut = 0;
        await assert.rejects(
          (async () => {
            for await (const chunk of (again.root.get('blob') as Blob).stream()) {
              handedOut += (chunk as Buffer).byteLength;
            }
          })(),
          { code: 'TROVE_CORRUPTION' },
        );
        assert.equal(handedOut, 0);
      } finally {
        await again.close();
      }
    }
    // A damaged record header (its oid, the first of its 48 bytes, which the content
    // follows): the index points at a record of another object.
    const damaged = Buffer.from(bytes);
    damaged[at - 48] = damaged[at - 48]! ^ 0x01;
    writeFileSync(path, damaged);
    const again = await open(path, { readOnly: true });
    try {
      await assert.rejects((again.root.get('blob') as Blob).bytes(), { code: 'TROVE_CORRUPTION' });
    } finally {
      await again.close();
    }
  });
});
