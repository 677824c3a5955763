/**
 * The child's side of the tests' child processes and worker threads (see peers.ts): the
 * data it was started with, messages to and from the parent, and error reporting.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Message } from './peers.js';

const inWorker = !isMainThread;

/** The data the parent started this child with. */
export function childData<T>(): T {
  return (inWorker ? workerData : JSON.parse(process.argv[2] ?? 'null')) as T;
}

const queue: Message[] = [];
const waiters: Array<{ type: string; resolve: (message: Message) => void }> = [];

function receive(message: Message): void {
  const index = waiters.findIndex((waiter) => waiter.type === message.type);
  if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message);
  else queue.push(message);
}

if (inWorker) parentPort!.on('message', receive);
else process.on('message', (message) => receive(message as Message));

/** Sends a message to the parent; resolves once it is handed over. */
export function tell(message: Message): Promise<void> {
  if (inWorker) {
    parentPort!.postMessage(message);
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}

/** The next message of this type from the parent. */
export function expect(type: string): Promise<Message> {
  const index = queue.findIndex((message) => message.type === type);
  if (index >= 0) return Promise.resolve(queue.splice(index, 1)[0]!);
  return new Promise((resolve) => waiters.push({ type, resolve }));
}

/** Runs the child's work; reports a failure to the parent; then lets the child end. */
export async function runChild(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown; stack?: unknown };
    process.exitCode = 1;
    await tell({
      type: 'error',
      code: typeof e.code === 'string' ? e.code : undefined,
      message: String(e.message ?? error),
      stack: String(e.stack ?? ''),
    }).catch(() => undefined);
  } finally {
    if (inWorker) parentPort!.close();
    else process.disconnect?.();
  }
}
