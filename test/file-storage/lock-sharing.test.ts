/**
 * Handles of one file in one process share its writer lock. A handle committing back to
 * back releases the lock and takes it again within microtasks, while another handle of the
 * same process that found it held tries again from a timer, which does not run meanwhile:
 * found in review, that handle waited for the whole run of commits, and past its busy
 * timeout it failed with BusyError. A handle that releases the lock now wakes a handle of
 * the process waiting for it, which takes it before the releasing handle can again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileStorage, type FileStorageOptions } from 'trove';
import { fileOps } from '../crash/support.js';
import { scratch } from './support/temp-dir.js';

const encoder = new TextEncoder();

describe('the writer lock among handles of one process', () => {
  for (const durability of ['none', 'full'] as const) {
    it(`a handle committing back to back lets another handle of the process commit (durability ${durability})`, async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const total = 300;
      let done = 0;
      let otherCommitted: Promise<number> | undefined;
      let startOther: (() => Promise<number>) | undefined;
      const real = fileOps.nodeFileOps;
      const busy = await FileStorage.open(path, {
        durability,
        logger: () => undefined,
        fileOps: {
          ...real,
          // The other handle starts its commit while this one holds the lock (writing).
          write: (fd: number, bytes: Uint8Array, position: number) => {
            if (done === 2 && startOther !== undefined) {
              otherCommitted = startOther();
              startOther = undefined;
            }
            return real.write(fd, bytes, position);
          },
        },
      } as FileStorageOptions);
      const other = await FileStorage.open(path, {
        durability,
        busyTimeout: 60_000,
        logger: () => undefined,
      });
      try {
        const [a] = await busy.newOids(1);
        const [b] = await other.newOids(1);
        startOther = () =>
          other
            .commit({
              baseTid: other.lastTid(),
              writes: [{ oid: b!, data: encoder.encode('b'), refs: [], expectedTid: 0 }],
            })
            .then(() => done);
        let tid = 0;
        for (; done < total; done++) {
          tid = await busy.commit({
            baseTid: tid,
            writes: [{ oid: a!, data: encoder.encode(`a ${done}`), refs: [], expectedTid: tid }],
          });
        }
        assert.ok(otherCommitted !== undefined, 'the other handle began to commit');
        const doneWhenOtherCommitted = await otherCommitted;
        assert.ok(doneWhenOtherCommitted <= 4, `after ${doneWhenOtherCommitted} of ${total}`);
      } finally {
        await other.close();
        await busy.close();
      }
    });
  }
});
