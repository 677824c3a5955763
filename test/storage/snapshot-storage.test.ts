/**
 * SnapshotStorage made by hand over a storage others use: its arguments are checked, and
 * closing the view leaves the storage it looks at open (a view `open(path, { at })` made
 * closes its own file).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Blob, FileStorage, MemoryStorage, open, SnapshotStorage } from 'trove';

const invalid = (argument: string) => ({ code: 'TROVE_INVALID_ARGUMENT', argument });

/** A database file in a directory of its own, open for writing; both go when the test ends. */
async function scratchDatabase(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'trove-snapshot-'));
  const path = join(dir, 'app.trove');
  const db = await open(path, { durability: 'none' });
  // Closed first: a close after the directory was gone warned that it could not save the
  // index.
  t.after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, path, db };
}

describe('SnapshotStorage', () => {
  it('checks its arguments', () => {
    const storage = new MemoryStorage();
    for (const inner of [{}, null, undefined, 'storage']) {
      assert.throws(() => new SnapshotStorage(inner as never, 1), invalid('inner'));
    }
    for (const tid of ['x', -5, 1.5, undefined, new Date(), Number.NaN]) {
      assert.throws(() => new SnapshotStorage(storage, tid as never), invalid('tid'));
    }
    assert.throws(() => new SnapshotStorage(storage, 1, 'yes' as never), invalid('options'));
    // The far future reads as of now.
    const future = new SnapshotStorage(storage, Number.MAX_SAFE_INTEGER);
    assert.equal(future.tid, storage.lastTid());
    assert.throws(() => future.load(0), { code: 'TROVE_NOT_FOUND' });
    assert.throws(
      () => new SnapshotStorage(storage, 1, { closeInner: 1 as never }),
      invalid('options.closeInner'),
    );
  });

  // Found in a bug hunt: closing the view closed the storage, and a MemoryStorage forgot
  // everything it held, under the database still using it.
  it('closing a view leaves the storage it looks at open, unless told to close it', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('x', 1);
    const tid = await db.commit();
    const view = await open({ storage: new SnapshotStorage(storage, tid) });
    assert.equal(view.root.get('x'), 1);
    await view.close();
    db.root.set('x', 2);
    await db.commit();
    assert.equal((await open({ storage })).root.get('x'), 2);

    const owned = new SnapshotStorage(storage, tid, { closeInner: true });
    await owned.close();
    assert.equal(storage.closed, true);
  });

  // Found by a bug hunt: the view took in the commits its file read after it was made (a
  // backup or an integrity check from the view reads them), while the objects it had loaded
  // kept their states: it showed a = 1 with b = 2, which no commit ever made.
  it('a view as of the future shows what was committed when it was made, and only that', async (t) => {
    const { dir, path, db } = await scratchDatabase(t);
    db.root.set('a', { n: 1 });
    db.root.set('b', { n: 1 });
    const made = await db.commit();
    const view = await open(path, { at: new Date(Date.now() + 3_600_000) });
    t.after(() => view.close());
    assert.equal((view.storage as SnapshotStorage).tid, made);
    assert.equal(await view.read((tx) => tx.root.get('a').n), 1);
    db.root.set('a', { n: 2 });
    db.root.set('b', { n: 2 });
    await db.commit();
    const copy = await view.backup(join(dir, 'copy.trove'));
    assert.equal(copy.tid, made);
    assert.equal((await view.integrityCheck()).ok, true);
    assert.deepEqual(await view.read((tx) => [tx.root.get('a').n, tx.root.get('b').n]), [1, 1]);
    assert.equal(view.storage.lastTid(), made);
    const copied = await open(copy.path, { readOnly: true });
    t.after(() => copied.close());
    assert.deepEqual([copied.root.get('a').n, copied.root.get('b').n], [1, 1]);
  });

  // Found by a bug hunt: NotFoundError, where an object's record a pack removed is a
  // ConflictError (the view is too old), as README says of reads older than a pack's cut.
  it("a view's blob whose content a pack removed is a read older than the cut", async (t) => {
    const { path, db } = await scratchDatabase(t);
    db.root.set('blob', Blob.from(Buffer.from('old')));
    const tid = await db.commit();
    db.root.set('blob', Blob.from(Buffer.from('new')));
    await db.commit();
    const view = await open(path, { at: tid });
    t.after(() => view.close());
    const blob = view.root.get('blob') as Blob;
    assert.equal(blob.size, 3);
    await db.pack();
    await view.integrityCheck(); // the view's file follows the pack
    await assert.rejects(blob.bytes(), { code: 'TROVE_CONFLICT' });
  });

  // Found in review: a handle that had not read another handle's commits clamped the view
  // to the last tid it had read, for good.
  it('a view of a handle as of the future shows what other handles committed before it was made', async (t) => {
    const { path, db: writer } = await scratchDatabase(t);
    writer.root.set('n', 1);
    await writer.commit();
    const handle = await FileStorage.open(path, { readOnly: true });
    t.after(() => handle.close());
    writer.root.set('n', 2);
    const last = await writer.commit();
    const view = new SnapshotStorage(handle, Number.MAX_SAFE_INTEGER);
    assert.equal(view.tid, last);
    const db = await open({ storage: view });
    t.after(() => db.close());
    assert.equal(db.root.get('n'), 2);
    // Its options are checked before the storage is asked anything.
    const closed = new MemoryStorage();
    await closed.close();
    assert.throws(
      () => new SnapshotStorage(closed, 1, { bogus: 1 } as never),
      invalid('options.bogus'),
    );
  });

  it('a view open(path, { at }) made closes the file it opened', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'trove-snapshot-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'app.trove');
    const db = await open(path);
    db.root.set('x', 1);
    const tid = await db.commit();
    await db.close();
    const before = readdirSync('/proc/self/fd').length;
    const view = await open(path, { at: tid });
    assert.equal(view.root.get('x'), 1);
    await view.close();
    assert.equal(readdirSync('/proc/self/fd').length, before);
  });
});
