/**
 * A decode thread of DecodePool (decode-pool.ts). It decodes synchronously with @napi-rs/canvas
 * (the thread is the parallelism), converts to floats, and writes them straight into the shared
 * batch buffer; the main thread only posts a message per worker per batch.
 *
 * Started with nodeWorker (util/node-script.ts): compiled, as dist/data/decode-worker.js; from
 * src/, through tsx.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { Image, createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import { firstLine } from '../util/errors.ts';
import { augmentRgba, type AugmentRequest } from './augment.ts';
import { rgbaToUnit } from './pixels.ts';

export interface DecodeJob {
  /** The file; named in errors, and read by the worker when `bytes` is absent. */
  path: string;
  bytes?: Uint8Array;
  /** Where its floats start in the output. */
  offset: number;
  /** Its position in the dataset: what its augmentation is drawn from (augment.ts). */
  item?: number;
}

/** Decode these jobs' images, each `width` x `height`, into `buffer` (float32) at their offsets. */
export interface DecodeRequest {
  type: 'decode';
  id: number;
  buffer: SharedArrayBuffer;
  width: number;
  height: number;
  jobs: DecodeJob[];
  /** Augment every image (training batches); each job then carries its `item`. */
  augment?: AugmentRequest;
}

/** Collect garbage, answer `closed`, and expect to be terminated. */
export interface CloseRequest {
  type: 'close';
  id: number;
}

/**
 * The answer to a request: done; or, for a decode, the first job that failed (`index`) and what
 * is wrong with its file (`problem`, without the file name); or, for a close, `closed`.
 */
export interface DecodeReply {
  id: number;
  index?: number;
  problem?: string;
  closed?: boolean;
}

if (!parentPort) throw new Error('decode-worker.ts runs as a worker thread of a DecodePool');
const port = parentPort;

// @napi-rs/canvas prints "ObjectRef is not unref" for every image reference still awaiting
// garbage collection when a thread ends. So the worker collects when it falls idle and before
// it closes; a process.exit() in the middle of an epoch can still print some.
const collectGarbage = exposeGc();
let idle: NodeJS.Timeout | null = null;

function exposeGc(): (() => void) | null {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
}

function collectWhenIdle(): void {
  if (idle) clearTimeout(idle);
  idle = setTimeout(() => {
    idle = null;
    collectGarbage?.();
  }, 250);
  idle.unref();
}

/** One canvas per size, reused: the copy out of a decoded Image is synchronous, so one suffices. */
const contexts = new Map<string, SKRSContext2D>();
function context(width: number, height: number): SKRSContext2D {
  const key = `${width}x${height}`;
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = createCanvas(width, height).getContext('2d');
    // 'copy' replaces every pixel, so a translucent image never shows the previous one.
    ctx.globalCompositeOperation = 'copy';
    contexts.set(key, ctx);
  }
  return ctx;
}

/** Decodes one job into `out`; returns what is wrong with its file, or null. */
function decode(job: DecodeJob, out: Float32Array, width: number, height: number, augment?: AugmentRequest): string | null {
  let bytes = job.bytes;
  if (!bytes) {
    try {
      bytes = readFileSync(job.path);
    } catch (e) {
      return `cannot be read (${firstLine(e)})`;
    }
  }
  const img = new Image();
  img.src = bytes;
  const w = img.width;
  const h = img.height;
  if (!w || !h) return 'cannot be decoded (not an image @napi-rs/canvas can read)';
  if (w !== width || h !== height) return `is ${w}x${h} (width x height), expected ${width}x${height}`;
  const ctx = context(w, h);
  ctx.clearRect(0, 0, w, h); // never leave the previous image if this one draws nothing
  ctx.drawImage(img, 0, 0);
  let rgba: Uint8Array | Uint8ClampedArray = ctx.getImageData(0, 0, w, h).data;
  if (augment) rgba = augmentRgba(rgba, w, h, augment, job.item ?? 0, ctx);
  rgbaToUnit(rgba, out, job.offset, w * h);
  return null;
}

function close(id: number): void {
  if (idle) clearTimeout(idle);
  // Native finalizers run on a later turn of the loop than the collection that finds them.
  collectGarbage?.();
  setImmediate(() => {
    collectGarbage?.();
    setImmediate(() => port.postMessage({ id, closed: true } satisfies DecodeReply));
  });
}

port.on('message', (m: DecodeRequest | CloseRequest) => {
  if (m.type === 'close') return close(m.id);
  collectWhenIdle();
  const out = new Float32Array(m.buffer);
  for (let i = 0; i < m.jobs.length; i++) {
    let problem: string | null;
    try {
      problem = decode(m.jobs[i], out, m.width, m.height, m.augment);
    } catch (e) {
      problem = `cannot be decoded (${firstLine(e)})`;
    }
    if (problem) {
      port.postMessage({ id: m.id, index: i, problem } satisfies DecodeReply);
      return;
    }
  }
  port.postMessage({ id: m.id } satisfies DecodeReply);
});
