// A handle's own commit is applied by the commit itself once it is written and synced. A look
// at the log's end (any transaction start, `changesSince`, the integrity check) that ran in
// the few microtasks between the end of the sync and that apply took the commit for another
// handle's and applied it as well: found in review, it was listed twice in the transactions
// connections follow.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { commit, put } from '../storage/storage-assertions.js';
import { type FileOps, fileOps, openFileStorage, quiet, tempDir } from './support.js';

describe("a handle's own commit is applied once", () => {
  const dir = tempDir('trove-own-apply-');
  after(() => dir.remove());

  for (const look of ['changesSince', 'integrityCheck'] as const) {
    it(`${look} in the microtasks right after the commit's sync`, async () => {
      for (let delay = 0; delay <= 4; delay++) {
        let afterSync: (() => void) | undefined;
        const ops: FileOps = {
          ...fileOps.nodeFileOps,
          sync: async (fd, onCallingThread) => {
            await fileOps.nodeFileOps.sync(fd, onCallingThread);
            const hook = afterSync;
            afterSync = undefined;
            hook?.();
          },
        };
        const storage = await openFileStorage(join(dir.path, `${look}-${delay}.trove`), {
          fileOps: ops,
          logger: quiet,
        });
        try {
          const [oid] = await storage.newOids(1);
          const first = await commit(storage, [put(oid!, 'first')]);
          let looked: Promise<unknown> | undefined;
          afterSync = () => {
            let later = Promise.resolve();
            for (let k = 0; k < delay; k++) later = later.then(() => undefined);
            looked = later.then((): unknown =>
              look === 'changesSince' ? storage.changesSince(0) : storage.integrityCheck(),
            );
          };
          const second = await commit(storage, [put(oid!, 'second', first)]);
          await looked;
          assert.deepEqual(
            storage.changesSince(0),
            [
              { tid: first, oids: [oid] },
              { tid: second, oids: [oid] },
            ],
            `after ${delay} microtasks`,
          );
        } finally {
          await storage.close();
        }
      }
    });
  }
});
