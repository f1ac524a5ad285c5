/**
 * Decoded image bytes -> the float pixels the model takes: float32 NHWC RGB, value / 255, so
 * in [0, 1]. The model takes these raw values (no mean/std normalisation), as the report's Keras
 * code did with `x / 255`. Every decoder (decoders.ts, decode-worker.ts) converts through here,
 * so the same bytes give the same floats whichever decoded them.
 */

export const CHANNELS = 3;

/** value / 255 for every byte value: exact (same float32 as the division) and branch-free. */
const BYTE_TO_UNIT = new Float32Array(256);
for (let i = 0; i < 256; i++) BYTE_TO_UNIT[i] = i / 255;

/** RGBA bytes (alpha dropped) -> RGB floats at `out[offset ...]`. */
export function rgbaToUnit(rgba: ArrayLike<number>, out: Float32Array, offset: number, pixels: number): void {
  const lut = BYTE_TO_UNIT;
  for (let p = 0, q = offset, end = pixels * 4; p < end; p += 4, q += 3) {
    out[q] = lut[rgba[p]];
    out[q + 1] = lut[rgba[p + 1]];
    out[q + 2] = lut[rgba[p + 2]];
  }
}

/** `count` bytes -> as many floats at `out[offset ...]`. */
export function bytesToUnit(bytes: ArrayLike<number>, out: Float32Array, offset: number, count: number): void {
  const lut = BYTE_TO_UNIT;
  for (let i = 0; i < count; i++) out[offset + i] = lut[bytes[i]];
}

/** Grey (1), grey+alpha (2) or RGBA (4) bytes -> RGB floats. */
export function packedToUnit(bytes: Buffer, channels: number, out: Float32Array, offset: number, pixels: number): void {
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
