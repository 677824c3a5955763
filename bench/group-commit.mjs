// group-commit: 64 concurrent async writers, each awaiting one durable one-object
// transaction after another. A system that makes concurrent commits share an fsync scales
// with the writers; one that syncs each commit on its own stays at the one-writer rate.
// SQLite is not here: better-sqlite3 is synchronous, so its writers cannot overlap (its one-
// writer rate is in durable-commit).

import { best, bestOf, now, ratioCheck } from './lib/common.mjs';
import { databasePaths, trovePath } from './lib/systems.mjs';
import { checkAgeSums, levelUpdates, lmdbUpdates, troveUpdates } from './lib/updates.mjs';

export const name = 'group-commit';

const sizes = {
  full: { transactions: 20_000, writers: 64 },
  quick: { transactions: 2000, writers: 64 },
  smoke: { transactions: 128, writers: 64 },
};

/** Transactions of the one-writer reference, when durable-commit did not run before. */
const singleTransactions = { full: 2000, quick: 200, smoke: 10 };

export async function run(ctx) {
  const { transactions, writers } = sizes[ctx.mode];
  // Transaction k changes record k: within a round no two writers touch the same record.
  const records = transactions;
  const dir = ctx.scratch(name);
  const totals = {};

  /** Runs `commit(k)` for k = 0 .. total-1 on `count` concurrent async loops. */
  const concurrently = async (commit, count = writers, total = transactions) => {
    const t = now();
    await Promise.all(
      Array.from({ length: count }, async (_, w) => {
        for (let k = w; k < total; k += count) await commit(k);
      }),
    );
    return { ops: total, ms: now() - t };
  };

  const paths = databasePaths(dir, 'group');
  const trove = troveUpdates(paths.trove, records, totals);
  const troveRow = {
    ...trove,
    label: `trove db.transaction, ${writers} writers (durability 'full')`,
    run: () => concurrently(trove.incrementAge),
  };
  const lmdb = lmdbUpdates(paths.lmdb, records, totals);
  const lmdbRow = {
    ...lmdb,
    label: `lmdb get + await put, ${writers} writers`,
    run: () => concurrently(lmdb.incrementAge),
  };
  const level = levelUpdates(paths.level, records, totals);
  const levelRow = {
    ...level,
    label: `classic-level getSync + put({ sync: true }), ${writers} writers`,
    run: () => concurrently(level.incrementAge),
  };

  const rows = await bestOf(ctx, [troveRow, lmdbRow, levelRow]);
  // Each round changes every record once.
  checkAgeSums(name, totals, records, records * (ctx.warmups + ctx.runs));

  // trove's one-writer rate: from durable-commit in this run, else measured here.
  let single = ctx.results
    .get('durable-commit')
    ?.rows.find((r) => r.system === 'trove' && r.label.startsWith('trove'));
  if (single === undefined && ctx.wants('trove')) {
    // Its ages are not checked (the totals it sums into are dropped): the rows above prove
    // the updates land.
    const alone = troveUpdates(trovePath(dir, 'single'), records, {});
    const [one] = await bestOf(ctx, [
      {
        ...alone,
        label: 'trove db.transaction, 1 writer',
        // As many transactions as durable-commit runs: one writer is slow.
        run: () =>
          concurrently(alone.incrementAge, 1, Math.min(transactions, singleTransactions[ctx.mode])),
      },
    ]);
    single = one;
  }
  const troveRow_ = rows.find((r) => r.system === 'trove');
  return {
    name,
    what: `${writers} concurrent async writers, ${transactions.toLocaleString('en-US')} durable one-object transactions in all`,
    setup: [
      `${records.toLocaleString('en-US')} records; transaction k changes record k (age + 1), writer w runs k = w, w + ${writers}, ...`,
      'each writer awaits its commit before starting the next; the same for every system',
    ],
    rows,
    checks: [
      ratioCheck(
        'trove / lmdb async put',
        troveRow_,
        lmdbRow && rows.find((r) => r.system === 'lmdb'),
        1.0,
      ),
      ratioCheck(
        'trove / best durable peer',
        troveRow_,
        best(rows, (r) => r.system !== 'trove'),
        undefined,
      ),
      single === undefined
        ? undefined
        : {
            ...ratioCheck(`trove ${writers} writers / trove 1 writer`, troveRow_, single, 10),
            reference: `${single.label} (${Math.round(single.value)} ops/s)`,
          },
    ].filter((c) => c !== undefined && c.ratio !== undefined),
  };
}
