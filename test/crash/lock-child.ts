/**
 * Child process of lock-holder.test: opens the database, starts a commit and stops inside
 * it while holding the writer lock, says `holding` on stdout, and waits to be killed.
 *
 * Usage: node lock-child.js <path> <sync|write>
 * - sync: the commit's bytes are all written; the sync never finishes.
 * - write: half of the commit's bytes are written; the rest never is.
 */

import { open } from 'trove';
import { type FileOps, fileOps, openFileStorage } from './support.js';

const [path, mode] = process.argv.slice(2) as [string, 'sync' | 'write'];
const real = fileOps.nodeFileOps;
const never = new Promise<void>(() => undefined);
let armed = false;
// Keeps the process alive while the commit hangs on a promise that never settles.
const keepAlive = setInterval(() => undefined, 60_000);

const ops: FileOps = {
  async write(fd, buffer, position) {
    if (!armed || mode !== 'write') return real.write(fd, buffer, position);
    await real.write(fd, buffer.subarray(0, Math.floor(buffer.byteLength / 2)), position);
    process.stdout.write('holding\n');
    return never;
  },
  async sync(fd) {
    if (!armed || mode !== 'sync') return real.sync(fd);
    process.stdout.write('holding\n');
    return never;
  },
  truncate: real.truncate,
};

const storage = await openFileStorage(path, { fileOps: ops, logger: () => undefined });
const db = await open({ storage });
db.root.get('child').set('v', 'from the child');
armed = true;
await db.commit();
clearInterval(keepAlive);
process.stdout.write('committed\n');
