/**
 * A minimal async mutex: callers run one at a time, in arrival order.
 *
 * @internal
 * @module
 */

export class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();

  /** Runs `fn` once every earlier caller has finished; returns its result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Resolves once everything queued so far has finished. */
  drain(): Promise<void> {
    return this.#tail;
  }
}
