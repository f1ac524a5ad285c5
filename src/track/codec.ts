/**
 * Compact storage of probabilities for Postgres, and the identity of the examples they were
 * made on.
 *
 * Probabilities are stored as IEEE 754 half floats (binary16), little-endian, rounded to
 * nearest with ties to even: half the bytes of float32, and every value in [0, 1] keeps a
 * relative error under 2^-11 (subnormals below 2^-14 keep an absolute one under 2^-25), far
 * below the gaps that decide a vote. Rows keep their arg-max exactly (see encodeProbs); soft
 * averages and a vote's tie-breaks can still move where two classes are within a half's
 * precision, which the ensemble bench counts.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bits nearest to a number (as float32 first), ties to even. */
export function toHalfBits(x: number): number {
  f32[0] = x;
  return halfFromFloatBits(u32[0]);
}

/** The number a binary16 bit pattern stands for. */
export function fromHalfBits(h: number): number {
  return HALF_TO_FLOAT[h & 0xffff];
}

function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  // Inf stays Inf; NaN stays a (quiet) NaN whatever its payload.
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf, as round-to-nearest gives
  if (e <= 0) return sign | subnormalHalf(mant | 0x800000, 14 - e);
  // Normal: keep 10 of 23 mantissa bits. A carry out of the mantissa rightly bumps the
  // exponent, and from 65504 upward to Inf.
  return sign | roundShift((e << 23) | mant, 13);
}

/** A float32 below the half's normal range: its 24-bit significand shifted into a subnormal. */
function subnormalHalf(significand: number, shift: number): number {
  // Below half the smallest subnormal (2^-25) everything rounds to zero.
  if (shift > 24) return 0;
  return roundShift(significand, shift);
}

/** `v >>> shift`, rounded to nearest, ties to even. */
function roundShift(v: number, shift: number): number {
  const kept = v >>> shift;
  const rest = v & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return rest > halfway || (rest === halfway && (kept & 1) === 1) ? kept + 1 : kept;
}

/** Every half's value: decoding is then one lookup per number. */
const HALF_TO_FLOAT: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

/**
 * Probabilities as binary16, two bytes each, little-endian whatever the machine. With
 * `classes`, each row of that many values keeps its arg-max: where rounding would tie the
 * winner with another class (or lift another above it), the winner's half is raised by the
 * fewest steps that make it win again as argmax() decides (ties go to the lower class). A
 * member's predicted characters, and so its accuracy and its votes, are then exactly those of
 * its float32 probabilities.
 */
export function encodeProbs(data: Float32Array, classes?: number): Buffer {
  const out = Buffer.allocUnsafe(data.length * 2);
  // A view of the same bytes: reads the float32 bits without a copy (Float32Arrays are 4-aligned).
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const halves = new Uint16Array(data.length);
  for (let i = 0; i < bits.length; i++) halves[i] = halfFromFloatBits(bits[i]);
  if (classes) keepArgmax(data, halves, classes);
  for (let i = 0; i < halves.length; i++) {
    out[2 * i] = halves[i] & 0xff;
    out[2 * i + 1] = halves[i] >>> 8;
  }
  return out;
}

function keepArgmax(data: Float32Array, halves: Uint16Array, classes: number): void {
  for (let base = 0; base + classes <= data.length; base += classes) {
    let top = base;
    for (let c = base + 1; c < base + classes; c++) if (data[c] > data[top]) top = c;
    if (!(data[top] >= 0) || !Number.isFinite(data[top])) continue; // NaN or Inf rows are refused elsewhere
    const wins = () => {
      const v = HALF_TO_FLOAT[halves[top]];
      for (let c = base; c < base + classes; c++) {
        if (c === top) continue;
        const w = HALF_TO_FLOAT[halves[c]];
        if (c < top ? w >= v : w > v) return false;
      }
      return true;
    };
    // Positive halves grow with their bit pattern, so +1 is the next larger value.
    while (!wins() && halves[top] < 0x7bff) halves[top]++;
  }
}

/** The probabilities an `encodeProbs` buffer holds; refuses a buffer of the wrong size. */
export function decodeProbs(buf: Uint8Array, expectedCount: number): Float32Array {
  if (!Number.isInteger(expectedCount) || expectedCount < 0) throw new Error(`decodeProbs: expected count must be a non-negative integer, got ${expectedCount}`);
  if (buf.length !== expectedCount * 2) {
    throw new Error(
      `stored probabilities are ${buf.length} bytes, expected ${expectedCount * 2} (${expectedCount} float16 values): ` +
        'the stored predictions do not match the shape recorded with them',
    );
  }
  const out = new Float32Array(expectedCount);
  if (LITTLE_ENDIAN && buf.byteOffset % 2 === 0) {
    // Read the halves in place: about twice as fast as assembling each from two bytes.
    const halves = new Uint16Array(buf.buffer, buf.byteOffset, expectedCount);
    for (let i = 0; i < expectedCount; i++) out[i] = HALF_TO_FLOAT[halves[i]];
  } else {
    for (let i = 0; i < expectedCount; i++) out[i] = HALF_TO_FLOAT[buf[2 * i] | (buf[2 * i + 1] << 8)];
  }
  return out;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The identity of a dataset: sha256 (hex) over its file names and labels, in order. Each
 * string is framed by its UTF-8 byte length, and the count comes first, so no two different
 * lists hash alike by re-splitting (['ab','c'] vs ['a','bc']) or by moving a name into a label.
 */
export function datasetHash(files: readonly string[], labels: readonly string[]): string {
  if (files.length !== labels.length) throw new Error(`datasetHash: ${files.length} files but ${labels.length} labels; they must pair up`);
  const h = createHash('sha256');
  h.update('sweep-dataset-v1\0');
  h.update(u32le(files.length));
  for (let i = 0; i < files.length; i++) {
    for (const s of [files[i], labels[i]]) {
      const bytes = Buffer.from(s, 'utf8');
      h.update(u32le(bytes.length));
      h.update(bytes);
    }
  }
  return h.digest('hex');
}

function u32le(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(v);
  return b;
}
