/**
 * Child process: commits `count = 2` to the Tally at root 'tally' through a FileStorage
 * whose append waits: once the commit holds the writer lock and is about to write, it says
 * 'holding' and waits for 'release'; then it finishes the commit and says 'committed'.
 */
import * as fs from 'node:fs';
import { FileStorage, open } from 'trove';
import { withFileOps } from '../support/faulty-ops.js';
import type { Tally } from '../support/model.js';
import '../support/model.js';
import { childData, expect, runChild, tell } from '../support/parent.js';

await runChild(async () => {
  const { path } = childData<{ path: string }>();
  let hold = false;
  const ops = {
    write: async (fd: number, buffer: Uint8Array, position: number) => {
      if (hold) {
        hold = false;
        await tell({ type: 'holding' });
        await expect('release');
      }
      let done = 0;
      while (done < buffer.byteLength) {
        done += fs.writeSync(fd, buffer, done, buffer.byteLength - done, position + done);
      }
    },
    sync: async (fd: number) => fs.fdatasyncSync(fd),
    truncate: async (fd: number, length: number) => fs.ftruncateSync(fd, length),
  };
  const storage = await FileStorage.open(path, withFileOps({ durability: 'none' }, ops));
  const db = await open({ storage });
  try {
    await db.transaction(
      (tx) => {
        (tx.root.get('tally') as Tally).count = 2;
        hold = true;
      },
      { attempts: 1 },
    );
    await tell({ type: 'committed' });
  } finally {
    await db.close();
  }
});
