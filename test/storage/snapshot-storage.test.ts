/**
 * SnapshotStorage made by hand over a storage others use: its arguments are checked, and
 * closing the view leaves the storage it looks at open (a view `open(path, { at })` made
 * closes its own file).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MemoryStorage, open, SnapshotStorage } from 'trove';

const invalid = (argument: string) => ({ code: 'TROVE_INVALID_ARGUMENT', argument });

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
    // The far future reads as of now (the tid after it, which reads ask for, is safe).
    const future = new SnapshotStorage(storage, Number.MAX_SAFE_INTEGER);
    assert.equal(future.tid, Number.MAX_SAFE_INTEGER - 1);
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
