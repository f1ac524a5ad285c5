/**
 * Image bytes -> float pixels, and the cheap checks that tell a sound image file from a
 * broken one.
 *
 * Pixels are written as float32 NHWC RGB, value / 255, so in [0, 1]. The model takes these
 * raw values (no mean/std normalisation), as the report's Keras code did with `x / 255`.
 *
 * Decoders, all wrapping well-kept native libraries (numbers from bench/pipeline.ts on
 * 200x60 images):
 *  - DecodePool (what BatchStream uses by default): worker threads running @napi-rs/canvas
 *    (Skia over libpng/libjpeg-turbo) synchronously, converting to floats and writing them into
 *    the batch's SharedArrayBuffer. ~10-20 us/image of main-thread time.
 *  - decodeInto(..., {decoder: 'canvas'}): in-process; `Image.decode()` runs on libuv's
 *    threadpool, but the copy out (drawImage + getImageData) and the float conversion run on
 *    the main thread: ~150-170 us/image of it.
 *  - decodeInto(..., {decoder: 'sharp'}): libvips. 2-3x slower per small image than canvas
 *    (its per-call pipeline setup dominates, ~200-300 us/image of it on the main thread), kept
 *    as the reference and for `verifyDecode`, where its strictness is the point.
 * Canvas and sharp give identical bytes for opaque, untagged or sRGB-tagged images (checked
 * for RGB/RGBA/grey/palette/16-bit PNG and baseline/progressive JPEG). They differ on
 * translucent pixels (canvas stores premultiplied alpha, so their colour comes back rounded,
 * 0 when fully transparent; sharp drops alpha untouched) and on files tagged with another ICC
 * profile (canvas converts to sRGB, sharp here keeps the file's values). CAPTCHA generators
 * write opaque sRGB images; training and prediction both use canvas.
 *
 * Skia is lenient: it decodes a truncated or bit-flipped PNG/JPEG without complaint, filling
 * what is missing. Hence `checkImage`, a structural check run at load time on the bytes
 * (PNG: every chunk's CRC, IHDR, IDAT, IEND; JPEG: the marker structure through EOI): a few
 * us/image, against ~200-400 us for a decode and ~1 ms for sharp's strict decode
 * (`verifyDecode`), which `loadDataset({verify: 'full'})` adds.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { Image, createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { UserError } from '../util/errors.ts';

export const CHANNELS = 3;

export type ImageFormat = 'png' | 'jpeg';
export type Decoder = 'canvas' | 'sharp';

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
}

/** An image file that is not sound; the message says what is wrong, without the file name. */
export class ImageProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageProblem';
  }
}

/** value / 255 for every byte value: exact (same float32 as the division) and branch-free. */
const BYTE_TO_UNIT = new Float32Array(256);
for (let i = 0; i < 256; i++) BYTE_TO_UNIT[i] = i / 255;

// ---------------------------------------------------------------------------------------------
// Structural check

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Format and size of an image from its bytes, after checking its structure (see the module
 * comment). Throws ImageProblem. Does not decode pixels.
 */
export function checkImage(bytes: Uint8Array): ImageInfo {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length === 0) throw new ImageProblem('is empty (0 bytes)');
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return checkPng(b);
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xd8) return checkJpeg(b);
  throw new ImageProblem('is not a PNG or JPEG image (unrecognised signature)');
}

function checkPng(b: Buffer): ImageInfo {
  let p = 8;
  let width = 0;
  let height = 0;
  let sawIdat = false;
  let first = true;
  while (true) {
    if (p + 8 > b.length) throw new ImageProblem(`is truncated: the PNG ends at byte ${b.length} before its IEND chunk`);
    const len = b.readUInt32BE(p);
    const type = b.toString('latin1', p + 4, p + 8);
    if (len > 0x7fffffff) throw new ImageProblem(`is corrupt: PNG chunk at byte ${p} has an impossible length`);
    if (p + 12 + len > b.length) throw new ImageProblem(`is truncated: the PNG ends inside its ${printable(type)} chunk`);
    const stored = b.readUInt32BE(p + 8 + len);
    if (crc32(b.subarray(p + 4, p + 8 + len)) !== stored) {
      throw new ImageProblem(`is corrupt: CRC mismatch in the PNG ${printable(type)} chunk at byte ${p}`);
    }
    if (first) {
      if (type !== 'IHDR' || len !== 13) throw new ImageProblem('is corrupt: the PNG does not start with an IHDR chunk');
      width = b.readUInt32BE(p + 8);
      height = b.readUInt32BE(p + 12);
      if (width === 0 || height === 0) throw new ImageProblem(`is corrupt: PNG size ${width}x${height}`);
      first = false;
    } else if (type === 'IDAT') {
      sawIdat = true;
    } else if (type === 'IEND') {
      if (!sawIdat) throw new ImageProblem('is corrupt: the PNG has no image data (IDAT chunk)');
      return { format: 'png', width, height };
    }
    p += 12 + len;
  }
}

function checkJpeg(b: Buffer): ImageInfo {
  let p = 2;
  let width = 0;
  let height = 0;
  let sawScan = false;
  const truncated = () => new ImageProblem(`is truncated: the JPEG ends at byte ${b.length} before its end-of-image marker`);
  while (true) {
    if (p >= b.length) throw truncated();
    if (b[p] !== 0xff) throw new ImageProblem(`is corrupt: no JPEG marker at byte ${p}`);
    while (p < b.length && b[p] === 0xff) p++; // fill bytes
    if (p >= b.length) throw truncated();
    const m = b[p++];
    if (m === 0xd9) {
      if (!sawScan || width === 0) throw new ImageProblem('is corrupt: the JPEG has no frame or no scan');
      return { format: 'jpeg', width, height };
    }
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue; // markers without a segment
    if (p + 2 > b.length) throw truncated();
    const len = b.readUInt16BE(p);
    if (len < 2) throw new ImageProblem(`is corrupt: JPEG segment at byte ${p} has length ${len}`);
    if (p + len > b.length) throw truncated();
    const isFrame = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (isFrame) {
      if (len < 8) throw new ImageProblem('is corrupt: JPEG frame header too short');
      height = b.readUInt16BE(p + 3);
      width = b.readUInt16BE(p + 5);
      if (width === 0 || height === 0) throw new ImageProblem(`has an unsupported JPEG size ${width}x${height}`);
    }
    p += len;
    if (m === 0xda) {
      if (width === 0) throw new ImageProblem('is corrupt: JPEG scan before its frame header');
      sawScan = true;
      // Entropy-coded data runs to the next marker: 0xFF followed by neither 0x00 (a stuffed
      // byte) nor a restart marker.
      while (true) {
        const ff = b.indexOf(0xff, p);
        if (ff < 0 || ff + 1 >= b.length) throw truncated();
        const next = b[ff + 1];
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7) || next === 0xff) {
          p = next === 0xff ? ff + 1 : ff + 2;
          continue;
        }
        p = ff;
        break;
      }
    }
  }
}

function printable(type: string): string {
  return /^[A-Za-z]{4}$/.test(type) ? type : JSON.stringify(type);
}

const crc32: (data: Uint8Array) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data) => (zlib as unknown as { crc32(d: Uint8Array): number }).crc32(data) >>> 0
    : crc32Js;

let CRC_TABLE: Uint32Array | undefined;
/** Fallback for Node < 20.15, which lacks zlib.crc32. */
function crc32Js(data: Uint8Array): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A full strict decode with libvips (libpng checks CRCs and the zlib stream, libjpeg reports
 * premature ends). Throws ImageProblem. About 1 ms per small image: for `verify: 'full'`.
 */
export async function verifyDecode(bytes: Uint8Array): Promise<void> {
  try {
    await sharp(bytes, { failOn: 'warning', ignoreIcc: true }).raw().toBuffer();
  } catch (e) {
    throw new ImageProblem(`cannot be decoded (${firstLine(e)})`);
  }
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0].trim();
}

// ---------------------------------------------------------------------------------------------
// Encoded-bytes cache

/**
 * Encoded image bytes kept in memory, so epochs after the first do not touch the disk.
 * Files are ~10-25 KB; the budget bounds the total (default 1 GiB, ~50k-100k images); files
 * past the budget are read from disk each time (the OS page cache usually still has them).
 */
export class ByteCache {
  private readonly files = new Map<string, Buffer>();
  private used = 0;

  constructor(readonly maxBytes = 1 << 30) {}

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.files.size;
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  /** Keeps the bytes if the budget allows; returns whether it did. */
  put(path: string, bytes: Buffer): boolean {
    if (this.files.has(path)) return true;
    if (this.used + bytes.length > this.maxBytes) return false;
    this.files.set(path, bytes);
    this.used += bytes.length;
    return true;
  }

  get(path: string): Buffer | undefined {
    return this.files.get(path);
  }

  async read(path: string): Promise<Buffer> {
    const hit = this.files.get(path);
    if (hit) return hit;
    const bytes = await readFile(path);
    this.put(path, bytes);
    return bytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /** Expected size; a different one is an error (and nothing is written). */
  width?: number;
  height?: number;
  /** Where to get the bytes of a path from; without it the file is read each time. */
  cache?: ByteCache | null;
  decoder?: Decoder;
}

/**
 * Decodes an image (a path, or its bytes) and writes it at `out[offset ...]` as height x width
 * x 3 float32 RGB in [0, 1] (byte value / 255). Resolves to the image size. A file that cannot
 * be read or decoded, or has the wrong size, is a UserError naming the file.
 */
export async function decodeInto(
  source: string | Uint8Array,
  out: Float32Array,
  offset = 0,
  opts: DecodeOptions = {},
): Promise<{ width: number; height: number }> {
  const name = typeof source === 'string' ? source : '<image bytes>';
  // Cached bytes are decoded without an await first, so the decode is queued on the threadpool
  // before the caller returns: the batch stream relies on this to overlap a blocking train step.
  let bytes = typeof source === 'string' ? opts.cache?.get(source) : source;
  if (bytes === undefined) {
    try {
      bytes = opts.cache ? await opts.cache.read(source as string) : await readFile(source as string);
    } catch (e) {
      throw new UserError(`${name}: cannot be read (${firstLine(e)})`);
    }
  }
  const decoder = opts.decoder ?? 'canvas';
  const fail = (problem: string) => new UserError(`${name}: ${problem}`);
  if (decoder === 'canvas') {
    const img = new Image();
    img.src = bytes;
    try {
      await img.decode();
    } catch (e) {
      throw fail(`cannot be decoded (${firstLine(e)})`);
    }
    const { width, height } = img;
    checkTarget(width, height, out, offset, opts, fail);
    const ctx = scratchContext(width, height);
    ctx.clearRect(0, 0, width, height); // never leave the previous image if this one draws nothing
    ctx.drawImage(img, 0, 0);
    rgbaToUnit(ctx.getImageData(0, 0, width, height).data, out, offset, width * height);
    return { width, height };
  }
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    raw = await sharp(bytes, { ignoreIcc: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw fail(`cannot be decoded (${firstLine(e)})`);
  }
  const { width, height, channels } = raw.info;
  checkTarget(width, height, out, offset, opts, fail);
  if (channels === 3) bytesToUnit(raw.data, out, offset, width * height * 3);
  else packedToUnit(raw.data, channels, out, offset, width * height);
  return { width, height };
}

function checkTarget(
  width: number,
  height: number,
  out: Float32Array,
  offset: number,
  opts: DecodeOptions,
  fail: (problem: string) => Error,
): void {
  if ((opts.width !== undefined && width !== opts.width) || (opts.height !== undefined && height !== opts.height)) {
    throw fail(`is ${width}x${height} (width x height), expected ${opts.width ?? width}x${opts.height ?? height}`);
  }
  if (offset < 0 || offset + width * height * CHANNELS > out.length) {
    throw new RangeError(`decodeInto: ${width}x${height}x3 floats at offset ${offset} do not fit in ${out.length}`);
  }
}

/** One canvas per size, reused: the copy out of a decoded Image is synchronous, so one suffices. */
const scratch = new Map<string, { canvas: Canvas; ctx: SKRSContext2D }>();
function scratchContext(width: number, height: number): SKRSContext2D {
  const key = `${width}x${height}`;
  let s = scratch.get(key);
  if (!s) {
    const canvas = createCanvas(width, height);
    const ctx = canvas.getContext('2d');
    // 'copy' replaces every pixel, so a translucent image never shows the previous one.
    ctx.globalCompositeOperation = 'copy';
    s = { canvas, ctx };
    scratch.set(key, s);
  }
  return s.ctx;
}

export function rgbaToUnit(rgba: ArrayLike<number>, out: Float32Array, offset: number, pixels: number): void {
  const lut = BYTE_TO_UNIT;
  for (let p = 0, q = offset, end = pixels * 4; p < end; p += 4, q += 3) {
    out[q] = lut[rgba[p]];
    out[q + 1] = lut[rgba[p + 1]];
    out[q + 2] = lut[rgba[p + 2]];
  }
}

export function bytesToUnit(bytes: ArrayLike<number>, out: Float32Array, offset: number, count: number): void {
  const lut = BYTE_TO_UNIT;
  for (let i = 0; i < count; i++) out[offset + i] = lut[bytes[i]];
}

/** Grey (1), grey+alpha (2) or RGBA (4) bytes -> RGB floats. */
function packedToUnit(bytes: Buffer, channels: number, out: Float32Array, offset: number, pixels: number): void {
  const lut = BYTE_TO_UNIT;
  for (let p = 0, q = offset; p < pixels; p++, q += 3) {
    const s = p * channels;
    if (channels < 3) {
      out[q] = out[q + 1] = out[q + 2] = lut[bytes[s]];
    } else {
      out[q] = lut[bytes[s]];
      out[q + 1] = lut[bytes[s + 1]];
      out[q + 2] = lut[bytes[s + 2]];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decode worker threads

/**
 * The worker's code. It runs with `eval`, so it needs no TypeScript loader and behaves the same
 * under tsx, vitest and plain node. It decodes synchronously with @napi-rs/canvas (the worker
 * thread is the parallelism), converts to floats, and writes them straight into the shared batch
 * buffer; the main thread only posts a message per worker per batch.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { Image, createCanvas } = require(workerData.canvas);
const lut = new Float32Array(256);
for (let i = 0; i < 256; i++) lut[i] = i / 255;
// @napi-rs/canvas prints "ObjectRef is not unref" for every image reference still awaiting
// garbage collection when a thread ends. So the worker collects when it falls idle and before
// it closes; a process.exit() in the middle of an epoch can still print some.
let collectGarbage = typeof globalThis.gc === 'function' ? globalThis.gc : null;
if (!collectGarbage) {
  try {
    require('node:v8').setFlagsFromString('--expose-gc');
    collectGarbage = require('node:vm').runInNewContext('gc');
  } catch {}
}
let idle = null;
function collectWhenIdle() {
  if (idle) clearTimeout(idle);
  idle = setTimeout(() => { idle = null; if (collectGarbage) collectGarbage(); }, 250);
  idle.unref();
}
const contexts = new Map();
function context(w, h) {
  const key = w + 'x' + h;
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = createCanvas(w, h).getContext('2d');
    ctx.globalCompositeOperation = 'copy';
    contexts.set(key, ctx);
  }
  return ctx;
}
const firstLine = (e) => String(e && e.message !== undefined ? e.message : e).split('\\n')[0].trim();
function decode(job, out, width, height) {
  let bytes = job.bytes;
  if (!bytes) {
    try { bytes = readFileSync(job.path); } catch (e) { return 'cannot be read (' + firstLine(e) + ')'; }
  }
  const img = new Image();
  img.src = bytes;
  const w = img.width, h = img.height;
  if (!w || !h) return 'cannot be decoded (not an image @napi-rs/canvas can read)';
  if (w !== width || h !== height) return 'is ' + w + 'x' + h + ' (width x height), expected ' + width + 'x' + height;
  const ctx = context(w, h);
  ctx.clearRect(0, 0, w, h);
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  for (let p = 0, q = job.offset, end = w * h * 4; p < end; p += 4, q += 3) {
    out[q] = lut[d[p]];
    out[q + 1] = lut[d[p + 1]];
    out[q + 2] = lut[d[p + 2]];
  }
  return null;
}
parentPort.on('message', (m) => {
  if (m.type === 'close') {
    if (idle) clearTimeout(idle);
    // Native finalizers run on a later turn of the loop than the collection that finds them.
    if (collectGarbage) collectGarbage();
    setImmediate(() => {
      if (collectGarbage) collectGarbage();
      setImmediate(() => parentPort.postMessage({ id: m.id, closed: true }));
    });
    return;
  }
  collectWhenIdle();
  const out = new Float32Array(m.buffer);
  for (let i = 0; i < m.jobs.length; i++) {
    let problem;
    try { problem = decode(m.jobs[i], out, m.width, m.height); } catch (e) { problem = 'cannot be decoded (' + firstLine(e) + ')'; }
    if (problem) { parentPort.postMessage({ id: m.id, index: i, problem }); return; }
  }
  parentPort.postMessage({ id: m.id });
});
`;

export interface DecodeJob {
  /** The file; named in errors, and read by the worker when `bytes` is absent. */
  path: string;
  bytes?: Uint8Array;
  /** Where its floats start in the output. */
  offset: number;
}

interface WorkerReply {
  id: number;
  index?: number;
  problem?: string;
}

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
    const canvas = createRequire(import.meta.url).resolve('@napi-rs/canvas');
    this.workers = Array.from({ length: threads }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { canvas } });
      w.unref();
      w.on('message', (m: WorkerReply) => this.settle(m));
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
   * float32 RGB value / 255. A bad file rejects with a UserError naming it.
   */
  decode(jobs: DecodeJob[], out: Float32Array, size: { width: number; height: number }): Promise<void> {
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
          worker.postMessage({ id, buffer: out.buffer, width: size.width, height: size.height, jobs: chunk });
        }),
      );
    }
    return Promise.all(parts).then(() => undefined);
  }

  private settle(m: WorkerReply): void {
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
            const onMessage = (m: { closed?: boolean }) => m.closed && done();
            const timer = setTimeout(done, 2000);
            w.on('message', onMessage);
            w.once('exit', done);
            w.postMessage({ type: 'close', id: -1 });
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
 * The process's decode pool, made on first use (a worker starts in ~50 ms) and closed after
 * 10 s without work or when the process is about to exit.
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

// A process that ends by running out of work closes the pool first (see the worker's 'close').
process.on('beforeExit', () => {
  if (shared) void closeDecodePools();
});
