/**
 * trove: a transactional object database for TypeScript and Node.js.
 *
 * @packageDocumentation
 */

export { BrokenValue } from './codec/broken-value.js';
export {
  type AnyClass,
  type ClassShape,
  type RegisterClassOptions,
  registerClass,
} from './codec/class-registry.js';
export {
  type CommitOptions,
  Database,
  type DatabaseOptions,
  type DatabaseStats,
  type IntegrityCheckOptions,
  type TransactionOptions,
} from './connection/database.js';
export type { CacheCounters } from './connection/object-cache.js';
export { type OpenFileOptions, type OpenStorageOptions, open } from './connection/open.js';
export { Transaction } from './connection/transaction.js';
export * from './errors.js';
export { Blob, type BlobSource } from './persistent/blob.js';
export { Broken } from './persistent/broken.js';
export { Counter } from './persistent/counter.js';
export { markChanged, oidOf, Persistent } from './persistent/persistent.js';
export { type PersistentClass, persistent } from './persistent/persistent-decorator.js';
export { PersistentList } from './persistent/persistent-list.js';
export { PersistentMap } from './persistent/persistent-map.js';
export { PersistentSet, type SetLike } from './persistent/persistent-set.js';
export {
  type Durability,
  FileStorage,
  type FileStorageOptions,
  type SyncOn,
} from './storage/file/file-storage.js';
export { MemoryStorage, type MemoryStorageOptions } from './storage/memory-storage.js';
export { SnapshotStorage, type SnapshotStorageOptions } from './storage/snapshot-storage.js';
export { type IntegrityReport, Storage } from './storage/storage.js';
export * from './storage/types.js';
