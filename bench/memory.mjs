// memory: how much the resident set grows when a large database is opened (each open in a
// fresh process, so nothing else is in the number), and trove's index size per object
// (db.stats().storage.indexBytes / objects). Best (smallest) of the runs after a warm-up.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bigDatabases } from './lib/big.mjs';
import { limitCheck, row } from './lib/common.mjs';

export const name = 'memory';

const MiB = 1024 * 1024;
const child = fileURLToPath(new URL('./memory-child.mjs', import.meta.url));

const labels = {
  trove: 'trove open() (index loaded)',
  lmdb: 'lmdb open()',
  sqlite: 'better-sqlite3 new Database() (WAL)',
  level: 'classic-level open()',
};

export async function run(ctx) {
  const { count, paths } = await bigDatabases(ctx);
  const systems = Object.keys(labels).filter((s) => ctx.wants(s));
  const samples = new Map(systems.map((s) => [s, []]));
  let trove;
  for (let round = 0; round < ctx.warmups + ctx.runs; round++) {
    for (const system of systems) {
      const out = execFileSync(process.execPath, ['--expose-gc', child, system, paths[system]], {
        encoding: 'utf8',
      });
      const result = JSON.parse(out.trim().split('\n').pop());
      // RSS moves by a few MiB either way on its own; a growth below 0 is that noise.
      if (round >= ctx.warmups) samples.get(system).push(Math.max(0, result.growth) / MiB);
      if (system === 'trove') trove = result;
    }
  }
  const rows = systems.map((system) => {
    const growth = samples.get(system);
    return row({ system, label: labels[system] }, Math.min(...growth), 'MiB', growth, 'lower');
  });
  const troveRow = rows.find((r) => r.system === 'trove');
  const perObject = trove ? trove.indexBytes / trove.objects : undefined;
  if (trove) {
    rows.push(
      row(
        { system: 'trove', label: 'trove index bytes per object' },
        perObject,
        'bytes',
        [perObject],
        'lower',
      ),
    );
  }
  return {
    name,
    what: `RSS growth when opening the ${count.toLocaleString('en-US')}-object database; index bytes per object`,
    setup: [
      'each open in a fresh process: RSS after loading the library, then after open() (both after a GC)',
      trove
        ? `trove: ${trove.objects.toLocaleString('en-US')} objects, index ${(trove.indexBytes / MiB).toFixed(1)} MiB`
        : '',
    ].filter(Boolean),
    rows,
    checks: [
      troveRow && limitCheck('trove RSS growth', troveRow.value, 'MiB', { max: 150 }),
      perObject !== undefined &&
        limitCheck('trove index bytes per object', perObject, 'bytes', { max: 16 }),
    ].filter(Boolean),
    ...(ctx.mode === 'full'
      ? {}
      : { notes: ['the targets are for 1,000,000 objects (full mode)'] }),
  };
}
