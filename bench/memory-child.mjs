// One memory measurement in a process of its own: the resident set size before and after
// opening a database (libraries loaded, garbage collected both times). Prints JSON.
// Usage: node --expose-gc bench/memory-child.mjs <trove|lmdb|sqlite|level> <path>

import { levelOpen, lmdbOpen, sqliteOpen, troveOpen } from './lib/systems.mjs';

const [system, path] = process.argv.slice(2);

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().rss;
};

// Load every library the open needs before the first measurement, so only the open counts.
const opens = {
  trove: async () => {
    const db = await troveOpen(path);
    const { objects, indexBytes } = db.stats().storage;
    return { db, objects, indexBytes, close: () => db.close() };
  },
  lmdb: async () => {
    const db = lmdbOpen(path);
    return { db, close: () => db.close() };
  },
  sqlite: async () => {
    const db = sqliteOpen(path);
    return { db, close: () => db.close() };
  },
  level: async () => {
    const db = await levelOpen(path);
    return { db, close: () => db.close() };
  },
};
const { createRequire } = await import('node:module');
const require = createRequire(import.meta.url);
if (system === 'lmdb') require('lmdb');
if (system === 'sqlite') require('better-sqlite3');
if (system === 'level') require('classic-level');

const before = await settle();
const opened = await opens[system]();
const after = await settle();
const result = {
  system,
  rssBefore: before,
  rssAfter: after,
  growth: after - before,
  ...(opened.objects === undefined
    ? {}
    : { objects: opened.objects, indexBytes: opened.indexBytes }),
};
await opened.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
