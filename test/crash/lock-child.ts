/**
 * Child process of lock-holder.test: opens the database, starts a commit (or a pack) and
 * stops inside it, says `holding` on stdout, and waits to be killed.
 *
 * Usage: node lock-child.js <path> <mode>
 * - sync: the commit's bytes are all written; its sync never finishes (lock held). (A sync
 *   before anything is written, of the log the child loaded, goes through.)
 * - write: half of the commit's bytes are written; the rest never is (lock held).
 * - pack-copy: a pack stops while writing its new file.
 * - pack-marker: a pack stops after writing the marker at the end of the old file, before
 *   its sync and the swap (lock held).
 */

import * as fs from 'node:fs';
import { open } from 'trove';
import { type FileOps, fileOps, openFileStorage } from './support.js';

type Mode = 'sync' | 'write' | 'pack-copy' | 'pack-marker';
const [path, mode] = process.argv.slice(2) as [string, Mode];
const real = fileOps.nodeFileOps;
const never = new Promise<void>(() => undefined);
let armed = false;
/** Whether the child wrote to the data file since it was armed. */
let wrote = false;
// Keeps the process alive while an operation hangs on a promise that never settles.
const keepAlive = setInterval(() => undefined, 60_000);
const isDataFile = (fd: number) => fs.fstatSync(fd).ino === fs.statSync(path).ino;

function hang(): Promise<void> {
  process.stdout.write('holding\n');
  return never;
}

const ops: FileOps = {
  async write(fd, buffer, position) {
    if (armed && mode === 'write') {
      // Half of the commit's bytes, not counting the zeros that preallocate space after it.
      let end = buffer.byteLength;
      while (end > 0 && buffer[end - 1] === 0) end--;
      await real.write(fd, buffer.subarray(0, Math.floor(end / 2)), position);
      return hang();
    }
    if (armed && mode === 'pack-copy' && !isDataFile(fd)) {
      await real.write(fd, buffer.subarray(0, Math.floor(buffer.byteLength / 2)), position);
      return hang();
    }
    await real.write(fd, buffer, position);
    if (armed) wrote = true;
  },
  async sync(fd, onCallingThread) {
    if (armed && mode === 'sync' && wrote) return hang();
    if (armed && mode === 'pack-marker' && isDataFile(fd)) return hang();
    return real.sync(fd, onCallingThread);
  },
  truncate: real.truncate,
};

const storage = await openFileStorage(path, { fileOps: ops, logger: () => undefined });
const db = await open({ storage });
armed = true;
if (mode.startsWith('pack')) {
  await db.pack();
} else {
  db.root.get('child').set('v', 'from the child');
  await db.commit();
}
clearInterval(keepAlive);
process.stdout.write('done\n');
