/**
 * Child process of sigkill.test: commits numbered transactions until it is killed, and
 * writes each number to stdout once its commit is acknowledged (durability `full`).
 *
 * Transaction n sets `n` on the root and on the maps `a` and `b` (three records that must
 * always agree), and adds a map `{ n, prev }` that becomes the new `head` of a chain of all
 * commits. Every 16th transaction also rewrites the map `big` with a payload of about 1 MiB,
 * announced by a line `big <n>` before the commit starts, so that some kills land inside a
 * large write.
 *
 * It says `ready` once the database is open.
 *
 * Usage: node commit-child.js <path>
 */

import { open, PersistentMap } from 'trove';

const [path] = process.argv.slice(2) as [string];
const db = await open(path, { durability: 'full', logger: () => undefined });
const root = db.root;
let n: number = root.get('n');
process.stdout.write('ready\n');
for (;;) {
  n++;
  root.get('a').set('n', n);
  root.get('b').set('n', n);
  root.set(
    'head',
    new PersistentMap<string, unknown>([
      ['n', n],
      ['prev', root.get('head')],
    ]),
  );
  root.set('n', n);
  if (n % 16 === 0) {
    root.get('big').set('payload', `${n}:`.padEnd(1024 * 1024, String.fromCharCode(97 + (n % 26))));
    root.get('big').set('n', n);
    process.stdout.write(`big ${n}\n`);
  }
  await db.commit();
  process.stdout.write(`${n}\n`);
}
