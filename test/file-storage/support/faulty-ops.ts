/**
 * File operations for FileStorage's internal `fileOps` option that work like the real ones
 * until a test arms a fault: then a write to the chosen file stops short with ENOSPC (the
 * disk is full), or a sync fails with EIO. Each armed fault fires once.
 */
import * as fs from 'node:fs';
import type { FileStorageOptions } from 'trove';

/** FileStorage's internal `fileOps` seam (not in the public typings). */
export interface FileOps {
  write(fd: number, buffer: Uint8Array, position: number): Promise<void>;
  /** With `onCallingThread`, the storage asks for the sync before this returns. */
  sync(fd: number, onCallingThread?: boolean): Promise<void>;
  truncate(fd: number, length: number): Promise<void>;
}

/** FileStorage options with the internal `fileOps` seam set. */
export function withFileOps(options: FileStorageOptions, fileOps: FileOps): FileStorageOptions {
  return { ...options, fileOps } as FileStorageOptions;
}

/** Which file a fault is for: the data file at the path (as it was when armed), or another. */
export type FaultTarget = 'data file' | 'other file';

/** A write or sync to hold until the test lets it go. */
export interface Gate {
  /** Resolves when an operation reached the gate (and is waiting there). */
  readonly reached: Promise<void>;
  /** Lets the waiting operation (and later ones) go. */
  open(): void;
}

function systemError(code: string): Error {
  return Object.assign(new Error(`${code} (injected)`), { code });
}

function writeAll(fd: number, buffer: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === buffer.byteLength) {
        resolve();
        return;
      }
      fs.write(fd, buffer, done, buffer.byteLength - done, position + done, (error, written) => {
        if (error) reject(error);
        else step(done + written);
      });
    };
    step(0);
  });
}

/** An operation made, as record() lists it. */
export interface Operation {
  readonly op: 'write' | 'sync' | 'truncate';
  readonly target: FaultTarget;
}

export class FaultyOps {
  readonly #path: string;
  #dataInode = 0;
  #writeFault: { target: FaultTarget; keepBytes: (length: number) => number } | undefined;
  #syncFault: { target: FaultTarget; skip: number } | undefined;
  #writeGate: { target: FaultTarget; gate: Promise<void>; reached: () => void } | undefined;
  #syncGate: { target: FaultTarget; gate: Promise<void>; reached: () => void } | undefined;
  #log: Operation[] | undefined;
  /** How many faults fired. */
  fired = 0;

  /** Faults for the database file at `path`. */
  constructor(path: string) {
    this.#path = path;
  }

  /** The operations to pass as `fileOps`. */
  readonly ops: FileOps = {
    write: async (fd, buffer, position) => {
      this.#note('write', fd);
      const gate = this.#writeGate;
      if (gate !== undefined && this.#is(fd, gate.target)) {
        this.#writeGate = undefined;
        gate.reached();
        await gate.gate;
      }
      const fault = this.#writeFault;
      if (fault !== undefined && this.#is(fd, fault.target)) {
        this.#writeFault = undefined;
        this.fired++;
        const keep = fault.keepBytes(buffer.byteLength);
        if (keep > 0) await writeAll(fd, buffer.subarray(0, keep), position);
        throw systemError('ENOSPC');
      }
      await writeAll(fd, buffer, position);
    },
    sync: async (fd, onCallingThread) => {
      this.#note('sync', fd);
      const gate = this.#syncGate;
      if (gate !== undefined && this.#is(fd, gate.target)) {
        this.#syncGate = undefined;
        gate.reached();
        await gate.gate;
      }
      const fault = this.#syncFault;
      if (fault !== undefined && this.#is(fd, fault.target)) {
        if (fault.skip > 0) {
          fault.skip--;
        } else {
          this.#syncFault = undefined;
          this.fired++;
          throw systemError('EIO');
        }
      }
      if (onCallingThread === true) {
        fs.fdatasyncSync(fd);
        return;
      }
      await new Promise<void>((resolve, reject) => {
        fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
      });
    },
    truncate: (fd, length) =>
      new Promise<void>((resolve, reject) => {
        this.#note('truncate', fd);
        fs.ftruncate(fd, length, (error) => (error ? reject(error) : resolve()));
      }),
  };

  /**
   * The next write to `target` writes `keepBytes(length)` bytes of its buffer, then fails
   * with ENOSPC.
   */
  failNextWrite(target: FaultTarget, keepBytes: (length: number) => number = () => 0): void {
    this.#remember();
    this.#writeFault = { target, keepBytes };
  }

  /** The sync of `target` after `skip` successful ones fails with EIO. */
  failSync(target: FaultTarget, skip = 0): void {
    this.#remember();
    this.#syncFault = { target, skip };
  }

  /** Holds the next write to `target` until the returned gate is opened. */
  holdNextWrite(target: FaultTarget): Gate {
    const { gate, armed } = this.#gate(target);
    this.#writeGate = armed;
    return gate;
  }

  /** Holds the next sync of `target` until the returned gate is opened. */
  holdNextSync(target: FaultTarget): Gate {
    const { gate, armed } = this.#gate(target);
    this.#syncGate = armed;
    return gate;
  }

  #gate(target: FaultTarget) {
    this.#remember();
    let open!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const reachedPromise = new Promise<void>((resolve) => {
      reached = resolve;
    });
    return { gate: { reached: reachedPromise, open }, armed: { target, gate, reached } };
  }

  /**
   * Lists every operation made from now on, in order, in the array returned; 'data file' is
   * the file at the path now (after a pack renamed another over it, the old one).
   */
  record(): readonly Operation[] {
    this.#remember();
    this.#log = [];
    return this.#log;
  }

  #note(op: Operation['op'], fd: number): void {
    this.#log?.push({ op, target: this.#is(fd, 'data file') ? 'data file' : 'other file' });
  }

  /** Disarms every fault and gate not yet fired. */
  disarm(): void {
    this.#writeFault = undefined;
    this.#syncFault = undefined;
    this.#writeGate = undefined;
    this.#syncGate = undefined;
  }

  #remember(): void {
    this.#dataInode = fs.statSync(this.#path).ino;
  }

  #is(fd: number, target: FaultTarget): boolean {
    const isData = fs.fstatSync(fd).ino === this.#dataInode;
    return target === 'data file' ? isData : !isData;
  }
}
