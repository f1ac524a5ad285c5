/**
 * A small PNG encoder (8-bit RGB, one IDAT) with its own DEFLATE.
 *
 * Why not node:zlib or Skia's encoder: their compressed bytes change with the zlib build
 * (Node bundles Chromium's zlib, whose output differs between Node releases and from
 * canonical zlib). A dataset must be byte-identical for a seed on every machine, so the
 * compressor here uses only integer arithmetic and fixed rules: same pixels, same file.
 *
 * Compression: unfiltered scanlines, greedy LZ77 with a bounded hash chain, one dynamic-Huffman
 * block. CAPTCHA images are mostly flat colour, so this lands close to zlib's level-6 size.
 * (A chunk's CRC-32 is a fixed function of its bytes, so crc32.ts may use zlib's.)
 */
import { crc32 } from '../crc32.ts';

function adler32(buf: Uint8Array): number {
  let a = 1;
  let b = 0;
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const end = Math.min(i + 5552, n); // zlib's NMAX: sums stay exact between reductions
    for (; i < end; i++) {
      a += buf[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Writes bits least-significant first, as DEFLATE wants. */
class BitWriter {
  buf: Uint8Array;
  pos = 0;
  private acc = 0;
  private nbits = 0;

  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  write(value: number, nbits: number): void {
    this.acc |= value << this.nbits;
    this.nbits += nbits;
    while (this.nbits >= 8) {
      if (this.pos >= this.buf.length) this.grow();
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.nbits -= 8;
    }
  }

  flush(): void {
    if (this.nbits > 0) {
      if (this.pos >= this.buf.length) this.grow();
      this.buf[this.pos++] = this.acc & 0xff;
    }
    this.acc = 0;
    this.nbits = 0;
  }

  private grow(): void {
    const next = new Uint8Array(this.buf.length * 2);
    next.set(this.buf);
    this.buf = next;
  }
}

// RFC 1951 tables: length codes 257..285 and distance codes 0..29.
const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Length (3..258) -> code index 0..28. */
const LEN_CODE = (() => {
  const t = new Uint8Array(259);
  for (let c = 0; c < 29; c++) {
    const top = c === 28 ? 258 : LEN_BASE[c] + (1 << LEN_EXTRA[c]) - 1;
    for (let l = LEN_BASE[c]; l <= top && l <= 258; l++) t[l] = c;
  }
  t[258] = 28;
  return t;
})();

function distCode(d: number): number {
  let c = 0;
  while (c < 29 && DIST_BASE[c + 1] <= d) c++;
  return c;
}

/**
 * Huffman code lengths no longer than maxBits. Ties break on symbol order, so the result is
 * a pure function of the frequencies. If the tree is too deep, frequencies are halved
 * (keeping every used symbol at least 1) and the tree is rebuilt.
 */
function codeLengths(freq: ArrayLike<number>, maxBits: number): Uint8Array {
  const n = freq.length;
  const lengths = new Uint8Array(n);
  let f = Array.from(freq);
  for (;;) {
    const used: number[] = [];
    for (let s = 0; s < n; s++) if (f[s] > 0) used.push(s);
    if (used.length === 0) return lengths;
    if (used.length === 1) {
      lengths[used[0]] = 1;
      return lengths;
    }
    used.sort((a, b) => f[a] - f[b] || a - b);
    // Two-queue Huffman: leaves sorted, internal nodes created in nondecreasing weight order.
    const m = used.length;
    const weight = new Float64Array(2 * m);
    const parent = new Int32Array(2 * m).fill(-1);
    for (let i = 0; i < m; i++) weight[i] = f[used[i]];
    let leaf = 0;
    let inner = m;
    let next = m;
    const take = (): number => {
      if (leaf < m && (inner >= next || weight[leaf] <= weight[inner])) return leaf++;
      return inner++;
    };
    while (next < 2 * m - 1) {
      const a = take();
      const b = take();
      weight[next] = weight[a] + weight[b];
      parent[a] = next;
      parent[b] = next;
      next++;
    }
    const depth = new Int32Array(2 * m);
    let maxDepth = 0;
    for (let i = 2 * m - 3; i >= 0; i--) {
      depth[i] = depth[parent[i]] + 1;
      if (i < m && depth[i] > maxDepth) maxDepth = depth[i];
    }
    if (maxDepth <= maxBits) {
      for (let i = 0; i < m; i++) lengths[used[i]] = depth[i];
      return lengths;
    }
    f = f.map((x) => (x > 0 ? Math.max(1, x >> 1) : 0));
  }
}

/** Canonical codes (RFC 1951 3.2.2), bit-reversed for LSB-first output. */
function canonicalCodes(lengths: Uint8Array): Uint16Array {
  const maxBits = 15;
  const blCount = new Uint16Array(maxBits + 1);
  for (const l of lengths) if (l) blCount[l]++;
  const nextCode = new Uint16Array(maxBits + 1);
  let code = 0;
  for (let bits = 1; bits <= maxBits; bits++) {
    code = (code + blCount[bits - 1]) << 1;
    nextCode[bits] = code;
  }
  const codes = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const len = lengths[s];
    if (!len) continue;
    let c = nextCode[len]++;
    let r = 0;
    for (let i = 0; i < len; i++) {
      r = (r << 1) | (c & 1);
      c >>= 1;
    }
    codes[s] = r;
  }
  return codes;
}

const HASH_BITS = 14;
const HASH_SIZE = 1 << HASH_BITS;
const WINDOW = 32768;
const MAX_CHAIN = 16;
const GOOD_ENOUGH = 32;
/** Positions inside a longer match are not indexed (as zlib's fast levels do): flat runs stay cheap. */
const MAX_INSERT = 16;

/**
 * LZ77 tokens: for a literal, `lit` holds the byte and `dist` 0; for a match, `lit` the length.
 * Returns the number of tokens.
 */
function lz77(data: Uint8Array, lit: Uint16Array, dist: Uint16Array): number {
  const n = data.length;
  const head = new Int32Array(HASH_SIZE).fill(-1);
  const prev = new Int32Array(n);
  let ntok = 0;
  const hashAt = (i: number): number =>
    Math.imul((data[i] << 16) | (data[i + 1] << 8) | data[i + 2], 0x9e3779b1) >>> (32 - HASH_BITS);
  const insert = (i: number): void => {
    const h = hashAt(i);
    prev[i] = head[h];
    head[h] = i;
  };
  let i = 0;
  while (i < n) {
    let bestLen = 0;
    let bestDist = 0;
    if (i + 2 < n) {
      const h = hashAt(i);
      let cand = head[h];
      const maxLen = Math.min(258, n - i);
      let chain = MAX_CHAIN;
      while (cand >= 0 && i - cand <= WINDOW && chain-- > 0) {
        if (data[cand + bestLen] === data[i + bestLen] && data[cand] === data[i]) {
          let l = 0;
          while (l < maxLen && data[cand + l] === data[i + l]) l++;
          if (l > bestLen) {
            bestLen = l;
            bestDist = i - cand;
            if (l >= GOOD_ENOUGH || l === maxLen) break;
          }
        }
        cand = prev[cand];
      }
      prev[i] = head[h];
      head[h] = i;
    }
    if (bestLen >= 3) {
      lit[ntok] = bestLen;
      dist[ntok] = bestDist;
      ntok++;
      const end = i + bestLen;
      if (bestLen <= MAX_INSERT) for (let j = i + 1; j < end && j + 2 < n; j++) insert(j);
      i = end;
    } else {
      lit[ntok] = data[i];
      dist[ntok] = 0;
      ntok++;
      i++;
    }
  }
  return ntok;
}

/** Raw DEFLATE stream (one dynamic block) of `data`. */
export function deflateRaw(data: Uint8Array): Uint8Array {
  const lit = new Uint16Array(data.length + 1);
  const dist = new Uint16Array(data.length + 1);
  const ntok = lz77(data, lit, dist);

  const litFreq = new Uint32Array(286);
  const distFreq = new Uint32Array(30);
  for (let t = 0; t < ntok; t++) {
    if (dist[t] === 0) litFreq[lit[t]]++;
    else {
      litFreq[257 + LEN_CODE[lit[t]]]++;
      distFreq[distCode(dist[t])]++;
    }
  }
  litFreq[256] = 1;
  // A decoder needs at least one distance code; give it a harmless one.
  if (distFreq.every((x) => x === 0)) distFreq[0] = 1;

  const litLen = codeLengths(litFreq, 15);
  const distLen = codeLengths(distFreq, 15);
  const litCodes = canonicalCodes(litLen);
  const distCodes = canonicalCodes(distLen);

  let hlit = 286;
  while (hlit > 257 && litLen[hlit - 1] === 0) hlit--;
  let hdist = 30;
  while (hdist > 1 && distLen[hdist - 1] === 0) hdist--;

  // Run-length encode the concatenated code lengths with symbols 16/17/18.
  const all = new Uint8Array(hlit + hdist);
  all.set(litLen.subarray(0, hlit), 0);
  all.set(distLen.subarray(0, hdist), hlit);
  const clSym: number[] = [];
  const clExtra: number[] = [];
  for (let i = 0; i < all.length; ) {
    const v = all[i];
    let run = 1;
    while (i + run < all.length && all[i + run] === v) run++;
    if (v === 0 && run >= 3) {
      const r = Math.min(run, 138);
      if (r >= 11) {
        clSym.push(18);
        clExtra.push(r - 11);
      } else {
        clSym.push(17);
        clExtra.push(r - 3);
      }
      i += r;
    } else if (v !== 0 && run >= 4) {
      clSym.push(v);
      clExtra.push(0);
      const r = Math.min(run - 1, 6);
      clSym.push(16);
      clExtra.push(r - 3);
      i += 1 + r;
    } else {
      clSym.push(v);
      clExtra.push(0);
      i++;
    }
  }
  const clFreq = new Uint32Array(19);
  for (const s of clSym) clFreq[s]++;
  const clLen = codeLengths(clFreq, 7);
  const clCodes = canonicalCodes(clLen);
  let hclen = 19;
  while (hclen > 4 && clLen[CL_ORDER[hclen - 1]] === 0) hclen--;

  const out = new BitWriter(Math.max(1024, data.length >> 2));
  out.write(1, 1); // BFINAL
  out.write(2, 2); // dynamic Huffman
  out.write(hlit - 257, 5);
  out.write(hdist - 1, 5);
  out.write(hclen - 4, 4);
  for (let i = 0; i < hclen; i++) out.write(clLen[CL_ORDER[i]], 3);
  for (let i = 0; i < clSym.length; i++) {
    const s = clSym[i];
    out.write(clCodes[s], clLen[s]);
    if (s === 16) out.write(clExtra[i], 2);
    else if (s === 17) out.write(clExtra[i], 3);
    else if (s === 18) out.write(clExtra[i], 7);
  }
  for (let t = 0; t < ntok; t++) {
    const d = dist[t];
    if (d === 0) {
      const s = lit[t];
      out.write(litCodes[s], litLen[s]);
    } else {
      const len = lit[t];
      const lc = LEN_CODE[len];
      out.write(litCodes[257 + lc], litLen[257 + lc]);
      if (LEN_EXTRA[lc]) out.write(len - LEN_BASE[lc], LEN_EXTRA[lc]);
      const dc = distCode(d);
      out.write(distCodes[dc], distLen[dc]);
      if (DIST_EXTRA[dc]) out.write(d - DIST_BASE[dc], DIST_EXTRA[dc]);
    }
  }
  out.write(litCodes[256], litLen[256]);
  out.flush();
  return out.buf.subarray(0, out.pos);
}

/**
 * RGB scanlines from an RGBA buffer (alpha dropped), each with filter type 0 (None).
 * Measured on railway images: no filter gives the smallest files here (flat colours and
 * exactly repeated pixels are what LZ77 matches best; Sub/Up/Paeth or the per-row
 * minimum-sum heuristic came out 25% larger) and is the fastest.
 */
function scanlines(rgba: Uint8Array, width: number, height: number): Uint8Array {
  const line = width * 3 + 1;
  const out = new Uint8Array(height * line);
  for (let y = 0, s = 0; y < height; y++) {
    let d = y * line + 1; // out[y * line] = 0: filter None
    for (let x = 0; x < width; x++, s += 4, d += 3) {
      out[d] = rgba[s];
      out[d + 1] = rgba[s + 1];
      out[d + 2] = rgba[s + 2];
    }
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/** An 8-bit RGB PNG of an opaque RGBA pixel buffer (alpha is ignored). */
export function encodePngRgb(rgba: Uint8Array, width: number, height: number): Buffer {
  if (rgba.length !== width * height * 4) throw new Error(`expected ${width * height * 4} RGBA bytes, got ${rgba.length}`);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const raw = scanlines(rgba, width, height);
  const deflated = deflateRaw(raw);
  const z = new Uint8Array(2 + deflated.length + 4);
  z[0] = 0x78; // deflate, 32K window
  z[1] = 0x01; // no preset dictionary; (0x78 * 256 + 0x01) % 31 === 0
  z.set(deflated, 2);
  new DataView(z.buffer).setUint32(2 + deflated.length, adler32(raw));
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', z), chunk('IEND', new Uint8Array(0))]);
}
