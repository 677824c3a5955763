// hot-read: the reads of cold-read again, in the same process right after the first pass:
// trove serves them from its object cache, the others from their caches and the OS's.

import { bestOf } from './lib/common.mjs';
import { readChecks, readDatabases, readers } from './lib/reads.mjs';

export const name = 'hot-read';

export async function run(ctx) {
  const data = await readDatabases(ctx);
  const rows = await bestOf(ctx, readers(data, { hot: true }));
  return {
    name,
    what: `the same ${data.count.toLocaleString('en-US')} point reads again, in the same process`,
    setup: [
      'each run: open, read every key once (untimed), then the timed second pass over the same keys',
      'trove reads by oid (tx.getObject): there is no BTree yet',
    ],
    rows,
    checks: readChecks(rows, 20),
  };
}
