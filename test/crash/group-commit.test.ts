import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Tid } from 'trove';
import { put } from '../storage/storage-assertions.js';
import { commits, type FileOps, fileOps, openFileStorage, tempDir } from './support.js';

const real = fileOps.nodeFileOps;

/**
 * File operations that keep track of what is durable: the end of the bytes written before a
 * sync started is durable once that sync has finished.
 */
class DurabilityTracker {
  writtenEnd = 0;
  durableEnd = 0;
  syncs = 0;

  readonly ops: FileOps = {
    write: async (fd, buffer, position) => {
      await real.write(fd, buffer, position);
      this.writtenEnd = Math.max(this.writtenEnd, position + buffer.byteLength);
    },
    sync: async (fd, onCallingThread) => {
      const covers = this.writtenEnd;
      this.syncs++;
      await real.sync(fd, onCallingThread);
      this.durableEnd = Math.max(this.durableEnd, covers);
    },
    truncate: (fd, length) => real.truncate(fd, length),
  };
}

describe('group commit', () => {
  const dir = tempDir('trove-group-');
  after(() => dir.remove());

  it('concurrent writers share syncs, and each commit is acknowledged only once it is durable', async () => {
    const path = join(dir.path, 'group.trove');
    const tracker = new DurabilityTracker();
    const storage = await openFileStorage(path, { durability: 'full', fileOps: tracker.ops });
    const writers = 16;
    const perWriter = 12;
    const acknowledged: Array<{ tid: Tid; durableEnd: number }> = [];
    try {
      const oids = await storage.newOids(writers);
      tracker.syncs = 0;
      await Promise.all(
        oids.map(async (oid, w) => {
          let expected: Tid = 0;
          for (let i = 0; i < perWriter; i++) {
            expected = await storage.commit({
              baseTid: storage.lastTid(),
              writes: [put(oid, `writer ${w} commit ${i}`, expected)],
            });
            acknowledged.push({ tid: expected, durableEnd: tracker.durableEnd });
          }
        }),
      );
      assert.equal(acknowledged.length, writers * perWriter);
      // Commits that arrive while one is being synced wait for the next sync together.
      assert.ok(tracker.syncs < acknowledged.length, `${tracker.syncs} syncs`);
    } finally {
      await storage.close();
    }

    const endOf = new Map(commits(path).map((tx) => [tx.tid, tx.offset + tx.length]));
    for (const { tid, durableEnd } of acknowledged) {
      const end = endOf.get(tid);
      assert.ok(end !== undefined, `commit ${tid} is in the file`);
      assert.ok(end <= durableEnd, `commit ${tid} ends at ${end}, durable up to ${durableEnd}`);
    }
  });

  // Regression (found in review): a group's acknowledgements wait a turn when more commits
  // queue. A next group that ended without writing (every commit in it conflicting) answered
  // its commits, and close() resolved, before the earlier group's commits were acknowledged.
  it('commits are answered in the order they were written, and close() after them', async () => {
    const storage = await openFileStorage(join(dir.path, 'order.trove'), { durability: 'full' });
    const [oid] = await storage.newOids(1);
    const answered: string[] = [];
    const first = storage
      .commit({ baseTid: storage.lastTid(), writes: [put(oid!, 'first', 0)] })
      .then(() => answered.push('first committed'));
    const second = storage
      .commit({ baseTid: storage.lastTid(), writes: [put(oid!, 'second', 0)] })
      .then(
        () => answered.push('second committed'),
        (error: { code?: string }) => answered.push(`second failed: ${error.code}`),
      );
    const closed = storage.close().then(() => answered.push('closed'));
    await Promise.all([first, second, closed]);
    assert.deepEqual(answered, ['first committed', 'second failed: TROVE_CONFLICT', 'closed']);
  });
});
