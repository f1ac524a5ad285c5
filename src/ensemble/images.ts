/**
 * Image files -> the pixels a model reads, for prediction: float32 NHWC RGB in [0, 1]
 * (byte / 255), the same floats training saw for an image of the model's size (the same
 * checks and the same decoder as src/data: checkImage, then @napi-rs/canvas via decodeInto).
 *
 * A file that cannot be read, is not a sound PNG/JPEG, or is not height x width is reported
 * with its problem and skipped; the rest are still decoded. With `resize`, an image of another
 * size is decoded and resized to width x height by sharp (libvips): stretched to fill (the aspect
 * ratio is not kept, as Keras' `load_img(target_size=...)` does), lanczos3 resampling, alpha
 * dropped, sRGB. An image already of the right size is never resized.
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { decodeInto } from '../data/decoders.ts';
import { checkImage, ImageProblem } from '../data/image-check.ts';
import { bytesToUnit, CHANNELS } from '../data/pixels.ts';

export interface DecodeImageOptions {
  height: number;
  width: number;
  /** Resize images of other sizes instead of skipping them. */
  resize?: boolean;
  /** Files read and decoded at once (reads and decodes run on libuv's threadpool). Default 8. */
  concurrency?: number;
}

export interface ImageProblemReport {
  file: string;
  problem: string;
}

export interface DecodedImages {
  /** ok.length x height x width x 3 floats, in the order of `ok`. */
  images: Float32Array;
  /** The files decoded, in the order given. */
  ok: string[];
  /** The files skipped, in the order given, each with what is wrong (without the file name). */
  problems: ImageProblemReport[];
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0].trim();
}

/** The floats of one file at `out[offset..]`, or what is wrong with it. */
async function decodeOne(file: string, out: Float32Array, offset: number, o: DecodeImageOptions): Promise<string | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'file is missing';
    if (code === 'EISDIR') return 'is a directory, not an image';
    return `cannot be read (${firstLine(e)})`;
  }
  let info;
  try {
    info = checkImage(bytes);
  } catch (e) {
    if (e instanceof ImageProblem) return e.message;
    throw e;
  }
  const sameSize = info.width === o.width && info.height === o.height;
  if (!sameSize && !o.resize) {
    return `is ${info.width}x${info.height} (width x height), expected ${o.width}x${o.height} (resize it, or pass --resize)`;
  }
  try {
    if (sameSize) {
      await decodeInto(bytes, out, offset, { width: o.width, height: o.height });
    } else {
      const raw = await sharp(bytes).resize(o.width, o.height, { fit: 'fill', kernel: 'lanczos3' }).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer();
      bytesToUnit(raw, out, offset, o.width * o.height * CHANNELS);
    }
  } catch (e) {
    // decodeInto's UserError starts with '<image bytes>: '; the caller names the file.
    return firstLine(e).replace(/^<image bytes>: /, '');
  }
  return null;
}

/**
 * Decodes `paths` for a model taking height x width images. Never throws for a bad file: it is
 * listed in `problems` and left out of `images` and `ok`.
 */
export async function decodeImageFiles(paths: string[], opts: DecodeImageOptions): Promise<DecodedImages> {
  const { height, width } = opts;
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new RangeError(`decodeImageFiles: height and width must be positive integers, got ${height}x${width}`);
  }
  const per = height * width * CHANNELS;
  // Each file decodes into its own slot; the slots of bad files are squeezed out at the end.
  const all = new Float32Array(paths.length * per);
  const problem: (string | null)[] = new Array(paths.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      problem[i] = await decodeOne(paths[i], all, i * per, opts);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 8, paths.length)) }, worker));

  const ok: string[] = [];
  const problems: ImageProblemReport[] = [];
  let kept = 0;
  paths.forEach((file, i) => {
    const p = problem[i];
    if (p !== null) {
      problems.push({ file, problem: p });
      return;
    }
    if (kept !== i) all.copyWithin(kept * per, i * per, (i + 1) * per);
    ok.push(file);
    kept++;
  });
  return { images: kept === paths.length ? all : all.slice(0, kept * per), ok, problems };
}
