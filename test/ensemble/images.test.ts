import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batches } from '../../src/data/batches.ts';
import { DEFAULT_LABEL_SPEC } from '../../src/data/charset.ts';
import { loadDataset, type Dataset } from '../../src/data/dataset.ts';
import { closeDecodePools } from '../../src/data/decode-pool.ts';
import { generateDataset } from '../../src/data/generate/index.ts';
import { decodeImageFiles } from '../../src/ensemble/images.ts';

const H = 60;
const W = 200;
const PER = H * W * 3;
let root: string;
let ds: Dataset;
let files: string[];
/** The training pipeline's floats of each file, by path. */
const trained = new Map<string, Float32Array>();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sweep-images-'));
  await generateDataset({ style: 'railway', count: 5, seed: 3, out: join(root, 'railway') });
  await generateDataset({ style: 'hard', count: 3, seed: 4, out: join(root, 'hard') });
  files = [];
  for (const style of ['railway', 'hard']) {
    ds = await loadDataset(join(root, style), { spec: DEFAULT_LABEL_SPEC });
    // What the trainer feeds the model: BatchStream on its decode worker threads.
    for await (const b of batches(ds, { batchSize: 2, shuffle: false })) {
      b.indices.forEach((item, j) => trained.set(join(ds.dir, ds.items[item].file), b.x.slice(j * PER, (j + 1) * PER)));
    }
    files.push(...ds.items.map((i) => join(ds.dir, i.file)));
  }
});
afterAll(async () => {
  await closeDecodePools();
  rmSync(root, { recursive: true, force: true });
});

/** Bit-for-bit equality (vitest's deep equality is slow on 36,000 floats). */
function same(a: Float32Array, b: Float32Array | undefined): boolean {
  return !!b && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function image(r: { images: Float32Array }, i: number): Float32Array {
  return r.images.subarray(i * PER, (i + 1) * PER);
}

describe('decodeImageFiles', () => {
  it.each([false, true])('gives exactly the floats training saw for generated CAPTCHAs (resize %s)', async (resize) => {
    const r = await decodeImageFiles(files, { height: H, width: W, resize });
    expect(r.ok).toEqual(files);
    expect(r.problems).toEqual([]);
    expect(r.images.length).toBe(files.length * PER);
    files.forEach((f, i) => expect(same(image(r, i), trained.get(f)), f).toBe(true));
  });

  it('names each bad file with its problem and still reads the rest, in order', async () => {
    const dir = join(root, 'mixed');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const text = join(dir, 'notes.png');
    writeFileSync(text, 'not an image at all');
    const truncated = join(dir, 'truncated.png');
    const whole = readFileSync(files[1]);
    writeFileSync(truncated, whole.subarray(0, whole.length - 40));
    const small = join(dir, 'small.png');
    await sharp({ create: { width: 100, height: 30, channels: 3, background: { r: 9, g: 99, b: 199 } } }).png().toFile(small);
    const missing = join(dir, 'missing.png');
    const good = join(dir, 'good.png');
    copyFileSync(files[2], good);

    const list = [files[0], text, truncated, small, missing, good, files[6]];
    const r = await decodeImageFiles(list, { height: H, width: W });
    expect(r.ok).toEqual([files[0], good, files[6]]);
    expect(r.problems.map((p) => p.file)).toEqual([text, truncated, small, missing]);
    expect(r.problems[0].problem).toMatch(/is not a PNG or JPEG image/);
    expect(r.problems[1].problem).toMatch(/is truncated/);
    expect(r.problems[2].problem).toBe('is 100x30 (width x height), expected 200x60 (resize it, or pass --resize)');
    expect(r.problems[3].problem).toBe('file is missing');
    expect(r.images.length).toBe(3 * PER);
    expect(same(image(r, 0), trained.get(files[0]))).toBe(true);
    expect(same(image(r, 1), trained.get(files[2]))).toBe(true);
    expect(same(image(r, 2), trained.get(files[6]))).toBe(true);
  });

  it('with resize, reads other sizes resized to the model size', async () => {
    const big = join(root, 'big.png');
    // Twice the size, each pixel repeated 2x2: resized back, it is close to the original.
    await sharp(files[0]).resize(2 * W, 2 * H, { kernel: 'nearest' }).png().toFile(big);
    const solid = join(root, 'solid.jpg');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 51, g: 102, b: 255 } } }).jpeg({ quality: 100 }).toFile(solid);
    const r = await decodeImageFiles([big, solid], { height: H, width: W, resize: true });
    expect(r.problems).toEqual([]);
    expect(r.ok).toEqual([big, solid]);
    const want = trained.get(files[0])!;
    const got = image(r, 0);
    let err = 0;
    for (let i = 0; i < PER; i++) err += Math.abs(got[i] - want[i]);
    expect(err / PER).toBeLessThan(0.02);
    expect(same(got, want)).toBe(false); // resampled, not the original decode
    const s = image(r, 1);
    for (let p = 0; p < H * W; p++) {
      expect(Math.abs(s[p * 3] - 51 / 255)).toBeLessThan(2 / 255);
      expect(Math.abs(s[p * 3 + 2] - 1)).toBeLessThan(2 / 255);
    }
    const refused = await decodeImageFiles([big], { height: H, width: W });
    expect(refused.problems).toEqual([{ file: big, problem: 'is 400x120 (width x height), expected 200x60 (resize it, or pass --resize)' }]);
    expect(refused.images.length).toBe(0);
  });
});
