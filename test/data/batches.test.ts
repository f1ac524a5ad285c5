import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LABEL_SPEC, encodeLabel } from '../../src/data/charset.ts';
import { loadDataset, type Dataset } from '../../src/data/dataset.ts';
import { closeDecodePools } from '../../src/data/decode-pool.ts';
import { BatchStream, batchSource, batches, batchesPerEpoch, epochOrder, type Batch } from '../../src/data/batches.ts';

const W = 12;
const H = 5;
const N = 23; // not a multiple of the batch sizes used
const spec = DEFAULT_LABEL_SPEC;
const IMG = W * H * 3;

/** Item i is a solid colour derived from i; its label too. */
const colour = (i: number): [number, number, number] => [(i * 37) % 256, (i * 91 + 5) % 256, (i * 53 + 11) % 256];
const labelOf = (i: number) => `ab${String(i).padStart(4, '0')}`;

let dir: string;
let ds: Dataset;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sweep-batches-'));
  for (let i = 0; i < N; i++) {
    const [r, g, b] = colour(i);
    const img = sharp({ create: { width: W, height: H, channels: 3, background: { r, g, b } } });
    await writeFile(path.join(dir, `${labelOf(i)}.png`), await img.png().toBuffer());
  }
  ds = await loadDataset(dir, { spec, width: W, height: H });
});
afterAll(async () => {
  await closeDecodePools();
  await rm(dir, { recursive: true, force: true });
});

/** Every way of decoding: worker threads (the default), in-process canvas, in-process sharp. */
const DECODERS = [
  { name: 'worker threads', threads: 2 },
  { name: 'in-process canvas', threads: 0 },
  { name: 'in-process sharp', decoder: 'sharp' as const },
];

/** Copies what a test keeps beyond the iteration (the buffers are reused). */
async function collect(it: AsyncIterable<Batch>) {
  const out: { n: number; indices: number[]; x: Float32Array; y: Int32Array; batch: number }[] = [];
  for await (const b of it) out.push({ n: b.n, indices: [...b.indices], x: b.x.slice(), y: b.y.slice(), batch: b.batch });
  return out;
}

describe('epochOrder', () => {
  it('is a permutation that is a pure function of (seed, epoch)', () => {
    const a = epochOrder(100, 3, 0);
    expect([...a].sort((p, q) => p - q)).toEqual([...Array(100).keys()]);
    expect(epochOrder(100, 3, 0)).toEqual(a);
    expect(epochOrder(100, 3, 1)).not.toEqual(a);
    expect(epochOrder(100, 4, 0)).not.toEqual(a);
  });
});

describe('batches', () => {
  it('covers every item once per epoch, in a new order each epoch, the same for the same (seed, epoch)', async () => {
    const e0 = await collect(batches(ds, { batchSize: 5, seed: 1, epoch: 0 }));
    const e0again = await collect(batches(ds, { batchSize: 5, seed: 1, epoch: 0 }));
    const e1 = await collect(batches(ds, { batchSize: 5, seed: 1, epoch: 1 }));
    const order = (bs: typeof e0) => bs.flatMap((b) => b.indices);
    expect(order(e0).sort((a, b) => a - b)).toEqual([...Array(N).keys()]);
    expect(order(e0again)).toEqual(order(e0));
    expect(order(e1)).not.toEqual(order(e0));
    expect(order(e0)).toEqual([...epochOrder(N, 1, 0)]);
    expect(e0again.map((b) => b.x)).toEqual(e0.map((b) => b.x));
  });

  it.each(DECODERS)('holds the pixels and labels of the files, batch by batch ($name)', async (how) => {
    {
      for await (const b of batches(ds, { batchSize: 4, seed: 9, ...how })) {
        expect(b.x.length).toBe(b.n * IMG);
        expect(b.y.length).toBe(b.n * spec.length);
        b.indices.forEach((item, j) => {
          const i = Number(ds.items[item].label.slice(2)); // the label encodes which colour
          const rgb = colour(i).map((v) => Math.fround(v / 255));
          for (let p = 0; p < W * H; p++)
            for (let c = 0; c < 3; c++) if (b.x[j * IMG + p * 3 + c] !== rgb[c]) throw new Error(`item ${item} pixel ${p} channel ${c}`);
          expect([...b.y.subarray(j * spec.length, (j + 1) * spec.length)]).toEqual(encodeLabel(labelOf(i), spec));
        });
      }
    }
  });

  it('yields a partial last batch, or drops it', async () => {
    const all = await collect(batches(ds, { batchSize: 5, shuffle: false }));
    expect(all.map((b) => b.n)).toEqual([5, 5, 5, 5, 3]);
    expect(all.flatMap((b) => b.indices)).toEqual([...Array(N).keys()]);
    expect(all[4].x.length).toBe(3 * IMG);
    const dropped = await collect(batches(ds, { batchSize: 5, dropRemainder: true, seed: 2 }));
    expect(dropped.map((b) => b.n)).toEqual([5, 5, 5, 5]);
    expect(batchesPerEpoch(N, 5)).toBe(5);
    expect(batchesPerEpoch(N, 5, true)).toBe(4);
  });

  it('resumes mid-epoch with the batches a full run would have given', async () => {
    const full = await collect(batches(ds, { batchSize: 3, seed: 'r', epoch: 4 }));
    const stream = new BatchStream(ds, { batchSize: 3, seed: 'r', epoch: 4, startBatch: 5 });
    expect(stream.position).toBe(5);
    const rest = await collect(stream);
    expect(stream.position).toBe(full.length);
    expect(rest.map((b) => b.indices)).toEqual(full.slice(5).map((b) => b.indices));
    expect(rest.map((b) => b.x)).toEqual(full.slice(5).map((b) => b.x));
  });

  it.each(DECODERS)('reuses prefetch + keep buffers, keeping the last `keep` batches intact ($name)', async (how) => {
    for (const [prefetch, keep] of [[0, 1], [1, 1], [2, 1], [2, 2], [3, 3]]) {
      const seen: Batch[] = [];
      const buffers = new Set<ArrayBufferLike>();
      for await (const b of batches(ds, { batchSize: 2, shuffle: false, prefetch, keep, ...how })) {
        buffers.add(b.x.buffer);
        seen.push(b);
        // The last `keep` batches still hold their own pixels.
        for (const old of seen.slice(-keep)) {
          const i = Number(ds.items[old.indices[0]].label.slice(2));
          expect(old.x[0]).toBe(Math.fround(colour(i)[0] / 255));
        }
      }
      expect(buffers.size).toBe(prefetch + keep);
    }
  });

  it('batchSource gives the trainer its view: size, files, labels, epochs of batches', async () => {
    const src = batchSource(ds, { prefetch: 1 });
    expect(src.size).toBe(N);
    expect(src.files[3]).toBe(`${labelOf(3)}.png`);
    expect(src.labels[3]).toBe(labelOf(3));
    const got = await collect(src.batches({ batchSize: 5, shuffle: true, seed: 1, epoch: 2 }));
    const want = await collect(batches(ds, { batchSize: 5, seed: 1, epoch: 2 }));
    expect(got.map((b) => b.indices)).toEqual(want.map((b) => b.indices));
  });

  it.each(DECODERS)('fails with the name of a file that went bad after loading ($name)', async (how) => {
    const broken: Dataset = { ...ds, cache: null, items: [...ds.items, { file: 'gone00.png', label: 'gone00' }] };
    await expect(collect(batches(broken, { batchSize: 4, shuffle: false, ...how }))).rejects.toThrow(/gone00\.png: cannot be read/);
    await writeFile(path.join(dir, 'junk00.png'), 'not an image');
    const junk: Dataset = { ...ds, cache: null, items: [{ file: 'junk00.png', label: 'junk00' }] };
    await expect(collect(batches(junk, { batchSize: 4, ...how }))).rejects.toThrow(/junk00\.png: cannot be decoded/);
    await rm(path.join(dir, 'junk00.png'));
  });

  it('decodes the same floats on worker threads and in-process', async () => {
    const runs = await Promise.all(DECODERS.map((how) => collect(batches(ds, { batchSize: 6, seed: 5, ...how }))));
    for (const r of runs.slice(1)) expect(r.map((b) => b.x)).toEqual(runs[0].map((b) => b.x));
  });
});

