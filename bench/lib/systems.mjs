// How each system opens, stores the records and reads one back: the code a TypeScript
// developer would write with each library, configured the same way across scenarios.
//
// - trove: the records are instances of a registered Persistent subclass (User), reachable
//   from the root through PersistentLists (there is no BTree yet, so a point read by key goes
//   through the object's oid: tx.getObject(oid)). Durability 'full' unless a row says so.
// - lmdb: msgpack values (lmdb's default encoding), integer keys.
// - better-sqlite3: one table with a column per field (tags as JSON text), WAL journal.
// - classic-level: string keys, msgpack values (the same msgpackr as lmdb and trove).

import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import {
  oidOf,
  open as openTrove,
  Persistent,
  PersistentList,
  registerClass,
} from '../../dist/index.js';
import { makeRecord } from './common.mjs';

const require = createRequire(import.meta.url);

/** trove's record class: the same six fields, as a persistent object. */
export class User extends Persistent {
  constructor(record) {
    super();
    this.id = record.id;
    this.name = record.name;
    this.email = record.email;
    this.age = record.age;
    this.tags = record.tags;
    this.createdAt = record.createdAt;
  }
}
registerClass(User, 'bench.User');

export { oidOf, PersistentList };

// ---- trove ------------------------------------------------------------------------------

export const trovePath = (dir, name) => join(dir, `${name}.trove`);

export function removeTrove(path) {
  for (const suffix of ['', '.index', '.lock']) rmSync(path + suffix, { force: true });
}

/** Opens a trove database file: durability 'full' (fdatasync before a commit resolves). */
export function troveOpen(path, options = {}) {
  return openTrove(path, { durability: 'full', progress: false, ...options });
}

/**
 * Stores the records with ids 0 .. count-1, `chunk` of them per transaction, each chunk a
 * PersistentList appended to the root's list `key`. Returns the oid of each id (the key a
 * point read uses until trove has a BTree).
 */
export async function troveFill(db, count, { chunk = 100_000, key = 'users' } = {}) {
  const oids = new Float64Array(count);
  for (let start = 0; start < count; start += chunk) {
    const end = Math.min(count, start + chunk);
    let users;
    await db.transaction((tx) => {
      users = [];
      const list = new PersistentList();
      for (let id = start; id < end; id++) {
        const user = new User(makeRecord(id));
        list.push(user);
        users.push(user);
      }
      let all = tx.root.get(key);
      if (all === undefined) {
        all = new PersistentList();
        tx.root.set(key, all);
      }
      all.push(list);
    });
    for (let i = 0; i < users.length; i++) oids[start + i] = oidOf(users[i]);
  }
  return oids;
}

// ---- lmdb -------------------------------------------------------------------------------

export const lmdbPath = (dir, name) => join(dir, `${name}.mdb`);

export function removeLmdb(path) {
  for (const suffix of ['', '-lock']) rmSync(path + suffix, { force: true });
}

/** Opens lmdb with its defaults (msgpack values; writes durable: async put resolves after the flush). */
export function lmdbOpen(path, options = {}) {
  const { open } = require('lmdb');
  return open({ path, ...options });
}

export function lmdbFill(db, count, chunk = 100_000) {
  for (let start = 0; start < count; start += chunk) {
    const end = Math.min(count, start + chunk);
    db.transactionSync(() => {
      for (let id = start; id < end; id++) db.put(id, makeRecord(id));
    });
  }
}

// ---- better-sqlite3 ---------------------------------------------------------------------

export const sqlitePath = (dir, name) => join(dir, `${name}.sqlite`);

export function removeSqlite(path) {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
}

/**
 * Opens SQLite in WAL mode with `synchronous` FULL (a commit fsyncs the WAL: durable) or
 * NORMAL (no fsync at commit in WAL mode: survives a process crash, not power loss).
 * `cacheBytes` sizes SQLite's page cache (its default is 2 MB).
 */
export function sqliteOpen(path, { synchronous = 'FULL', cacheBytes } = {}) {
  const Database = require('better-sqlite3');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  if (cacheBytes !== undefined) db.pragma(`cache_size = -${Math.ceil(cacheBytes / 1024)}`);
  db.exec(
    'CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, age INTEGER NOT NULL, tags TEXT NOT NULL, created_at INTEGER NOT NULL)',
  );
  return db;
}

export function sqliteInsert(db) {
  const insert = db.prepare(
    'INSERT INTO users (id, name, email, age, tags, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  return (r) => insert.run(r.id, r.name, r.email, r.age, JSON.stringify(r.tags), r.createdAt);
}

export function sqliteFill(db, count, chunk = 100_000) {
  const insert = sqliteInsert(db);
  for (let start = 0; start < count; start += chunk) {
    const end = Math.min(count, start + chunk);
    db.transaction(() => {
      for (let id = start; id < end; id++) insert(makeRecord(id));
    })();
  }
}

// ---- classic-level ----------------------------------------------------------------------

export const levelPath = (dir, name) => join(dir, `${name}.level`);

export function removeLevel(path) {
  rmSync(path, { recursive: true, force: true });
}

/** Opens LevelDB with string keys and binary (msgpack) values. */
export async function levelOpen(path, { cacheBytes } = {}) {
  const { ClassicLevel } = require('classic-level');
  const db = new ClassicLevel(path, {
    keyEncoding: 'utf8',
    valueEncoding: 'view',
    ...(cacheBytes === undefined ? {} : { cacheSize: cacheBytes }),
  });
  await db.open();
  return db;
}

export const levelKey = (id) => String(id);
export const levelEncode = (record) => pack(record);
export const levelDecode = (bytes) => unpack(bytes);

export async function levelFill(db, count, chunk = 100_000) {
  for (let start = 0; start < count; start += chunk) {
    const end = Math.min(count, start + chunk);
    const ops = [];
    for (let id = start; id < end; id++) {
      ops.push({ type: 'put', key: levelKey(id), value: levelEncode(makeRecord(id)) });
    }
    await db.batch(ops, { sync: true });
  }
}

// ---- every system at once ------------------------------------------------------------------

/** The paths of one database per system, named `name`, in `dir`. */
export function databasePaths(dir, name) {
  return {
    trove: trovePath(dir, name),
    lmdb: lmdbPath(dir, name),
    sqlite: sqlitePath(dir, name),
    level: levelPath(dir, name),
  };
}

/**
 * Fills the database of every system the run measures with the records 0 .. count-1, each
 * left closed and compacted (SQLite's WAL checkpointed, LevelDB compacted) so that what is
 * measured next starts from the same settled files. Returns trove's oids (undefined when
 * trove is not measured).
 */
export async function fillDatabases(ctx, paths, count) {
  let oids;
  if (ctx.wants('trove')) {
    const db = await troveOpen(paths.trove);
    oids = await troveFill(db, count);
    await db.close();
  }
  if (ctx.wants('lmdb')) {
    const db = lmdbOpen(paths.lmdb);
    lmdbFill(db, count);
    await db.close();
  }
  if (ctx.wants('sqlite')) {
    const db = sqliteOpen(paths.sqlite);
    sqliteFill(db, count);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  }
  if (ctx.wants('level')) {
    const db = await levelOpen(paths.level);
    await levelFill(db, count);
    await db.compactRange('0', '~');
    await db.close();
  }
  return oids;
}

// ---- versions -----------------------------------------------------------------------------

export function peerVersions() {
  const version = (name) => {
    try {
      const file = new URL(`../node_modules/${name}/package.json`, import.meta.url);
      return JSON.parse(readFileSync(file, 'utf8')).version;
    } catch {
      return null;
    }
  };
  let sqlite = null;
  try {
    const Database = require('better-sqlite3');
    const db = new Database(':memory:');
    sqlite = db.prepare('SELECT sqlite_version() AS v').get().v;
    db.close();
  } catch {}
  return {
    lmdb: version('lmdb'),
    'better-sqlite3': version('better-sqlite3'),
    sqlite,
    'classic-level': version('classic-level'),
    msgpackr: version('msgpackr'),
  };
}
