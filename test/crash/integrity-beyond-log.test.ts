// The integrity check of an open database judges what follows the log as far as its handle
// has read it, as an open would: damage there that an open refuses is a failure, a torn
// tail is not, and nothing is cut. Before, it checked only the log up to where its handle's
// reading had stopped, so damage in commits of another process, which stops that reading,
// was reported as a clean bill of health while the next open refused the file.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  CorruptionError,
  type Database,
  type FileStorage,
  open,
  PersistentMap,
  StorageIOError,
} from 'trove';
import { commit, put } from '../storage/storage-assertions.js';
import {
  closeQuietly,
  commits,
  deferred,
  type FileOps,
  fileOps,
  flipBit,
  openFileStorage,
  quiet,
  rejection,
  type ScannedTransaction,
  tempDir,
  tornFiles,
  zeroRange,
} from './support.js';

describe('integrity check: what follows the log a handle has read', () => {
  const dir = tempDir('trove-integrity-');
  after(() => dir.remove());
  let files = 0;

  /**
   * A database open on a file to which another handle then added three commits, which the
   * open one has not read yet; `damage` is done to the file before it does.
   */
  async function withOthersCommits(
    damage: (path: string, theirs: ScannedTransaction[]) => void,
  ): Promise<{ path: string; db: Database; theirs: ScannedTransaction[] }> {
    const path = join(dir.path, `db-${++files}.trove`);
    const db = await open(path, { logger: quiet });
    db.root.set('m', new PersistentMap([['v', 0]]));
    await db.commit();
    const other = await open(path, { logger: quiet });
    try {
      for (let k = 1; k <= 3; k++) {
        other.root.get('m').set('v', k);
        await other.commit();
      }
    } finally {
      await other.close();
    }
    const theirs = commits(path).slice(-3);
    damage(path, theirs);
    return { path, db, theirs };
  }

  it('a commit that fails its checksum, with a later commit after it: a checksum failure at its offset', async () => {
    const { path, db, theirs } = await withOthersCommits((file, txs) =>
      flipBit(file, txs[1]!.offset + txs[1]!.length - 16, 3),
    );
    try {
      const report = await db.integrityCheck();
      assert.equal(report.ok, false);
      assert.deepEqual(
        report.failures.map((f) => [f.kind, f.offset]),
        [['checksum', theirs[1]!.offset]],
      );
      // What an open that reads the whole log says about it (a saved index would spare it
      // reading the commits it covers).
      fs.rmSync(`${path}.index`, { force: true });
      const error = await rejection(() => open(path, { logger: quiet }));
      assert.ok(error instanceof CorruptionError, String(error));
      assert.equal(error.offset, theirs[1]!.offset);
      await assert.rejects(db.integrityCheck({ throwOnFailure: true }), {
        code: 'TROVE_INTEGRITY',
      });
    } finally {
      await closeQuietly(db);
    }
  });

  it('zeros where a commit was, with a later commit after them: a structure failure at their start', async () => {
    const { db, theirs } = await withOthersCommits((file, txs) =>
      zeroRange(file, txs[1]!.offset, txs[1]!.offset + txs[1]!.length),
    );
    try {
      const report = await db.integrityCheck();
      assert.deepEqual(
        report.failures.map((f) => [f.kind, f.offset]),
        [['structure', theirs[1]!.offset]],
      );
    } finally {
      await closeQuietly(db);
    }
  });

  it('a torn last commit is no failure, and the check cuts nothing', async () => {
    let image: Buffer | undefined;
    const { path, db, theirs } = await withOthersCommits((file, txs) => {
      // The last commit's writer died halfway through its write.
      zeroRange(
        file,
        txs[2]!.offset + Math.floor(txs[2]!.length / 2),
        txs[2]!.offset + txs[2]!.length,
      );
      image = fs.readFileSync(file);
    });
    try {
      assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
      assert.ok(fs.readFileSync(path).equals(image!), 'nothing was cut');
      assert.deepEqual(tornFiles(path), []);
      // The commits before it were read.
      assert.equal(db.storage.lastTid(), theirs[1]!.tid);
    } finally {
      await closeQuietly(db);
    }
  });

  // Found in review: the check read this handle's own commit between its write and its sync
  // as if another handle had written it; when the sync then failed and the commit was cut
  // back, the handle still counted it.
  it("during this handle's own commit, whose sync then fails, nothing of that commit stays", async () => {
    const path = join(dir.path, `db-${++files}.trove`);
    const started = deferred();
    const release = deferred();
    let gated = false;
    const ops: FileOps = {
      ...fileOps.nodeFileOps,
      sync: async (fd, onCallingThread) => {
        if (!gated) return fileOps.nodeFileOps.sync(fd, onCallingThread);
        started.resolve();
        await release.promise;
        throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      },
    };
    const storage = await openFileStorage(path, { fileOps: ops, logger: quiet });
    try {
      const [oid] = await storage.newOids(1);
      const tid = await commit(storage, [put(oid!, 'first')]);
      gated = true;
      const refused = commit(storage, [put(oid!, 'refused', tid)]);
      await started.promise;
      assert.deepEqual(await storage.integrityCheck(), { ok: true, failures: [] });
      release.resolve();
      assert.ok((await rejection(() => refused)) instanceof StorageIOError);
      gated = false;
      assert.equal(storage.lastTid(), tid);
      assert.equal(Buffer.from(storage.load(oid!).data).toString(), 'first');
      assert.deepEqual(storage.changesSince(0), [{ tid, oids: [oid] }]);
    } finally {
      await storage.close();
    }
  });

  /**
   * Runs `fn` with `rewrite` run once inside the first `fs.fstatSync` made from FileStorage's
   * look at the log's end (#scan): the moment between reading the log and judging it.
   * Returns whether it ran.
   */
  async function rewritingDuringScan(
    rewrite: () => void,
    fn: () => Promise<void>,
  ): Promise<boolean> {
    const cjsFs = createRequire(import.meta.url)('node:fs') as typeof fs;
    const fstatSync = cjsFs.fstatSync;
    let ran = false;
    const restore = () => {
      cjsFs.fstatSync = fstatSync;
      syncBuiltinESMExports();
    };
    cjsFs.fstatSync = ((...args: Parameters<typeof fs.fstatSync>) => {
      if (!ran && new Error().stack?.includes('#scan')) {
        ran = true;
        restore();
        rewrite();
      }
      return fstatSync(...args);
    }) as typeof fs.fstatSync;
    syncBuiltinESMExports();
    try {
      await fn();
    } finally {
      restore();
    }
    return ran;
  }

  /**
   * A file at `path` whose last commit (of another handle) `read` is to be cut back, and the
   * bytes of the file once that was done and another handle wrote three larger commits in
   * its place, ending with tid `last`.
   */
  async function cutBackAndWrittenOver(
    path: string,
    before: () => Promise<void>,
  ): Promise<{ oid: number; rewritten: Buffer; last: number }> {
    const copy = `${path}.copy`;
    const first = await openFileStorage(path, { logger: quiet });
    const [oid] = await first.newOids(1);
    const base = await commit(first, [put(oid!, 'base')]);
    await first.close();
    fs.copyFileSync(path, copy);
    const theirs = await openFileStorage(path, { logger: quiet });
    await commit(theirs, [put(oid!, 'cut back later', base)]);
    await theirs.close();
    await before();
    const other = await openFileStorage(copy, { logger: quiet });
    let last = base;
    for (let k = 1; k <= 3; k++) last = await commit(other, [put(oid!, 'x'.repeat(300 * k), last)]);
    await other.close();
    const rewritten = fs.readFileSync(copy);
    fs.rmSync(copy);
    return { oid: oid!, rewritten, last };
  }

  const writeOver = (path: string, bytes: Buffer) => () => {
    fs.truncateSync(path, 0);
    fs.writeFileSync(path, bytes, { flag: 'r+' });
  };

  // Found in review: a commit of another handle that this one read, cut back after its sync
  // failed and written over by larger commits while the check ran, made the check judge an
  // end inside one of those: a healthy file reported damaged.
  it('a commit read, then cut back and written over during the check: no failure', async () => {
    const path = join(dir.path, `db-${++files}.trove`);
    const mine = await openFileStorage(path, { logger: quiet });
    try {
      const { rewritten, last } = await cutBackAndWrittenOver(path, async () => {
        mine.changesSince(0); // reads the commit to be cut back
      });
      let report: Awaited<ReturnType<typeof mine.integrityCheck>> | undefined;
      const ran = await rewritingDuringScan(writeOver(path, rewritten), async () => {
        report = await mine.integrityCheck();
      });
      assert.equal(ran, true);
      assert.deepEqual(report, { ok: true, failures: [] });
      assert.equal(mine.lastTid(), last);
    } finally {
      await mine.close();
    }
  });

  // The same race at open, whose look at the end of the log runs without the writer lock:
  // the open refused a healthy file.
  it('an open during which a commit it read is cut back and written over opens', async () => {
    for (const readOnly of [false, true]) {
      const path = join(dir.path, `db-${++files}.trove`);
      const { rewritten, last } = await cutBackAndWrittenOver(path, async () => {
        fs.rmSync(`${path}.index`, { force: true });
      });
      let opened: FileStorage | undefined;
      const ran = await rewritingDuringScan(writeOver(path, rewritten), async () => {
        opened = await openFileStorage(path, { readOnly, logger: quiet });
      });
      try {
        assert.equal(ran, true, `readOnly ${readOnly}`);
        assert.equal(opened!.lastTid(), last, `readOnly ${readOnly}`);
      } finally {
        await opened?.close();
      }
    }
  });
});
