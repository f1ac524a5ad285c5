/**
 * Image bytes -> float pixels, and the cheap checks that tell a sound image file from a
 * broken one.
 *
 * Pixels are written as float32 NHWC RGB, value / 255, so in [0, 1]. The model takes these
 * raw values (no mean/std normalisation), as the report's Keras code did with `x / 255`.
 *
 * Two decoders, both wrapping well-kept native libraries:
 *  - 'canvas' (default): @napi-rs/canvas (Skia over libpng/libjpeg-turbo). `Image.decode()`
 *    runs on libuv's threadpool, so decoding overlaps whatever blocks the main thread; the
 *    copy out (drawImage + getImageData) and the float conversion run on the main thread
 *    (about a fifth of the per-image cost). Measured 2-3x faster than sharp on 200x60 images,
 *    where sharp's per-call pipeline setup dominates (bench/pipeline.ts).
 *  - 'sharp': libvips. Slower per small image but strict: it refuses truncated files.
 * For opaque images both give identical bytes (checked for RGB/RGBA/grey/palette/16-bit PNG
 * and baseline JPEG). They differ only on translucent pixels: canvas stores premultiplied
 * alpha, so the colour of a pixel with alpha < 255 comes back rounded (exactly 0 when fully
 * transparent), while sharp drops the alpha channel untouched. CAPTCHA images are opaque.
 * Embedded ICC profiles are ignored by both (as PIL and OpenCV do): the pixel values are
 * the file's.
 *
 * Skia is lenient: it decodes a truncated or bit-flipped PNG/JPEG without complaint, filling
 * what is missing. Hence `checkImage`, a structural check run at load time on the bytes
 * (PNG: every chunk's CRC, IHDR, IDAT, IEND; JPEG: the marker structure through EOI). It is
 * about 10 us/image, against ~300 us for a decode and ~1 ms for sharp's strict decode
 * (`verifyDecode`), which `loadDataset({verify: 'full'})` adds for the paranoid.
 */
import { readFile } from 'node:fs/promises';
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
