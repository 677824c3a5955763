/**
 * Child process: commits `x.count = y.count = i` (two objects, one transaction) for i = 1,
 * 2, ... until the parent says 'stop'; says 'started' after the first commit and 'stopped'
 * (with the last i) at the end.
 */
import { type Durability, open } from 'trove';
import type { Tally } from '../support/model.js';
import '../support/model.js';
import { childData, expect, runChild, tell } from '../support/parent.js';

await runChild(async () => {
  const { path, durability } = childData<{ path: string; durability: Durability }>();
  const db = await open(path, { durability });
  let stop = false;
  void expect('stop').then(() => {
    stop = true;
  });
  let i = 0;
  try {
    while (!stop) {
      i++;
      await db.transaction((tx) => {
        (tx.root.get('x') as Tally).count = i;
        (tx.root.get('y') as Tally).count = i;
      });
      if (i === 1) await tell({ type: 'started' });
      // Let the 'stop' message in between commits.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await tell({ type: 'stopped', last: i });
  } finally {
    await db.close();
  }
});
