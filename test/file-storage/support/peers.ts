/**
 * The parent's side of the tests' child processes and worker threads: start one with some
 * data, exchange small messages with it, and wait for it to end. A child that fails reports
 * its error (with its `code`), which rejects whatever the parent is waiting for.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** A message between parent and child: a type, and anything else serialisable. */
export interface Message {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** How a child runs: as a process of its own, or as a worker thread of this one. */
export type PeerKind = 'process' | 'worker';

/** The error a child reported. */
export class ChildError extends Error {
  readonly code: string | undefined;

  constructor(message: Message) {
    super(`child failed: ${String(message.message)}\n${String(message.stack ?? '')}`);
    this.code = message.code as string | undefined;
  }
}

interface Waiter {
  readonly type: string;
  readonly resolve: (message: Message) => void;
  readonly reject: (error: Error) => void;
}

/** A running child. */
export class Peer {
  readonly #queue: Message[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #send: (message: Message) => void;
  readonly #kill: () => void;
  #failure: Error | undefined;
  /** Resolves with the exit code when the child has ended. */
  readonly exited: Promise<number>;
  /** The child's pid (a process's own, the parent's for a worker). */
  readonly pid: number;

  constructor(kind: PeerKind, script: URL, data: unknown) {
    if (kind === 'process') {
      const child: ChildProcess = spawn(
        process.execPath,
        [fileURLToPath(script), JSON.stringify(data)],
        { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
      );
      this.pid = child.pid!;
      child.on('message', (message) => this.#receive(message as Message));
      this.#send = (message) => child.send(message);
      this.#kill = () => child.kill('SIGKILL');
      this.exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
          this.#ended(`exited with code ${code} (signal ${signal})`);
          resolve(code ?? -1);
        });
      });
    } else {
      const worker = new Worker(script, { workerData: data });
      this.pid = process.pid;
      worker.on('message', (message) => this.#receive(message as Message));
      worker.on('error', (error) => this.#fail(error));
      this.#send = (message) => worker.postMessage(message);
      this.#kill = () => void worker.terminate();
      this.exited = new Promise((resolve) => {
        worker.on('exit', (code) => {
          this.#ended(`exited with code ${code}`);
          resolve(code);
        });
      });
    }
  }

  /** Sends a message to the child. */
  send(message: Message): void {
    this.#send(message);
  }

  /** The next message of this type (earlier ones of other types stay queued). */
  next(type: string): Promise<Message> {
    const index = this.#queue.findIndex((message) => message.type === type);
    if (index >= 0) return Promise.resolve(this.#queue.splice(index, 1)[0]!);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiters.push({ type, resolve, reject }));
  }

  /** Ends the child at once. */
  kill(): void {
    this.#kill();
  }

  /** Ends the child if it still runs (test cleanup), and waits until it has. */
  async close(): Promise<void> {
    let running = true;
    const exited = this.exited.then(() => {
      running = false;
    });
    await Promise.race([exited, Promise.resolve()]);
    if (running) this.#kill();
    await exited;
  }

  #receive(message: Message): void {
    if (message.type === 'error') {
      this.#fail(new ChildError(message));
      return;
    }
    const index = this.#waiters.findIndex((waiter) => waiter.type === message.type);
    if (index >= 0) this.#waiters.splice(index, 1)[0]!.resolve(message);
    else this.#queue.push(message);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure);
  }

  #ended(how: string): void {
    this.#fail(new Error(`the child ${how} before sending what was expected`));
  }
}

/** Starts `script` (a compiled child script next to the tests) as a process or a worker. */
export function startPeer(kind: PeerKind, script: URL, data: unknown): Peer {
  return new Peer(kind, script, data);
}

/** Waits for a child to end and checks it ended well. */
export async function finished(peer: Peer): Promise<void> {
  const code = await peer.exited;
  if (code !== 0) throw new Error(`a child exited with code ${code}`);
}
