/**
 * Augmentation of training images: small affine jitter (rotation, shear, scale, shift), contrast,
 * brightness and colour jitter, Gaussian noise and JPEG re-encoding, on an image's RGBA bytes
 * after decoding and before the float conversion (pixels.ts).
 *
 * Determinism. Each image draws from an Rng of its own, keyed by (seed, epoch, item): the seed
 * and epoch of the batch stream and the image's position in its dataset. So an image gets the
 * same pixels whichever thread decodes it, in whichever batch, and a resumed trial replays its
 * epochs exactly. Every draw happens whether or not its augmentation is on, in a fixed order,
 * so turning one augmentation on does not change what another draws.
 */
import { Image, ImageData, type SKRSContext2D } from '@napi-rs/canvas';
import type { AugmentSpec } from '../train/params.ts';
import { Rng } from '../util/rng.ts';

export type { AugmentSpec } from '../train/params.ts';

/** What a batch stream augments with: the trial's settings and the stream's seed and epoch. */
export interface AugmentRequest {
  spec: AugmentSpec;
  seed: number | string;
  epoch: number;
}

/** The Rng of one image of one epoch. */
export function augmentRng(seed: number | string, epoch: number, item: number): Rng {
  return new Rng(`augment\u0000${seed}\u0000${epoch}\u0000${item}`);
}

/** One image's draws. */
export interface AugmentDraw {
  /** Inverse affine map (output -> source), about the image centre. */
  angle: number;
  shear: number;
  scale: number;
  dx: number;
  dy: number;
  contrast: number;
  brightness: number;
  gains: [number, number, number];
  noiseStd: number;
  /** JPEG quality, or 0 for no re-encoding. */
  jpegQuality: number;
}

/** Draws one image's parameters (always 13 draws in this order; noise draws come after). */
export function drawAugment(spec: AugmentSpec, rng: Rng): AugmentDraw {
  // Each draw is made even when its range is 0 (then exactly 0, not -0).
  const sym = (r: number) => {
    const u = rng.next();
    return r === 0 ? 0 : (2 * u - 1) * r;
  };
  const angle = (sym(spec.aug_rotate) * Math.PI) / 180;
  const shear = sym(spec.aug_shear);
  const scale = 1 + sym(spec.aug_scale);
  const dx = sym(spec.aug_shift);
  const dy = sym(spec.aug_shift);
  const contrast = 1 + sym(spec.aug_contrast);
  const brightness = sym(spec.aug_contrast) * 64;
  const gains: [number, number, number] = [1 + sym(spec.aug_color), 1 + sym(spec.aug_color), 1 + sym(spec.aug_color)];
  const noiseStd = rng.next() * spec.aug_noise * 255;
  const jpegCoin = rng.next();
  const quality = 30 + Math.floor(rng.next() * 61);
  return { angle, shear, scale, dx, dy, contrast, brightness, gains, noiseStd, jpegQuality: jpegCoin < spec.aug_jpeg ? quality : 0 };
}

function isIdentityAffine(d: AugmentDraw): boolean {
  return d.angle === 0 && d.shear === 0 && d.scale === 1 && d.dx === 0 && d.dy === 0;
}

/**
 * Resamples `src` (RGBA) into `dst` under the draw's affine map about the image centre:
 * forward, a point moves by shear (x += shear * y), then rotation, then scale, then the shift.
 * Each output pixel reads the source at the inverse map, bilinearly, with coordinates clamped
 * to the border (the pale background extends outward).
 */
export function affineRgba(src: Uint8Array | Uint8ClampedArray, dst: Uint8Array | Uint8ClampedArray, width: number, height: number, d: AugmentDraw): void {
  const cx = width / 2;
  const cy = height / 2;
  const cos = Math.cos(d.angle);
  const sin = Math.sin(d.angle);
  // Forward A = scale * R * Sh, Sh = [[1, shear], [0, 1]]; inverse = Sh^-1 * R^-1 / scale.
  const r00 = cos / d.scale;
  const r01 = sin / d.scale;
  const r10 = -sin / d.scale;
  const r11 = cos / d.scale;
  const i00 = r00 - d.shear * r10;
  const i01 = r01 - d.shear * r11;
  const maxX = width - 1;
  const maxY = height - 1;
  for (let y = 0; y < height; y++) {
    const oy = y + 0.5 - cy - d.dy;
    for (let x = 0; x < width; x++) {
      const ox = x + 0.5 - cx - d.dx;
      let sx = i00 * ox + i01 * oy + cx - 0.5;
      let sy = r10 * ox + r11 * oy + cy - 0.5;
      sx = sx < 0 ? 0 : sx > maxX ? maxX : sx;
      sy = sy < 0 ? 0 : sy > maxY ? maxY : sy;
      // Non-negative from here: `| 0` floors, and `(v + 0.5) | 0` rounds as Math.round does.
      const x0 = sx | 0;
      const y0 = sy | 0;
      const x1 = x0 < maxX ? x0 + 1 : x0;
      const y1 = y0 < maxY ? y0 + 1 : y0;
      const fx = sx - x0;
      const fy = sy - y0;
      const a = (y0 * width + x0) * 4;
      const b = (y0 * width + x1) * 4;
      const c = (y1 * width + x0) * 4;
      const e = (y1 * width + x1) * 4;
      const o = (y * width + x) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const top = src[a + ch] + (src[b + ch] - src[a + ch]) * fx;
        const bottom = src[c + ch] + (src[e + ch] - src[c + ch]) * fx;
        dst[o + ch] = (top + (bottom - top) * fy + 0.5) | 0;
      }
      dst[o + 3] = 255;
    }
  }
}

/**
 * Contrast about the image's mean grey, brightness, per-channel gains and Gaussian noise
 * (normalQuantiles, indexed by `rng`), in place; results are rounded and clamped to bytes.
 */
export function photometricRgba(rgba: Uint8Array | Uint8ClampedArray, pixels: number, d: AugmentDraw, rng: Rng): void {
  const colour = d.contrast !== 1 || d.brightness !== 0 || d.gains.some((g) => g !== 1);
  if (colour) {
    let sum = 0;
    for (let p = 0; p < pixels * 4; p += 4) sum += rgba[p] + rgba[p + 1] + rgba[p + 2];
    const mean = sum / (pixels * 3);
    for (let p = 0; p < pixels * 4; p += 4) {
      for (let ch = 0; ch < 3; ch++) {
        const v = (mean + (rgba[p + ch] - mean) * d.contrast + d.brightness) * d.gains[ch];
        rgba[p + ch] = v < 0 ? 0 : v > 255 ? 255 : (v + 0.5) | 0;
      }
    }
  }
  if (d.noiseStd > 0) {
    // Two standard normals per 32-bit draw, read from a table of quantiles (16 bits each).
    const table = normalQuantiles();
    let bits = 0;
    let k = 0;
    for (let p = 0; p < pixels * 4; p += 4) {
      for (let ch = 0; ch < 3; ch++, k++) {
        if ((k & 1) === 0) bits = rng.nextUint32();
        const z = table[(k & 1) === 0 ? bits & 0xffff : bits >>> 16];
        const v = rgba[p + ch] + z * d.noiseStd;
        rgba[p + ch] = v < 0 ? 0 : v > 255 ? 255 : (v + 0.5) | 0;
      }
    }
  }
}

let quantiles: Float32Array | null = null;

/**
 * The standard normal's quantiles at (i + 0.5) / 65536, i = 0..65535: a value drawn from it by
 * a uniform 16-bit index is normal to within the table's steps (tails cut at +-4.3).
 */
export function normalQuantiles(): Float32Array {
  if (!quantiles) {
    quantiles = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) quantiles[i] = inverseNormalCdf((i + 0.5) / 65536);
  }
  return quantiles;
}

/** Acklam's rational approximation of the standard normal's inverse CDF (relative error < 1.2e-9). */
export function inverseNormalCdf(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) => (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  const plow = 0.02425;
  if (p < plow) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - plow) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Encodes the RGBA bytes as JPEG at `quality` and decodes them back, through `ctx`'s canvas. */
export function jpegRoundTrip(ctx: SKRSContext2D, rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, quality: number): Uint8ClampedArray {
  const clamped = new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, width * height * 4);
  ctx.putImageData(new ImageData(clamped, width, height), 0, 0);
  const img = new Image();
  img.src = ctx.canvas.encodeSync('jpeg', quality);
  ctx.clearRect(0, 0, width, height);
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, width, height).data;
}

/**
 * Augments one decoded image (RGBA bytes, `width` x `height`) and returns the augmented bytes
 * (a new array; `rgba` may be changed too). `ctx` is a canvas of the image's size, used for the
 * JPEG round trip; its 'copy' compositing (the decoders' scratch canvases) makes putImageData
 * and drawImage replace every pixel.
 */
export function augmentRgba(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, req: AugmentRequest, item: number, ctx: SKRSContext2D): Uint8Array | Uint8ClampedArray {
  const rng = augmentRng(req.seed, req.epoch, item);
  const d = drawAugment(req.spec, rng);
  let out = rgba;
  if (!isIdentityAffine(d)) {
    out = new Uint8ClampedArray(rgba.length);
    affineRgba(rgba, out, width, height, d);
  }
  photometricRgba(out, width * height, d, rng);
  if (d.jpegQuality > 0) out = jpegRoundTrip(ctx, out, width, height, d.jpegQuality);
  return out;
}
