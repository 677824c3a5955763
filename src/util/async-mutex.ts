/**
 * A minimal async mutex: callers run one at a time, in arrival order.
 *
 * @module
 */

export class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();
  /** Callers queued or running. */
  #busy = 0;

  /** Runs `fn` once every earlier caller has finished; returns its result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.#busy++;
    const result = this.#tail.then(fn);
    const done = () => {
      this.#busy--;
    };
    this.#tail = result.then(done, done);
    return result;
  }

  /**
   * True when no caller is queued or running, so that work done synchronously now cannot
   * overlap one (a caller counts until just after its result settles).
   */
  get idle(): boolean {
    return this.#busy === 0;
  }

  /** Resolves once everything queued so far has finished. */
  drain(): Promise<void> {
    return this.#tail;
  }
}
