/**
 * Runs "another program" against the same stored data: a separate Node process with its own
 * class registry. Class names are global to a process, so this is how a test shows what
 * happens when data written by one version of a program (classes registered under some
 * names) is read by another version (other names, aliases, or a class gone).
 *
 * The storage is a MemoryStorage in each process; its committed transactions are carried
 * between the processes as raw records (data bytes and refs, never decoded), replayed with
 * `storage.commit`, so every record arrives byte for byte.
 */
import { execFileSync } from 'node:child_process';
import { MemoryStorage } from 'trove';

/** One committed transaction, as raw records. */
export interface RawTransaction {
  readonly records: ReadonlyArray<{ oid: number; data: string; refs: number[] }>;
}

/** Every committed transaction of `storage`, as raw records. */
export async function dump(storage: MemoryStorage): Promise<RawTransaction[]> {
  const transactions: RawTransaction[] = [];
  for await (const transaction of storage.iterator()) {
    transactions.push({
      records: transaction.records.map((r) => ({
        oid: r.oid,
        data: Buffer.from(r.data).toString('base64'),
        refs: [...r.refs],
      })),
    });
  }
  return transactions;
}

/** A new MemoryStorage holding exactly the given transactions. */
export async function storageFrom(transactions: readonly RawTransaction[]): Promise<MemoryStorage> {
  const storage = new MemoryStorage();
  const tids = new Map<number, number>();
  for (const { records } of transactions) {
    const tid = await storage.commit({
      baseTid: storage.lastTid(),
      writes: records.map((r) => ({
        oid: r.oid,
        data: Buffer.from(r.data, 'base64'),
        refs: r.refs,
        expectedTid: tids.get(r.oid) ?? 0,
      })),
    });
    for (const r of records) tids.set(r.oid, tid);
  }
  return storage;
}

const TEMPLATE = `
import { readFileSync } from 'node:fs';
const trove = await import(process.env.TROVE_URL);
const input = JSON.parse(readFileSync(0, 'utf8') || '[]');
const storage = new trove.MemoryStorage();
const tids = new Map();
for (const { records } of input) {
  const tid = await storage.commit({
    baseTid: storage.lastTid(),
    writes: records.map((r) => ({ oid: r.oid, data: Buffer.from(r.data, 'base64'), refs: r.refs, expectedTid: tids.get(r.oid) ?? 0 })),
  });
  for (const r of records) tids.set(r.oid, tid);
}
let output;
{
/*BODY*/
}
const transactions = [];
for await (const t of storage.iterator()) {
  transactions.push({ records: t.records.map((r) => ({ oid: r.oid, data: Buffer.from(r.data).toString('base64'), refs: [...r.refs] })) });
}
process.stdout.write(JSON.stringify({ transactions, output }));
`;

/**
 * Runs `body` (JavaScript, an async module body) in another Node process. It sees `trove`
 * (the package), `storage` (a MemoryStorage holding `input`), and sets `output` to hand a
 * JSON value back. Returns the storage's transactions afterwards, and the output.
 */
export function runProgram(
  body: string,
  input: readonly RawTransaction[] = [],
): { transactions: RawTransaction[]; output: any } {
  const script = TEMPLATE.replace('/*BODY*/', body);
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    input: JSON.stringify(input),
    env: { ...process.env, TROVE_URL: import.meta.resolve('trove') },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout);
}
