// The large database of the open and memory scenarios (1,000,000 records in full mode), built
// once per run for each system.

import { rmSync } from 'node:fs';
import { databasePaths, fillDatabases } from './systems.mjs';

export const bigSizes = { full: 1_000_000, quick: 100_000, smoke: 2000 };

export async function bigDatabases(ctx) {
  if (ctx.shared.big) return ctx.shared.big;
  const count = bigSizes[ctx.mode];
  const dir = ctx.scratch('big');
  const paths = databasePaths(dir, 'big');
  if (ctx.wants('trove')) {
    ctx.log(`   (building the ${count.toLocaleString('en-US')}-object databases)`);
  }
  const oids = await fillDatabases(ctx, paths, count);
  ctx.shared.big = { count, paths, oids };
  return ctx.shared.big;
}

/** Removes trove's saved index, so the next open rebuilds it by scanning the whole log. */
export function dropTroveIndex(path) {
  rmSync(`${path}.index`, { force: true });
}
