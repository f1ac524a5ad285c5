/** Compact storage of class probabilities (float16) and the identity of a set of examples. */
import { createHash } from 'node:crypto';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function encodeProbs(data: Float32Array): Buffer {
  const out = Buffer.alloc(data.length * 2);
  for (let i = 0; i < data.length; i++) out.writeUInt16LE(toHalf(data[i]), i * 2);
  return out;
}

export function decodeProbs(buf: Uint8Array, expectedCount: number): Float32Array {
  if (buf.byteLength !== expectedCount * 2) throw new Error(`stored probabilities hold ${buf.byteLength / 2} values where ${expectedCount} were expected`);
  const out = new Float32Array(expectedCount);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < expectedCount; i++) out[i] = fromHalf(view.getUint16(i * 2, true));
  return out;
}

/** sha256 over file names and labels in order, each length-prefixed so boundaries are unambiguous. */
export function datasetHash(files: readonly string[], labels: readonly string[]): string {
  const h = createHash('sha256');
  for (let i = 0; i < files.length; i++) {
    for (const s of [files[i], labels[i]]) {
      const b = Buffer.from(s, 'utf8');
      h.update(`${b.length}:`);
      h.update(b);
    }
  }
  return h.digest('hex');
}
