import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BusyError, type Database, open, PersistentMap } from 'trove';
import {
  Child,
  closeQuietly,
  countingSyncs,
  dump,
  openFileStorage,
  quiet,
  rejection,
  tempDir,
  tornFiles,
  transactions,
} from './support.js';

describe('the writer lock of a killed holder, and of a live one', () => {
  const dir = tempDir();
  let files = 0;
  after(() => dir.remove());

  /** A database with an object for the child and one for the parent to change. */
  async function setup(): Promise<string> {
    const path = join(dir.path, `db-${++files}.trove`);
    const db = await open(path, { logger: quiet });
    db.root.set('child', new PersistentMap([['v', 'initial']]));
    db.root.set('parent', new PersistentMap([['v', 'initial']]));
    await db.commit();
    await db.close();
    return path;
  }

  /** Starts a child that stops inside a commit (in `mode`) holding the writer lock. */
  async function holder(
    path: string,
    mode: 'sync' | 'write' | 'pack-copy' | 'pack-marker',
  ): Promise<Child> {
    const child = new Child('./lock-child.js', [path, mode]);
    await child.waitFor((line) => line === 'holding');
    return child;
  }

  async function assertCommitted(path: string, value: string): Promise<void> {
    const db = await open(path, { logger: quiet });
    try {
      assert.equal(db.root.get('parent').get('v'), value);
      assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await db.close();
    }
  }

  it('BusyError when a live process holds the lock longer than busyTimeout', async () => {
    const path = await setup();
    const child = await holder(path, 'sync');
    let db: Database | undefined;
    try {
      db = await open(path, { busyTimeout: 200, logger: quiet });
      db.root.get('parent').set('v', 'from the parent');
      const error = await rejection(() => db!.commit());
      assert.ok(error instanceof BusyError, String(error));
      assert.equal(error.code, 'TROVE_BUSY');
      // Still held: a second try is refused too, and the database stays usable.
      assert.equal((await rejection(() => db!.commit())).code, 'TROVE_BUSY');
      assert.equal(await db.read((tx) => tx.root.get('parent').get('v')), 'initial');

      // Once the holder is killed, the same pending change commits.
      await child.kill();
      await db.commit();
      await db.close();
      db = undefined;
      await assertCommitted(path, 'from the parent');
    } finally {
      await child.kill();
      await closeQuietly(db);
    }
  });

  for (const mode of ['sync', 'write'] as const) {
    it(`a holder killed inside ${mode}: the next writer commits`, async () => {
      const path = await setup();
      const sizeBefore = fs.statSync(path).size;
      const child = await holder(path, mode);
      let db: Database | undefined;
      try {
        await child.kill();
        assert.equal((await child.exited).signal, 'SIGKILL');
        db = await open(path, { busyTimeout: 2000, logger: quiet });
        db.root.get('parent').set('v', 'after the kill');
        await db.commit();
        await db.close();
        db = undefined;
        await assertCommitted(path, 'after the kill');
        if (mode === 'write') {
          // The half-written commit was never acknowledged: it is cut off and kept aside.
          const torn = tornFiles(path);
          assert.equal(torn.length, 1);
          assert.ok(fs.statSync(torn[0]!).size > 0);
        } else {
          // The commit was written whole before the kill (only its sync was pending).
          assert.ok(fs.statSync(path).size > sizeBefore);
        }
      } finally {
        await child.kill();
        await closeQuietly(db);
      }
    });
  }

  // Found in review: a writer killed before its sync leaves a whole commit that was never
  // made durable. A handle that opens after the kill counts the last transaction as maybe
  // not durable and syncs it before its own commit follows it, so that recovery may take
  // whatever comes before a durable commit as durable.
  for (const indexBehind of [false, true]) {
    it(`a holder killed inside sync: the next writer syncs the unsynced commit before its own${indexBehind ? ' (the saved index behind the log)' : ''}`, async () => {
      const path = await setup();
      if (indexBehind) {
        // Processes that commit a little and close leave the saved index as it is: the next
        // open reads the log after it (found in review: that read forgot the sync owed).
        for (let i = 0; i < 3; i++) {
          const db = await open(path, { logger: quiet });
          db.root.get('parent').set('v', `close ${i}`);
          await db.commit();
          await db.close();
        }
      }
      const before = transactions(path).length;
      const child = await holder(path, 'sync');
      let storage: Awaited<ReturnType<typeof openFileStorage>> | undefined;
      try {
        await child.kill();
        const counting = countingSyncs();
        storage = await openFileStorage(path, { fileOps: counting.ops, logger: quiet });
        const db = await open({ storage });
        const killed = transactions(path).at(-1)!;
        assert.ok(transactions(path).length > before, 'the child wrote its commit before the kill');
        await db.transaction((tx) => {
          tx.root.get('parent').set('v', 'after the kill');
        });
        assert.equal(counting.syncs, 2, 'the killed writer’s commit, then this one');
        const next = transactions(path).at(-1)!;
        assert.ok(next.offset > killed.offset);
        assert.equal(next.meta.group, undefined);
        await db.close();
      } finally {
        await child.kill();
        if (storage !== undefined && !storage.closed) await storage.close();
      }
    });
  }

  it('a writer waiting for the lock gets it when the holder is killed', async () => {
    const path = await setup();
    const db = await open(path, { busyTimeout: 20_000, logger: quiet });
    const child = await holder(path, 'write');
    try {
      db.root.get('parent').set('v', 'waited');
      const commit = db.commit();
      let settled = false;
      commit.then(
        () => (settled = true),
        () => (settled = true),
      );
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(settled, false, 'the commit waits while the holder lives');
      await child.kill();
      await commit;
      await db.close();
      await assertCommitted(path, 'waited');
      assert.equal(tornFiles(path).length, 1, 'the half-written commit is kept aside');
    } finally {
      await child.kill();
      await closeQuietly(db);
    }
  });

  // Found in a bug hunt: the commit waited for oids (new objects) behind the lock; close()
  // dropped the pending changes, and the commit then wrote nothing and resolved.
  it('close() while a transaction waits behind a holder for new oids: ClosedError, nothing written', async () => {
    const path = await setup();
    const db = await open(path, { busyTimeout: 20_000, logger: quiet });
    const child = await holder(path, 'sync');
    try {
      const transaction = db
        .transaction((tx) => {
          tx.root.get('parent').set('v', new PersistentMap([['new', 'object']]));
        })
        .then(
          () => 'committed',
          (error: { code?: string }) => error.code,
        );
      await new Promise((resolve) => setTimeout(resolve, 150));
      const closing = db.close();
      await child.kill();
      assert.equal(await transaction, 'TROVE_CLOSED');
      await closing;
      await assertCommitted(path, 'initial');
    } finally {
      await child.kill();
      await closeQuietly(db);
    }
  });

  it('a read-only open never waits for a writer in the middle of a commit', async () => {
    const path = await setup();
    const child = await holder(path, 'write');
    let db: Database | undefined;
    try {
      db = await open(path, { readOnly: true, busyTimeout: 0, logger: quiet });
      assert.equal(db.root.get('parent').get('v'), 'initial');
      assert.equal(await db.read((tx) => tx.root.get('child').get('v')), 'initial');
    } finally {
      await child.kill();
      await closeQuietly(db);
    }
  });

  // Finding: a writable open that finds an incomplete last transaction takes the writer lock
  // to judge it, so while another process is in the middle of a commit (a large blob takes
  // seconds) open() waits and fails with BusyError after busyTimeout, though opening reads
  // only. The torn-tail decision could wait for this handle's first write, which takes the
  // lock anyway (read-only opens already read up to such a tail).
  it('a writable open does not wait for a writer in the middle of a commit', async () => {
    const path = await setup();
    const child = await holder(path, 'write');
    let db: Database | undefined;
    try {
      db = await open(path, { busyTimeout: 200, logger: quiet });
      assert.equal(db.root.get('parent').get('v'), 'initial');
      assert.equal(await db.read((tx) => tx.root.get('child').get('v')), 'initial');
      // Writing does wait for the holder: BusyError after busyTimeout.
      db.root.get('parent').set('v', 'blocked');
      assert.equal((await rejection(() => db!.commit())).code, 'TROVE_BUSY');
    } finally {
      await child.kill();
      await closeQuietly(db);
    }
  });

  for (const mode of ['pack-copy', 'pack-marker'] as const) {
    const where = mode === 'pack-copy' ? 'while copying' : 'after writing its marker';
    it(`a pack killed ${where}: the database is as it was, no files behind`, async () => {
      const path = await setup();
      let db = await open(path, { logger: quiet });
      for (let i = 0; i < 10; i++) {
        db.root.get('parent').set('v', `revision ${i}`);
        db.root.set('garbage', new PersistentMap([['i', i]]));
        await db.commit();
      }
      const before = await dump(db.storage);
      await db.close();
      const size = fs.statSync(path).size;
      const files = fs.readdirSync(dir.path).sort();

      const child = await holder(path, mode);
      await child.kill();
      try {
        db = await open(path, { logger: quiet });
        assert.deepEqual(await dump(db.storage), before);
        assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
        assert.equal(fs.statSync(path).size, size, 'the data file is as it was');
        assert.deepEqual(fs.readdirSync(dir.path).sort(), files, 'no files left behind');
        db.root.get('parent').set('v', 'after the pack');
        await db.commit();
        await db.close();
        await assertCommitted(path, 'after the pack');
      } finally {
        await child.kill();
        await closeQuietly(db);
      }
    });
  }
});
