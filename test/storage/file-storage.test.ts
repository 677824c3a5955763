import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage, type Storage } from 'trove';
import { type OpenOptions, runStorageConformance } from './conformance.js';

// The same suite as MemoryStorage, on a file per test. Durability `none`: this suite is about
// the contract, not about syncing (the crash tests cover that).
runStorageConformance(
  'FileStorage',
  async (options?: OpenOptions) => {
    const directory = mkdtempSync(join(tmpdir(), 'trove-conformance-'));
    const path = join(directory, 'db.trove');
    const opened: Storage[] = [];
    const openFile = async (readOnly: boolean) => {
      const storage = await FileStorage.open(path, {
        durability: 'none',
        readOnly,
        logger: () => {},
      });
      opened.push(storage);
      return storage;
    };
    if (options?.readOnly === true) await (await openFile(false)).close();
    const storage = await openFile(options?.readOnly === true);
    return {
      storage,
      reopen: (reopenOptions?: OpenOptions) => openFile(reopenOptions?.readOnly === true),
      async cleanup() {
        for (const each of opened) await each.close();
        rmSync(directory, { recursive: true, force: true });
      },
    };
  },
  { persistent: true, propertyRuns: 25 },
);
