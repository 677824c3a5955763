// cold-read: random point reads by key from a freshly opened database: the OS cache is warm
// (the files were just written and read), the system's own caches are empty (trove's object
// cache, SQLite's page cache, LevelDB's block cache).

import { bestOf } from './lib/common.mjs';
import { readChecks, readDatabases, readers } from './lib/reads.mjs';

export const name = 'cold-read';

export async function run(ctx) {
  const data = await readDatabases(ctx);
  const rows = await bestOf(ctx, readers(data, { hot: false }));
  return {
    name,
    what: `${data.count.toLocaleString('en-US')} random point reads by key from a freshly opened database`,
    setup: [
      `${data.count.toLocaleString('en-US')} records; every key read once, in a random order; one field (email) read from each record`,
      'trove reads by oid (tx.getObject): there is no BTree yet',
    ],
    rows,
    checks: readChecks(rows, 1.0),
  };
}
