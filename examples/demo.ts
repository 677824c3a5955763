/**
 * The main job, end to end: build a small object graph in the embedded default storage
 * (a file, demo.trove), commit it, read it back through a second handle as another process
 * would, change it concurrently, and show what happened.
 */

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, oidOf, open, Persistent, PersistentList, PersistentMap, persistent } from 'trove';

@persistent('demo.Author')
class Author extends Persistent {
  books = new PersistentList<Book>();
  constructor(public name: string) {
    super();
  }
}

@persistent('demo.Book')
class Book extends Persistent {
  constructor(
    public title: string,
    public author: Author,
    public tags: string[],
  ) {
    super();
  }
}

const path = join(process.cwd(), 'demo.trove');
for (const suffix of ['', '.index']) rmSync(path + suffix, { force: true });

const log = (message: string) => console.log(`  ${message}`);

console.log(`trove demo: ${path}`);
const db = await open(path);

console.log('\n1. Build a graph and commit it');
const ada = new Author('Ada Lovelace');
const notes = new Book('Notes on the Analytical Engine', ada, ['computing']);
ada.books.push(notes);
const authors = new PersistentMap<string, Author>([['ada', ada]]);
db.root.set('authors', authors);
db.root.set('visits', new Counter());
const tid = await db.commit({ note: 'first authors' });
log(`committed transaction ${tid}; ada is object ${oidOf(ada)}, her book object ${oidOf(notes)}`);

console.log('\n2. Read it back through a second handle (as another process would)');
const reader = await open(path);
const ada2 = reader.root.get('authors').get('ada') as Author;
log(`${ada2.name} wrote ${ada2.books.length} book(s): "${ada2.books[0]!.title}"`);
log(`identity kept: ada2.books[0].author === ada2 is ${ada2.books[0]!.author === ada2}`);

console.log('\n3. Change a nested value; the other handle sees it at its next transaction');
notes.tags.push('history');
await db.commit();
log(`before: the reader still sees tags ${JSON.stringify([...ada2.books[0]!.tags])}`);
reader.abort(); // ends the reader's transaction; the next one sees the commit
log(`after:  the reader sees tags ${JSON.stringify([...ada2.books[0]!.tags])}`);

console.log('\n4. Concurrent transactions: 20 visits from two handles at once');
await Promise.all(
  Array.from({ length: 20 }, (_, i) =>
    (i % 2 === 0 ? db : reader).transaction((tx) => {
      (tx.root.get('visits') as Counter).increment();
    }),
  ),
);
const visits = await db.read((tx) => (tx.root.get('visits') as Counter).value);
log(`visits = ${visits} (a Counter resolves concurrent increments instead of conflicting)`);

console.log('\n5. Maintenance');
const report = await db.integrityCheck();
log(`integrity check: ${report.ok ? 'ok' : `${report.failures.length} failure(s)`}`);
const stats = db.stats();
log(
  `${stats.storage.objects} objects, ${stats.storage.bytes} bytes, ${stats.storage.commits} commits by this handle`,
);
await reader.close();
await db.close();
log('closed (the index is saved, so the next open reads no log)');
