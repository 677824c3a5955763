/**
 * Child process (a fresh heap, so the measurement is clean): stores a blob made from a
 * stream of 1 GiB, reads it back as a stream, and reports the size, a hash of what went in
 * and of what came out, and the process RSS before and the most sampled during.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Blob, open } from 'trove';
import { childData, runChild, tell } from '../support/parent.js';

const CHUNK = 1024 * 1024;

await runChild(async () => {
  const { path, chunks } = childData<{ path: string; chunks: number }>();
  const db = await open(path, { durability: 'none' });
  try {
    const pattern = randomBytes(CHUNK);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = () => {
      const rss = process.memoryUsage.rss();
      if (rss > peak) peak = rss;
    };
    const sampler = setInterval(sample, 5);

    const hashIn = createHash('sha256');
    let made = 0;
    const source = new Readable({
      read() {
        sample();
        if (made === chunks) {
          this.push(null);
          return;
        }
        // Each chunk differs (its number in front), so lost, doubled or swapped chunks show.
        const chunk = Buffer.from(pattern);
        chunk.writeUInt32LE(made, 0);
        made++;
        hashIn.update(chunk);
        this.push(chunk);
      },
    });
    await db.transaction(
      (tx) => {
        tx.root.set('big', Blob.from(source));
      },
      { attempts: 1 },
    );

    const peakStore = peak;
    const hashOut = createHash('sha256');
    let read = 0;
    const size = await db.read(async (tx) => {
      const blob = tx.root.get('big') as Blob;
      for await (const chunk of blob.stream()) {
        hashOut.update(chunk as Buffer);
        read += (chunk as Buffer).byteLength;
        sample();
      }
      return blob.size;
    });
    clearInterval(sampler);
    sample();
    await tell({
      type: 'result',
      size,
      read,
      hashIn: hashIn.digest('hex'),
      hashOut: hashOut.digest('hex'),
      before,
      peakStore,
      peak,
    });
  } finally {
    await db.close();
  }
});
