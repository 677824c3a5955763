/**
 * Child process: a read-only handle that keeps one `db.read` snapshot open. It reads the
 * Tally at root 'tally' and says 'first'; on 'again' it reads it again in the same snapshot
 * and says 'second'; then it reads in a new snapshot and says 'fresh'.
 */
import { open } from 'trove';
import type { Tally } from '../support/model.js';
import '../support/model.js';
import { childData, expect, runChild, tell } from '../support/parent.js';

await runChild(async () => {
  const { path } = childData<{ path: string }>();
  const db = await open(path, { readOnly: true });
  try {
    await db.read(async (tx) => {
      const tally = tx.root.get('tally') as Tally;
      await tell({ type: 'first', count: tally.count });
      await expect('again');
      await tell({
        type: 'second',
        count: tally.count,
        again: (tx.root.get('tally') as Tally).count,
      });
    });
    await tell({
      type: 'fresh',
      count: await db.read((tx) => (tx.root.get('tally') as Tally).count),
    });
  } finally {
    await db.close();
  }
});
