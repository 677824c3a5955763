// The integrity check of an open database judges what follows the log as far as its handle
// has read it, as an open would: damage there that an open refuses is a failure, a torn
// tail is not, and nothing is cut. Before, it checked only the log up to where its handle's
// reading had stopped, so damage in commits of another process, which stops that reading,
// was reported as a clean bill of health while the next open refused the file.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CorruptionError, type Database, open, PersistentMap } from 'trove';
import {
  closeQuietly,
  commits,
  flipBit,
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
});
