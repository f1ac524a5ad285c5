import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { datasetHash, decodeProbs, encodeProbs, fromHalfBits, toHalfBits } from '../../src/track/codec.ts';
import { argmax, makeProbs } from '../../src/ensemble/probs.ts';
import { Rng } from '../../src/util/rng.ts';

const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;

describe('float16 conversion', () => {
  const cases: Array<[string, number, number]> = [
    ['zero', 0, 0x0000],
    ['negative zero', -0, 0x8000],
    ['one', 1, 0x3c00],
    ['one half', 0.5, 0x3800],
    ['minus two', -2, 0xc000],
    ['largest finite', 65504, 0x7bff],
    ['just below the tie to Inf', 65519.99, 0x7bff],
    ['the tie at 65520 goes to Inf (even)', 65520, 0x7c00],
    ['overflow', 1e6, 0x7c00],
    ['-Inf', -Infinity, 0xfc00],
    ['+Inf', Infinity, 0x7c00],
    ['smallest normal 2^-14', 2 ** -14, 0x0400],
    ['smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['largest subnormal', 1023 * 2 ** -24, 0x03ff],
    ['tie between 0x3ff and 0x400 goes to 0x400 (even)', 1023.5 * 2 ** -24, 0x0400],
    ['2^-25 ties between 0 and 1: 0 (even)', 2 ** -25, 0x0000],
    ['a little above 2^-25 rounds up', 1.5 * 2 ** -25, 0x0001],
    ['3 x 2^-25 ties between 1 and 2: 2 (even)', 3 * 2 ** -25, 0x0002],
    ['5 x 2^-25 ties between 2 and 3: 2 (even)', 5 * 2 ** -25, 0x0002],
    ['far below the subnormals', 1e-10, 0x0000],
    ['negative subnormal', -(2 ** -24), 0x8001],
    ['1 + 2^-11 ties between 1 and its successor: 1 (even)', 1 + 2 ** -11, 0x3c00],
    ['1 + 3 x 2^-11 ties upward to the even 0x3c02', 1 + 3 * 2 ** -11, 0x3c02],
    ['1 - 2^-12 ties between 0x3bff and 1: 1 (even)', 1 - 2 ** -12, 0x3c00],
    ['1/3', 1 / 3, 0x3555],
    ['0.1', 0.1, 0x2e66],
  ];
  it.each(cases)('%s', (_name, x, bits) => {
    expect(hex(toHalfBits(x))).toBe(hex(bits));
  });

  it('keeps NaN a NaN', () => {
    const h = toHalfBits(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x03ff).not.toBe(0);
    expect(fromHalfBits(h)).toBeNaN();
  });

  it('decodes and re-encodes every one of the 65,536 bit patterns to itself (NaNs to a NaN)', () => {
    let nans = 0;
    for (let h = 0; h < 65536; h++) {
      const v = fromHalfBits(h);
      if (Number.isNaN(v)) {
        nans++;
        expect(Number.isNaN(fromHalfBits(toHalfBits(v)))).toBe(true);
      } else if (toHalfBits(v) !== h) {
        throw new Error(`${hex(h)} -> ${v} -> ${hex(toHalfBits(v))}`);
      }
    }
    expect(nans).toBe(2 * 1023);
  });

  it('rounds values in [0, 1] to the nearest half, ties to even, as a brute-force search finds it', () => {
    const rng = new Rng('half-oracle');
    const xs: number[] = [];
    for (let i = 0; i < 50_000; i++) xs.push(Math.fround(rng.next()));
    // Small probabilities too: uniform in log scale down into the subnormals.
    for (let i = 0; i < 50_000; i++) xs.push(Math.fround(2 ** rng.uniform(-26, 0)));
    for (const x of xs) {
      const want = nearestHalf(x);
      if (toHalfBits(x) !== want) throw new Error(`${x}: got ${hex(toHalfBits(x))}, nearest is ${hex(want)}`);
    }
  });
});

/** The oracle: positive halves are ordered like their bits, so bisect and compare distances. */
function nearestHalf(x: number): number {
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (fromHalfBits(mid) <= x) lo = mid;
    else hi = mid - 1;
  }
  if (fromHalfBits(lo) === x || lo === 0x7bff) return lo;
  const below = x - fromHalfBits(lo);
  const above = fromHalfBits(lo + 1) - x;
  if (below < above) return lo;
  if (above < below) return lo + 1;
  return lo % 2 === 0 ? lo : lo + 1;
}

describe('encodeProbs / decodeProbs', () => {
  it('writes two bytes per value, little-endian', () => {
    const buf = encodeProbs(Float32Array.from([1, 0.5, -0]));
    expect(Array.from(buf)).toEqual([0x00, 0x3c, 0x00, 0x38, 0x00, 0x80]);
  });

  it('round-trips each value to its nearest half', () => {
    const xs = Float32Array.from([0, 1, 0.1, 1 / 3, 2 ** -20, 0.999]);
    const back = decodeProbs(encodeProbs(xs), xs.length);
    expect(Array.from(back)).toEqual(Array.from(xs, (x) => fromHalfBits(toHalfBits(x))));
  });

  it('decodes a buffer that starts at an odd offset in its memory', () => {
    const enc = encodeProbs(Float32Array.from([0.25, 0.75]));
    const big = Buffer.alloc(enc.length + 1);
    enc.copy(big, 1);
    expect(Array.from(decodeProbs(big.subarray(1), 2))).toEqual([0.25, 0.75]);
  });

  it('refuses a buffer of the wrong length, saying what it expected', () => {
    const enc = encodeProbs(new Float32Array(10));
    expect(() => decodeProbs(enc, 11)).toThrow(/20 bytes, expected 22 \(11 float16 values\)/);
    expect(() => decodeProbs(enc.subarray(1), 10)).toThrow(/19 bytes, expected 20/);
  });

  it('keeps the argmax of softmax rows, except where the top two share a half (counted)', () => {
    const rng = new Rng('argmax-survival');
    const rows = 20_000;
    const classes = 36;
    const data = new Float32Array(rows * classes);
    for (let r = 0; r < rows; r++) softmaxRow(rng, data.subarray(r * classes, (r + 1) * classes));
    const probs = makeProbs(rows, 1, classes, data);
    const decoded = makeProbs(rows, 1, classes, decodeProbs(encodeProbs(data), data.length));
    const before = argmax(probs);
    const after = argmax(decoded);
    let changed = 0;
    let collisions = 0;
    for (let r = 0; r < rows; r++) {
      const [a, b] = topTwo(data.subarray(r * classes, (r + 1) * classes));
      const collide = a !== b && toHalfBits(a) === toHalfBits(b);
      if (collide) collisions++;
      if (before[r] !== after[r]) {
        changed++;
        // A change is only allowed where the top two became equal in half precision.
        expect(collide).toBe(true);
      }
    }
    console.info(`float16: ${changed} of ${rows} argmaxes changed; ${collisions} rows had their top two round to the same half`);
    expect(changed).toBeLessThanOrEqual(collisions);
    // Sanity of the generator: most rows are decided by a visible margin.
    expect(collisions).toBeLessThan(rows / 100);
  });
});

/** A softmax of normal logits with a per-row temperature, some rows confident, some not. */
function softmaxRow(rng: Rng, out: Float32Array): void {
  const scale = rng.uniform(0.5, 6);
  let max = -Infinity;
  const z = Array.from(out, () => rng.normal(0, scale));
  for (const v of z) max = Math.max(max, v);
  let total = 0;
  for (let c = 0; c < out.length; c++) total += Math.exp(z[c] - max);
  for (let c = 0; c < out.length; c++) out[c] = Math.exp(z[c] - max) / total;
}

function topTwo(row: Float32Array): [number, number] {
  const sorted = Array.from(row).sort((x, y) => y - x);
  return [sorted[0], sorted[1]];
}

describe('datasetHash', () => {
  it('is sha256 over a version tag, the count and each file and label framed by its UTF-8 length', () => {
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    const parts = [Buffer.from('sweep-dataset-v1\0'), u32(2)];
    for (const s of ['a.png', 'AB12CD', 'é.png', 'ZZ99ZZ']) parts.push(u32(Buffer.byteLength(s)), Buffer.from(s));
    const want = createHash('sha256').update(Buffer.concat(parts)).digest('hex');
    expect(datasetHash(['a.png', 'é.png'], ['AB12CD', 'ZZ99ZZ'])).toBe(want);
  });

  it('tells apart lists that only differ in how the text is split, ordered or paired', () => {
    const hashes = [
      datasetHash(['ab', 'c'], ['x', 'y']),
      datasetHash(['a', 'bc'], ['x', 'y']),
      datasetHash(['c', 'ab'], ['y', 'x']),
      datasetHash(['ab', 'c'], ['y', 'x']),
      datasetHash(['x', 'y'], ['ab', 'c']),
      datasetHash(['abx'], ['cy']),
      datasetHash([], []),
    ];
    expect(new Set(hashes).size).toBe(hashes.length);
    expect(datasetHash(['ab', 'c'], ['x', 'y'])).toBe(hashes[0]);
  });

  it('refuses files and labels that do not pair up', () => {
    expect(() => datasetHash(['a', 'b'], ['x'])).toThrow(/2 files but 1 labels/);
  });
});

describe('encodeProbs keeping each row\'s arg-max', () => {
  it('raises the winner where rounding would tie it or lift another class above it', () => {
    const classes = 4;
    // Rows whose top two classes round to the same half, with the winner on either side.
    const rows = [
      [0.1, 0.40001, 0.4, 0.09999],
      [0.4, 0.40001, 0.1, 0.09999],
      [0.5, 0.49999, 0.0, 0.00001],
      [0.3, 0.3, 0.2, 0.2], // an exact tie: the lower class wins, as argmax() decides
    ];
    const data = Float32Array.from(rows.flat());
    const plain = decodeProbs(encodeProbs(data), data.length);
    const kept = decodeProbs(encodeProbs(data, classes), data.length);
    const argmaxOf = (d: Float32Array, r: number) => {
      let best = r * classes;
      for (let c = best + 1; c < (r + 1) * classes; c++) if (d[c] > d[best]) best = c;
      return best - r * classes;
    };
    let plainChanged = 0;
    for (let r = 0; r < rows.length; r++) {
      expect(argmaxOf(kept, r)).toBe(argmaxOf(data, r));
      if (argmaxOf(plain, r) !== argmaxOf(data, r)) plainChanged++;
      // Nothing moves by more than a few steps of half precision.
      for (let c = 0; c < classes; c++) expect(Math.abs(kept[r * classes + c] - data[r * classes + c])).toBeLessThan(2e-3);
    }
    expect(plainChanged).toBeGreaterThan(0);
  });

  it('keeps the arg-max of 20,000 random softmax rows', () => {
    const classes = 36;
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const data = new Float32Array(20_000 * classes);
    for (let r = 0; r < 20_000; r++) {
      let sum = 0;
      // Near-uniform rows: the hard case for half precision.
      for (let c = 0; c < classes; c++) sum += data[r * classes + c] = Math.exp(rand() * 0.05);
      for (let c = 0; c < classes; c++) data[r * classes + c] /= sum;
    }
    const kept = decodeProbs(encodeProbs(data, classes), data.length);
    for (let r = 0; r < 20_000; r++) {
      let a = r * classes;
      let b = r * classes;
      for (let c = r * classes + 1; c < (r + 1) * classes; c++) {
        if (data[c] > data[a]) a = c;
        if (kept[c] > kept[b]) b = c;
      }
      expect(b).toBe(a);
    }
  });
});
