/**
 * Worker threads that decode images into a batch's SharedArrayBuffer (what BatchStream uses by
 * default; the decoders and their costs are in decoders.ts). Each thread runs decode-worker.ts.
 */
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { UserError } from '../util/errors.ts';
import { nodeWorker } from '../util/node-script.ts';
import type { AugmentRequest } from './augment.ts';
import type { CloseRequest, DecodeJob, DecodeReply, DecodeRequest } from './decode-worker.ts';
import { CHANNELS } from './pixels.ts';

export type { DecodeJob } from './decode-worker.ts';

/** Decoding threads; `min(4, cores - 1)`, at least 1: the main thread is the trainer's. */
export function defaultDecodeThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * Worker threads that decode images into a SharedArrayBuffer. The workers are unref'd while
 * idle, so they never keep a process alive.
 */
export class DecodePool {
  private readonly workers: Worker[];
  private readonly waiting = new Map<number, { resolve(): void; reject(e: Error): void; jobs: DecodeJob[] }>();
  private nextId = 0;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  /** Called when the pool has had nothing to do for `idleMs`. */
  onIdle: (() => void) | null = null;

  constructor(
    readonly threads: number,
    private readonly idleMs = 10_000,
  ) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`decode threads must be a positive integer, got ${threads}`);
    this.workers = Array.from({ length: threads }, () => {
      const w = nodeWorker(import.meta.url, './decode-worker');
      w.unref();
      w.on('message', (m: DecodeReply) => this.settle(m));
      w.on('error', (e) => this.breakDown(e));
      w.on('exit', (code) => {
        if (!this.closing) this.breakDown(new Error(`a decode worker exited (code ${code})`));
      });
      return w;
    });
  }

  get alive(): boolean {
    return !this.failure && !this.closing;
  }

  /**
   * Decodes each job's image into `out` (backed by a SharedArrayBuffer) at its offset, as
   * float32 RGB value / 255. A bad file rejects with a UserError naming it. With `augment`,
   * each image is augmented (augment.ts) from its job's `item` first.
   */
  decode(jobs: DecodeJob[], out: Float32Array, size: { width: number; height: number }, augment?: AugmentRequest): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('the decode pool is closed'));
    if (!(out.buffer instanceof SharedArrayBuffer) || out.byteOffset !== 0) {
      return Promise.reject(new TypeError('DecodePool.decode needs a Float32Array over a whole SharedArrayBuffer'));
    }
    const floats = size.width * size.height * CHANNELS;
    for (const j of jobs) {
      if (j.offset < 0 || j.offset + floats > out.length) {
        return Promise.reject(new RangeError(`decode offset ${j.offset} leaves no room for ${floats} floats in ${out.length}`));
      }
    }
    if (this.idleTimer) clearTimeout(this.idleTimer), (this.idleTimer = null);
    const per = Math.ceil(jobs.length / this.threads);
    const parts: Promise<void>[] = [];
    for (let k = 0; k * per < jobs.length; k++) {
      const chunk = jobs.slice(k * per, (k + 1) * per);
      const id = this.nextId++;
      const worker = this.workers[k];
      parts.push(
        new Promise<void>((resolve, reject) => {
          this.waiting.set(id, { resolve, reject, jobs: chunk });
          worker.ref(); // awaited work keeps the process alive
          const buffer = out.buffer as SharedArrayBuffer;
          worker.postMessage({ type: 'decode', id, buffer, width: size.width, height: size.height, jobs: chunk, augment } satisfies DecodeRequest);
        }),
      );
    }
    return Promise.all(parts).then(() => undefined);
  }

  private settle(m: DecodeReply): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.problem !== undefined) w.reject(new UserError(`${w.jobs[m.index ?? 0].path}: ${m.problem}`));
    else w.resolve();
    if (this.waiting.size === 0 && !this.closing) {
      for (const worker of this.workers) worker.unref();
      this.idleTimer = setTimeout(() => this.onIdle?.(), this.idleMs);
      this.idleTimer.unref();
    }
  }

  private breakDown(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /** Lets each worker collect its garbage, then ends it. */
  close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer), (this.idleTimer = null);
    this.closing ??= (async () => {
      this.breakDown(new Error('the decode pool was closed'));
      await Promise.all(
        this.workers.map(async (w) => {
          w.ref();
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              w.off('message', onMessage);
              w.off('exit', done);
              resolve();
            };
            const onMessage = (m: DecodeReply) => m.closed && done();
            const timer = setTimeout(done, 2000);
            w.on('message', onMessage);
            w.once('exit', done);
            w.postMessage({ type: 'close', id: -1 } satisfies CloseRequest);
          });
          await w.terminate();
        }),
      );
    })();
    return this.closing;
  }
}

let shared: DecodePool | null = null;

/**
 * The process's decode pool, made on first use (a worker starts in ~50 ms compiled; from src/,
 * tsx's loader adds a few hundred ms per thread) and closed after 10 s without work or when the
 * process is about to exit.
 */
export function sharedDecodePool(threads = defaultDecodeThreads()): DecodePool {
  if (shared && shared.alive && shared.threads === threads) return shared;
  if (shared) void shared.close();
  const pool = new DecodePool(threads);
  pool.onIdle = () => {
    if (shared === pool) shared = null;
    void pool.close();
  };
  shared = pool;
  return pool;
}

/** Ends the shared pool's threads (tests, and before process.exit()). */
export async function closeDecodePools(): Promise<void> {
  const pool = shared;
  shared = null;
  await pool?.close();
}

// A process that ends by running out of work closes the pool first (see decode-worker.ts's close).
process.on('beforeExit', () => {
  if (shared) void closeDecodePools();
});
