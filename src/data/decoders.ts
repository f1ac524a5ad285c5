/**
 * Image bytes -> float pixels (pixels.ts): the decoders, and what each costs.
 *
 * Decoders, all wrapping well-kept native libraries (numbers from bench/pipeline.ts on
 * 200x60 images):
 *  - DecodePool (decode-pool.ts, what BatchStream uses by default): worker threads running
 *    @napi-rs/canvas (Skia over libpng/libjpeg-turbo) synchronously, converting to floats and
 *    writing them into the batch's SharedArrayBuffer. ~10-20 us/image of main-thread time.
 *  - decodeInto(..., {decoder: 'canvas'}): in-process; `Image.decode()` runs on libuv's
 *    threadpool, but the copy out (drawImage + getImageData) and the float conversion run on
 *    the main thread: ~150-170 us/image of it.
 *  - decodeInto(..., {decoder: 'sharp'}): libvips. 2-3x slower per small image than canvas
 *    (its per-call pipeline setup dominates, ~200-300 us/image of it on the main thread), kept
 *    as the reference and for `verifyDecode` (image-check.ts), where its strictness is the point.
 * Canvas and sharp give identical bytes for opaque, untagged or sRGB-tagged images (checked
 * for RGB/RGBA/grey/palette/16-bit PNG and baseline/progressive JPEG). They differ on
 * translucent pixels (canvas stores premultiplied alpha, so their colour comes back rounded,
 * 0 when fully transparent; sharp drops alpha untouched) and on files tagged with another ICC
 * profile (canvas converts to sRGB, sharp here keeps the file's values). CAPTCHA generators
 * write opaque sRGB images; training and prediction both use canvas.
 */
import { readFile } from 'node:fs/promises';
import { Image, createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { firstLine, UserError } from '../util/errors.ts';
import { augmentRgba, type AugmentRequest } from './augment.ts';
import type { ByteCache } from './byte-cache.ts';
import { bytesToUnit, CHANNELS, packedToUnit, rgbaToUnit } from './pixels.ts';

export type Decoder = 'canvas' | 'sharp';

export interface DecodeOptions {
  /** Expected size; a different one is an error (and nothing is written). */
  width?: number;
  height?: number;
  /** Where to get the bytes of a path from; without it the file is read each time. */
  cache?: ByteCache | null;
  decoder?: Decoder;
  /** Augment the image (canvas decoder only), drawn from `item` (augment.ts). */
  augment?: { request: AugmentRequest; item: number };
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
    let rgba: Uint8Array | Uint8ClampedArray = ctx.getImageData(0, 0, width, height).data;
    if (opts.augment) rgba = augmentRgba(rgba, width, height, opts.augment.request, opts.augment.item, ctx);
    rgbaToUnit(rgba, out, offset, width * height);
    return { width, height };
  }
  if (opts.augment) throw new RangeError('augmentation needs the canvas decoder');
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
