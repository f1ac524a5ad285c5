import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LABEL_SPEC, labelSpec } from '../../src/data/charset.ts';
import { loadDataset, splitDataset, type Dataset } from '../../src/data/dataset.ts';
import { ByteCache } from '../../src/data/byte-cache.ts';
import { decodeInto } from '../../src/data/decoders.ts';
import { checkImage } from '../../src/data/image-check.ts';
import { UserError } from '../../src/util/errors.ts';

// Small images keep the tests fast; the size is an option of loadDataset.
const W = 20;
const H = 8;
const spec = DEFAULT_LABEL_SPEC;
const opts = { spec, width: W, height: H };

let root: string;
let counter = 0;
async function freshDir(): Promise<string> {
  const d = path.join(root, `d${counter++}`);
  await mkdir(d, { recursive: true });
  return d;
}

function solid(rgb: [number, number, number], width = W, height = H): ReturnType<typeof sharp> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
}
const png = (rgb: [number, number, number], width = W, height = H) => solid(rgb, width, height).png().toBuffer();
const jpeg = (rgb: [number, number, number]) => solid(rgb).jpeg({ quality: 95 }).toBuffer();

/** Every pixel different: r = x * 12, g = y * 30, b = (x + y) * 7. */
function patternRaw(): Buffer {
  const raw = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      raw[o] = x * 12;
      raw[o + 1] = y * 30;
      raw[o + 2] = (x + y) * 7;
    }
  return raw;
}
const patternPng = () => sharp(patternRaw(), { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();

async function expectUserError(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<UserError> {
  const err = await p.then(
    () => {
      throw new Error('expected a UserError');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  for (const part of parts) expect((err as Error).message).toMatch(part);
  return err as UserError;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'sweep-dataset-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('labels', () => {
  it('come from file names, with or without an _N suffix, PNG and JPEG', async () => {
    const d = await freshDir();
    await writeFile(path.join(d, 'a3k9zq.png'), await png([10, 20, 30]));
    await writeFile(path.join(d, 'a3k9zq_17.png'), await png([10, 20, 30]));
    await writeFile(path.join(d, 'zzzz00_2.jpg'), await jpeg([200, 100, 0]));
    await writeFile(path.join(d, 'b00000.jpeg'), await jpeg([200, 100, 0]));
    await writeFile(path.join(d, 'notes.txt'), 'not an image');
    const ds = await loadDataset(d, opts);
    expect(ds.items).toEqual([
      { file: 'a3k9zq.png', label: 'a3k9zq' },
      { file: 'a3k9zq_17.png', label: 'a3k9zq' },
      { file: 'b00000.jpeg', label: 'b00000' },
      { file: 'zzzz00_2.jpg', label: 'zzzz00' },
    ]);
    expect(ds).toMatchObject({ dir: d, spec, width: W, height: H, skipped: [] });
    expect(ds.cache?.size).toBe(4);
  });

  it('come from labels.csv when it exists (quoted fields, subdirectories, CRLF)', async () => {
    const d = await freshDir();
    await mkdir(path.join(d, 'sub'));
    await writeFile(path.join(d, 'x.png'), await png([1, 2, 3]));
    await writeFile(path.join(d, 'sub', 'y.jpg'), await jpeg([4, 5, 6]));
    await writeFile(path.join(d, 'unlisted.png'), await png([1, 2, 3]));
    await writeFile(path.join(d, 'labels.csv'), 'file,label\r\nx.png,abc123\r\n"sub/y.jpg", "zz99zz"\r\n\r\n');
    const ds = await loadDataset(d, opts);
    expect(ds.items).toEqual([
      { file: 'x.png', label: 'abc123' },
      { file: 'sub/y.jpg', label: 'zz99zz' },
    ]);
  });
});

describe('bad input stops the load, naming the file and the problem', () => {
  async function datasetWith(name: string, bytes: Buffer | Promise<Buffer>): Promise<string> {
    const d = await freshDir();
    await writeFile(path.join(d, 'good00.png'), await png([0, 0, 0]));
    await writeFile(path.join(d, name), await bytes);
    return d;
  }

  it('a corrupt image (not an image at all)', async () => {
    const d = await datasetWith('bad000.png', Buffer.from('this is not a png'));
    await expectUserError(loadDataset(d, opts), 'bad000.png', /not a PNG or JPEG/);
  });

  it('a truncated PNG', async () => {
    const bytes = await patternPng();
    const d = await datasetWith('cut000.png', bytes.subarray(0, bytes.length - 30));
    await expectUserError(loadDataset(d, opts), 'cut000.png', /truncated/);
  });

  it('a truncated JPEG', async () => {
    const bytes = await jpeg([9, 9, 9]);
    const d = await datasetWith('cut000.jpg', bytes.subarray(0, bytes.length - 40));
    await expectUserError(loadDataset(d, opts), 'cut000.jpg', /truncated/);
  });

  it('a PNG with a flipped bit', async () => {
    const bytes = Buffer.from(await patternPng());
    bytes[bytes.length - 20] ^= 0x10; // inside IDAT
    const d = await datasetWith('flip00.png', bytes);
    await expectUserError(loadDataset(d, opts), 'flip00.png', /CRC mismatch/);
  });

  it('a wrong size', async () => {
    const d = await datasetWith('big000.png', png([0, 0, 0], W + 1, H));
    await expectUserError(loadDataset(d, opts), 'big000.png', `is ${W + 1}x${H} (width x height), expected ${W}x${H}`);
  });

  it('a label with an unknown character', async () => {
    const d = await datasetWith('abcde!.png', png([0, 0, 0]));
    await expectUserError(loadDataset(d, opts), 'abcde!.png', /character '!' outside the charset/);
  });

  it('a label of the wrong length', async () => {
    const d = await datasetWith('abcde_3.png', png([0, 0, 0]));
    await expectUserError(loadDataset(d, opts), 'abcde_3.png', /'abcde' has 5 characters, expected 6/);
  });

  it('a labels.csv row naming a missing file', async () => {
    const d = await datasetWith('good01.png', png([0, 0, 0]));
    await writeFile(path.join(d, 'labels.csv'), 'file,label\ngood00.png,aaaaaa\ngone.png,bbbbbb\n');
    await expectUserError(loadDataset(d, opts), 'labels.csv line 3', 'gone.png', /missing/);
  });

  it('a malformed labels.csv line', async () => {
    const d = await datasetWith('good01.png', png([0, 0, 0]));
    await writeFile(path.join(d, 'labels.csv'), 'file,label\ngood00.png,aaaaaa\ngood01.png;bbbbbb\n');
    await expectUserError(loadDataset(d, opts), 'labels.csv line 3', /malformed line: expected 2 fields/, 'good01.png;bbbbbb');
  });

  it('a bad labels.csv header, even with skipBad', async () => {
    const d = await datasetWith('good01.png', png([0, 0, 0]));
    await writeFile(path.join(d, 'labels.csv'), 'name,text\ngood00.png,aaaaaa\n');
    await expectUserError(loadDataset(d, { ...opts, skipBad: true }), 'labels.csv line 1', /header 'file,label'/);
  });

  it('problems from labels.csv carry the line number', async () => {
    const d = await datasetWith('good01.png', png([0, 0, 0], 5, 5));
    await writeFile(path.join(d, 'labels.csv'), 'file,label\ngood00.png,aaaaaa\ngood01.png,bbbbbb\n');
    await expectUserError(loadDataset(d, opts), 'labels.csv line 3: good01.png: is 5x5');
  });

  it('an empty dataset', async () => {
    const d = await freshDir();
    await expectUserError(loadDataset(d, opts), /no usable images/);
    await expectUserError(loadDataset(path.join(d, 'nope'), opts), /cannot be read/);
  });

  it("verify 'full' also finds a PNG whose compressed data is bad under correct CRCs", async () => {
    const bytes = Buffer.from(await patternPng());
    // Rewrite the IDAT payload with garbage and a matching CRC: structurally sound.
    const at = bytes.indexOf('IDAT', 8, 'latin1');
    const len = bytes.readUInt32BE(at - 4);
    bytes.fill(0x5a, at + 4, at + 4 + len);
    bytes.writeUInt32BE(zlib.crc32(bytes.subarray(at, at + 4 + len)) >>> 0, at + 4 + len);
    const d = await datasetWith('zlib00.png', bytes);
    expect((await loadDataset(d, opts)).items).toHaveLength(2);
    await expectUserError(loadDataset(d, { ...opts, verify: 'full' }), 'zlib00.png', /cannot be decoded/);
  });
});

describe('skipBad', () => {
  it('counts, skips and reports every bad item', async () => {
    const d = await freshDir();
    await writeFile(path.join(d, 'good00.png'), await png([0, 0, 0]));
    await writeFile(path.join(d, 'good01.jpg'), await jpeg([0, 0, 0]));
    await writeFile(path.join(d, 'small0.png'), await png([0, 0, 0], 3, 3));
    await writeFile(path.join(d, 'junk00.png'), 'junk');
    await writeFile(path.join(d, 'short.png'), await png([0, 0, 0]));
    await writeFile(path.join(d, 'labels.csv'),
      'file,label\ngood00.png,good00\ngood01.jpg,good01\nsmall0.png,small0\njunk00.png,junk00\nshort.png,short\nmissing.png,miss00\ngood00.png\n"oops,aaaaaa\n');
    const ds = await loadDataset(d, { ...opts, skipBad: true });
    expect(ds.items.map((i) => i.file)).toEqual(['good00.png', 'good01.jpg']);
    expect(ds.skipped.map((s) => [s.line, s.file])).toEqual([
      [4, 'small0.png'],
      [5, 'junk00.png'],
      [6, 'short.png'],
      [7, 'missing.png'],
      [8, ''],
      [9, ''],
    ]);
    expect(ds.skipped[0].problem).toMatch(/is 3x3/);
    expect(ds.skipped[1].problem).toMatch(/not a PNG or JPEG/);
    expect(ds.skipped[2].problem).toMatch(/5 characters/);
    expect(ds.skipped[3].problem).toMatch(/missing/);
    expect(ds.skipped[4].problem).toMatch(/malformed/);
    expect(ds.skipped[5].problem).toMatch(/unterminated quote/);

    // Without skipBad the same directory fails, listing all six.
    const err = await expectUserError(loadDataset(d, opts), 'labels.csv line 4: small0.png', /6 bad items/);
    expect(err.message).toContain('line 9');
  });

  it('still fails when nothing usable is left', async () => {
    const d = await freshDir();
    await writeFile(path.join(d, 'junk00.png'), 'junk');
    await expectUserError(loadDataset(d, { ...opts, skipBad: true }), /no usable images \(1 bad items skipped\)/);
  });
});

describe('decodeInto', () => {
  it('writes float32 RGB value/255 in NHWC order at the offset, with both decoders', async () => {
    const bytes = await patternPng();
    const raw = patternRaw();
    for (const decoder of ['canvas', 'sharp'] as const) {
      const out = new Float32Array(5 + W * H * 3).fill(-1);
      await expect(decodeInto(bytes, out, 5, { decoder, width: W, height: H })).resolves.toEqual({ width: W, height: H });
      expect(Array.from(out.subarray(0, 5))).toEqual([-1, -1, -1, -1, -1]);
      for (let i = 0; i < raw.length; i++) {
        if (out[5 + i] !== Math.fround(raw[i] / 255)) throw new Error(`${decoder}: element ${i}: ${out[5 + i]} != ${raw[i]}/255`);
      }
    }
  });

  it('gives the same pixels for grey, palette, RGBA PNG and baseline/progressive JPEG from canvas and sharp', async () => {
    const base = sharp(patternRaw(), { raw: { width: W, height: H, channels: 3 } });
    const variants = [
      await base.clone().grayscale().png().toBuffer(),
      await base.clone().png({ palette: true }).toBuffer(),
      await base.clone().ensureAlpha().png().toBuffer(),
      await base.clone().jpeg({ quality: 80 }).toBuffer(),
      await base.clone().jpeg({ quality: 80, progressive: true }).toBuffer(),
    ];
    for (const bytes of variants) {
      const a = new Float32Array(W * H * 3);
      const b = new Float32Array(W * H * 3);
      await decodeInto(bytes, a, 0, { decoder: 'canvas' });
      await decodeInto(bytes, b, 0, { decoder: 'sharp' });
      expect(a).toEqual(b);
    }
  });

  it('rejects a wrong size and an undecodable file with a UserError naming the file', async () => {
    const d = await freshDir();
    const f = path.join(d, 'p.png');
    await writeFile(f, await png([1, 1, 1], 4, 4));
    const out = new Float32Array(W * H * 3);
    await expectUserError(decodeInto(f, out, 0, { width: W, height: H }), f, /is 4x4/);
    await writeFile(f, 'garbage');
    await expectUserError(decodeInto(f, out, 0), f, /cannot be decoded/);
    await expectUserError(decodeInto(path.join(d, 'none.png'), out, 0), 'none.png', /cannot be read/);
  });

  it('serves repeated reads from the byte cache', async () => {
    const d = await freshDir();
    const f = path.join(d, 'p.png');
    await writeFile(f, await png([255, 0, 0]));
    const cache = new ByteCache();
    const out = new Float32Array(W * H * 3);
    await decodeInto(f, out, 0, { cache });
    await rm(f);
    await decodeInto(f, out, 0, { cache }); // from memory
    expect(out[0]).toBe(1);
    expect(cache.bytes).toBeGreaterThan(0);
  });

  it('checkImage reads sizes from headers', async () => {
    expect(checkImage(await png([0, 0, 0], 33, 7))).toEqual({ format: 'png', width: 33, height: 7 });
    expect(checkImage(await solid([0, 0, 0], 31, 9).jpeg().toBuffer())).toEqual({ format: 'jpeg', width: 31, height: 9 });
    const progressive = await solid([0, 0, 0], 31, 9).jpeg({ progressive: true }).toBuffer();
    expect(checkImage(progressive)).toEqual({ format: 'jpeg', width: 31, height: 9 });
  });
});

describe('splitDataset', () => {
  let ds: Dataset;
  beforeAll(async () => {
    const d = await freshDir();
    const bytes = await png([0, 0, 0]);
    for (let i = 0; i < 50; i++) await writeFile(path.join(d, `ab${String(i).padStart(4, '0')}.png`), bytes);
    ds = await loadDataset(d, opts);
  });

  it('is seeded, stable, disjoint and covers every item', () => {
    const a = splitDataset(ds, { valFraction: 0.2, seed: 7 });
    const b = splitDataset(ds, { valFraction: 0.2, seed: 7 });
    const c = splitDataset(ds, { valFraction: 0.2, seed: 8 });
    expect(a.val.items).toHaveLength(10);
    expect(a.train.items).toHaveLength(40);
    expect(b).toEqual(a);
    expect(c.val.items).not.toEqual(a.val.items);
    const files = (x: Dataset) => x.items.map((i) => i.file);
    const val = new Set(files(a.val));
    expect(files(a.train).some((f) => val.has(f))).toBe(false);
    expect([...files(a.train), ...files(a.val)].sort()).toEqual(files(ds));
    expect(a.train.cache).toBe(ds.cache);
  });

  it('does not depend on the order of the items', () => {
    const reversed = { ...ds, items: [...ds.items].reverse() };
    const a = splitDataset(ds, { valFraction: 0.3, seed: 'x' });
    const b = splitDataset(reversed, { valFraction: 0.3, seed: 'x' });
    expect(new Set(b.val.items.map((i) => i.file))).toEqual(new Set(a.val.items.map((i) => i.file)));
  });

  it('rejects fractions that leave a side empty', () => {
    expect(() => splitDataset(ds, { valFraction: 0, seed: 1 })).toThrow(UserError);
    expect(() => splitDataset(ds, { valFraction: 1, seed: 1 })).toThrow(UserError);
    expect(() => splitDataset(ds, { valFraction: 0.001, seed: 1 })).toThrow(/no validation/);
  });
});

describe('loading reads each file once', () => {
  it('keeps every image in the cache within its budget', async () => {
    const d = await freshDir();
    const bytes = await png([0, 0, 0]);
    for (let i = 0; i < 5; i++) await writeFile(path.join(d, `ab000${i}.png`), bytes);
    const small = await loadDataset(d, { ...opts, cacheBytes: bytes.length * 3 });
    expect(small.cache?.size).toBe(3);
    const none = await loadDataset(d, { ...opts, cacheBytes: 0 });
    expect(none.cache).toBeNull();
    expect(await readFile(path.join(d, 'ab0000.png'))).toEqual(bytes);
  });
});

describe('a declared label shape: 4 characters of 0-9A-Z', () => {
  const fold = labelSpec(4, '0-9A-Z', 'fold');
  const upper = labelSpec(4, '0-9A-Z', 'upper');

  it('reads upper-case file-name labels, and under fold small letters as the same classes', async () => {
    const dir = await freshDir();
    await writeFile(path.join(dir, 'A3K9.png'), await png([1, 2, 3]));
    await writeFile(path.join(dir, 'zq07_2.png'), await png([4, 5, 6]));
    const ds = await loadDataset(dir, { ...opts, spec: fold });
    expect(ds.items).toEqual([
      { file: 'A3K9.png', label: 'A3K9' },
      { file: 'zq07_2.png', label: 'ZQ07' },
    ]);
  });

  it('under upper, a small-letter label is a per-file error naming the file and the case', async () => {
    const dir = await freshDir();
    await writeFile(path.join(dir, 'A3K9.png'), await png([1, 2, 3]));
    await writeFile(path.join(dir, 'zq07.png'), await png([4, 5, 6]));
    await expectUserError(
      loadDataset(dir, { ...opts, spec: upper }),
      `${path.join(dir, 'zq07.png')}: label 'zq07' has character 'z' outside the charset`,
      /labels are upper case under case: upper; case: fold reads either case\) \(label taken from the file name\)/,
    );
  });

  it('an image of another size or a label of another length is a per-file error', async () => {
    const dir = await freshDir();
    await writeFile(path.join(dir, 'labels.csv'), 'file,label\na.png,A3K9\nb.png,A3K9Q\n');
    await writeFile(path.join(dir, 'a.png'), await png([1, 2, 3], 16, 5));
    await writeFile(path.join(dir, 'b.png'), await png([1, 2, 3]));
    const err = await expectUserError(loadDataset(dir, { ...opts, spec: fold }), /2 bad items/);
    expect(err.message).toContain(`labels.csv line 2: a.png: is 16x5 (width x height), expected ${W}x${H}`);
    expect(err.message).toContain("labels.csv line 3: b.png: label 'A3K9Q' has 5 characters, expected 4");
  });
});
