/**
 * Batches for training and evaluation, decoded while the model trains.
 *
 * Order. An epoch's order is a pure function of (seed, epoch): `epochOrder`. A checkpoint that
 * stores seed, epoch and the next batch index (`startBatch`) replays the rest of the epoch
 * exactly after a restart.
 *
 * Overlap. The stream keeps `prefetch` batches decoding ahead of the one the consumer holds, so
 * a synchronous train step that blocks the main thread does not stop decoding:
 *  - by default on decode worker threads (decode-pool.ts): each worker reads, decodes,
 *    converts and writes floats into the batch's shared buffer; the main thread only posts one
 *    message per worker per batch (~10-20 us/image of main-thread time).
 *  - with threads: 0, in-process: decodes are queued on libuv's threadpool before the step
 *    blocks, but the copy out of each decoded image and the float conversion (and sharp's
 *    per-call JS) need the main thread when the step returns, ~170-210 us/image measured, ~5-7
 *    ms per batch of 32. A file not in the byte cache also needs the main thread between its
 *    read and its decode (with prefetch >= 2 the read overlaps one step, the decode the next).
 *
 * Memory. Only `prefetch + keep` batch buffers exist, whatever the dataset size (200k images
 * as float32 would be 29 GB). A yielded batch's `x` and `y` are views of a reused buffer:
 * batch k stays valid until the consumer asks for batch k + keep (default keep = 1: until the
 * next iteration of `for await`). Copy what you need longer, and dispose a tensor made from
 * `x` before asking for the next batch: tfjs's CPU backend keeps a Float32Array it is given
 * instead of copying it. With decode
 * workers `x` is backed by a SharedArrayBuffer (the copy is an ordinary one). `indices` is the
 * consumer's to keep.
 */
import path from 'node:path';
import { encodeLabel } from './charset.ts';
import type { Dataset } from './dataset.ts';
import { defaultDecodeThreads, sharedDecodePool, type DecodeJob, type DecodePool } from './decode-pool.ts';
import type { AugmentSpec } from './augment.ts';
import { decodeInto, type Decoder } from './decoders.ts';
import { CHANNELS } from './pixels.ts';
import { Rng } from '../util/rng.ts';

export interface Batch {
  /** n x height x width x 3 float32 RGB in [0, 1], NHWC. */
  x: Float32Array;
  /** n x length class indices (charset positions), row-major. */
  y: Int32Array;
  /** Images in this batch; < batchSize only for the last batch of an epoch. */
  n: number;
  /** Positions in `dataset.items` of the images, in batch order. */
  indices: Uint32Array;
  /** This batch's number within the epoch (0-based). */
  batch: number;
  epoch: number;
  height: number;
  width: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with epochOrder(seed, epoch); false keeps dataset order (evaluation). */
  shuffle?: boolean;
  seed?: number | string;
  epoch?: number;
  /** Batches decoded ahead of the one the consumer holds. */
  prefetch?: number;
  /** Yielded batches whose buffers stay valid (see the module comment). */
  keep?: number;
  /** Drop a last batch smaller than batchSize (training); evaluation wants it. */
  dropRemainder?: boolean;
  /** Resume within the epoch: the first batch to yield. */
  startBatch?: number;
  /** 'canvas' (default) or 'sharp' (in-process only; for comparison). */
  decoder?: Decoder;
  /**
   * Decode worker threads (canvas only); default min(4, cores - 1), at least 1. 0 decodes
   * in-process: on libuv's threadpool, with the copy out and float conversion on the main thread.
   */
  threads?: number;
  /**
   * Augment every image (training), drawn per (seed, epoch, item) (augment.ts): the same
   * pixels whatever the thread count, batch size or resume point. Canvas decoder only.
   */
  augment?: AugmentSpec | null;
}

/** The order of `count` items in an epoch: a pure function of (seed, epoch). */
export function epochOrder(count: number, seed: number | string, epoch: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const rng = new Rng(`epoch\u0000${seed}\u0000${epoch}`);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** Class indices of every item's label, n x length. */
function encodedLabels(ds: Dataset): Int32Array {
  const L = ds.spec.length;
  const labels = new Int32Array(ds.items.length * L);
  ds.items.forEach((item, i) => labels.set(encodeLabel(item.label, ds.spec), i * L));
  return labels;
}

/** Number of batches in an epoch of `count` items. */
export function batchesPerEpoch(count: number, batchSize: number, dropRemainder = false): number {
  return dropRemainder ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

/** One epoch of batches; iterate it once. */
export class BatchStream implements AsyncIterable<Batch> {
  readonly batchSize: number;
  readonly epoch: number;
  readonly seed: number | string;
  /** Batches in the whole epoch (including those before startBatch). */
  readonly batchCount: number;
  private readonly order: Uint32Array;
  private readonly labels: Int32Array;
  private readonly prefetch: number;
  private readonly slots: { x: Float32Array; y: Int32Array }[];
  private readonly imageSize: number;
  private readonly threads: number;
  private pool: DecodePool | null = null;
  private nextBatch: number;
  private started = false;

  constructor(
    readonly dataset: Dataset,
    private readonly opts: BatchOptions,
  ) {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    const prefetch = opts.prefetch ?? 2;
    const keep = opts.keep ?? 1;
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`prefetch must be an integer >= 0, got ${prefetch}`);
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be an integer >= 1, got ${keep}`);
    const n = dataset.items.length;
    this.batchSize = batchSize;
    this.epoch = opts.epoch ?? 0;
    this.seed = opts.seed ?? 0;
    this.prefetch = prefetch;
    this.batchCount = batchesPerEpoch(n, batchSize, opts.dropRemainder);
    this.nextBatch = opts.startBatch ?? 0;
    if (!Number.isInteger(this.nextBatch) || this.nextBatch < 0 || this.nextBatch > this.batchCount) {
      throw new RangeError(`startBatch ${opts.startBatch} is outside 0..${this.batchCount}`);
    }
    this.order = opts.shuffle === false ? Uint32Array.from({ length: n }, (_, i) => i) : epochOrder(n, this.seed, this.epoch);
    const { spec } = dataset;
    this.labels = encodedLabels(dataset);
    this.imageSize = dataset.height * dataset.width * CHANNELS;
    this.threads = (opts.decoder ?? 'canvas') === 'canvas' ? (opts.threads ?? defaultDecodeThreads()) : 0;
    if (!Number.isInteger(this.threads) || this.threads < 0) throw new RangeError(`threads must be an integer >= 0, got ${opts.threads}`);
    const slotCount = Math.min(prefetch + keep, Math.max(1, this.batchCount));
    // Decode workers write into shared memory.
    const floats = (count: number) => (this.threads > 0 ? new Float32Array(new SharedArrayBuffer(count * 4)) : new Float32Array(count));
    this.slots = Array.from({ length: slotCount }, () => ({
      x: floats(batchSize * this.imageSize),
      y: new Int32Array(batchSize * spec.length),
    }));
  }

  /** The next batch to be yielded: store it (with seed and epoch) to resume mid-epoch. */
  get position(): number {
    return this.nextBatch;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    if (this.started) throw new Error('a BatchStream is iterated once; make a new one for the next epoch');
    this.started = true;
    if (this.threads > 0 && this.nextBatch < this.batchCount) this.pool = sharedDecodePool(this.threads);
    const pending: Promise<Batch>[] = [];
    let launched = this.nextBatch;
    const launch = () => {
      if (launched >= this.batchCount) return;
      const p = this.prepare(launched++);
      p.catch(() => {}); // surfaced when awaited; this avoids an unhandled rejection meanwhile
      pending.push(p);
    };
    for (let i = 0; i < this.prefetch; i++) launch();
    while (this.nextBatch < this.batchCount) {
      if (pending.length === 0) launch(); // prefetch 0
      const batch = await pending.shift()!;
      // Queue the decode of batch k + prefetch now, before handing batch k to a consumer that
      // may block the main thread. Its slot was batch k - keep's, which the consumer has
      // released by asking for batch k.
      if (this.prefetch > 0) launch();
      this.nextBatch++;
      yield batch;
    }
  }

  private async prepare(k: number): Promise<Batch> {
    const ds = this.dataset;
    const { batchSize, imageSize } = this;
    const L = ds.spec.length;
    const start = k * batchSize;
    const n = Math.min(batchSize, ds.items.length - start);
    const slot = this.slots[k % this.slots.length];
    const indices = this.order.slice(start, start + n);
    const x = slot.x.subarray(0, n * imageSize);
    const y = slot.y.subarray(0, n * L);
    indices.forEach((item, j) => y.set(this.labels.subarray(item * L, (item + 1) * L), j * L));
    const size = { width: ds.width, height: ds.height };
    const augment = this.opts.augment ? { spec: this.opts.augment, seed: this.seed, epoch: this.epoch } : undefined;
    if (this.pool) {
      const jobs: DecodeJob[] = Array.from(indices, (item, j) => {
        const file = path.join(ds.dir, ds.items[item].file);
        return { path: file, bytes: ds.cache?.get(file), offset: j * imageSize, item };
      });
      await this.pool.decode(jobs, slot.x, size, augment);
    } else {
      const decodeOpts = { ...size, cache: ds.cache, decoder: this.opts.decoder };
      await Promise.all(
        Array.from(indices, (item, j) =>
          decodeInto(path.join(ds.dir, ds.items[item].file), x, j * imageSize, augment ? { ...decodeOpts, augment: { request: augment, item } } : decodeOpts),
        ),
      );
    }
    return { x, y, n, indices, batch: k, epoch: this.epoch, height: ds.height, width: ds.width };
  }
}

/** `for await (const b of batches(ds, {...})) trainStep(b)`: one epoch. */
export async function* batches(ds: Dataset, opts: BatchOptions): AsyncGenerator<Batch> {
  yield* new BatchStream(ds, opts);
}

// ---------------------------------------------------------------------------------------------
// The trainer's view of a dataset

/** A dataset as the trainer consumes it: its size, per-item names and labels, and epochs of batches. */
export interface BatchSource {
  readonly size: number;
  readonly files: readonly string[];
  readonly labels: readonly string[];
  batches(o: Omit<BatchOptions, 'prefetch' | 'keep' | 'decoder' | 'threads'>): AsyncIterable<Batch>;
}

export function batchSource(ds: Dataset, defaults: Pick<BatchOptions, 'prefetch' | 'keep' | 'decoder' | 'threads'> = {}): BatchSource {
  return {
    size: ds.items.length,
    files: ds.items.map((i) => i.file),
    labels: ds.items.map((i) => i.label),
    batches: (o) => new BatchStream(ds, { ...defaults, ...o }),
  };
}
