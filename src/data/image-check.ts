/**
 * The cheap checks that tell a sound image file from a broken one.
 *
 * Skia (the decoder training and prediction use, decoders.ts) is lenient: it decodes a
 * truncated or bit-flipped PNG/JPEG without complaint, filling what is missing. Hence
 * `checkImage`, a structural check run at load time on the bytes (PNG: every chunk's CRC, IHDR,
 * IDAT, IEND; JPEG: the marker structure through EOI): a few us/image, against ~200-400 us for a
 * decode and ~1 ms for sharp's strict decode (`verifyDecode`), which
 * `loadDataset({verify: 'full'})` adds.
 */
import sharp from 'sharp';
import { firstLine } from '../util/errors.ts';
import { crc32 } from './crc32.ts';

export type ImageFormat = 'png' | 'jpeg';

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
