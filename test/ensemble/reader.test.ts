/**
 * loadReader as a library: readers written by writeReader from saved models, read on
 * generated CAPTCHAs, against the members' own predictions combined by hand.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDataset } from '../../src/data/generate/index.ts';
import { soft, vote } from '../../src/ensemble/combine.ts';
import { writeReader, type ExportPlan } from '../../src/ensemble/export.ts';
import { decodeImageFiles } from '../../src/ensemble/images.ts';
import { loadMember } from '../../src/ensemble/member.ts';
import { argmax } from '../../src/ensemble/probs.ts';
import { loadReader } from '../../src/ensemble/reader.ts';
import { initBackend } from '../../src/train/backend.ts';
import { fileUrl, registerFileRouter } from '../../src/train/io.ts';
import { buildGruModel, type ModelSpec } from '../../src/train/model.ts';
import * as tf from '../../src/train/tf.ts';

const CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';
let root: string;
let images: string[];
const modelDirs: string[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'sweep-reader-'));
  await initBackend('wasm');
  registerFileRouter();
  const spec: ModelSpec = { kernel_size: 3, alpha: 0, dropout: 0, width: 0.0625, seed: 0, height: 60, imageWidth: 200, length: 6, classes: 36 };
  for (const seed of [1, 2, 3]) {
    const model = buildGruModel({ ...spec, seed });
    const dir = path.join(root, 'trials', `t${seed}`, 'model');
    await model.save(fileUrl(dir));
    model.dispose();
    modelDirs.push(dir);
  }
  const data = path.join(root, 'data');
  await generateDataset({ style: 'railway', count: 6, seed: 5, out: data });
  images = readFileSync(path.join(data, 'labels.csv'), 'utf8').trim().split('\n').slice(1).map((l) => path.join(data, l.split(',')[0]));
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

function plan(method: ExportPlan['method'], weights: number[]): ExportPlan {
  return {
    name: `r-${method}`,
    method,
    sweep: null,
    datasets: { val: null, test: null },
    label: { length: 6, charset: CHARSET },
    members: modelDirs.map((dir, i) => ({ trialId: `t${i + 1}`, sweep: null, rank: i + 1, weight: weights[i], params: {}, metrics: {}, recorded: [dir] })),
  };
}

async function memberProbs(): Promise<Float32Array[]> {
  const d = await decodeImageFiles(images, { height: 60, width: 200 });
  const x = tf.tensor4d(d.images, [images.length, 60, 200, 3]);
  const out: Float32Array[] = [];
  for (const dir of modelDirs) {
    const m = await loadMember(dir);
    const y = m.predict(x);
    out.push((await y.data()) as Float32Array);
    y.dispose();
    m.dispose();
  }
  x.dispose();
  return out;
}

describe('loadReader', () => {
  it('reads with a weighted soft average and with a majority vote, as the members combined by hand', async () => {
    const probs = (await memberProbs()).map((data) => ({ n: images.length, length: 6, classes: 36, data }));
    for (const method of ['soft', 'vote'] as const) {
      const weights = method === 'soft' ? [2, 1, 1] : [1, 1, 1];
      const dir = path.join(root, `reader-${method}`);
      writeReader(plan(method, weights), dir);
      const reader = await loadReader(dir, { backend: 'wasm' });
      try {
        expect(reader.members).toHaveLength(3);
        const { results, problems } = await reader.read(images, { batch: 4, probs: true });
        expect(problems).toEqual([]);
        const chosen = method === 'soft' ? argmax(soft(probs, weights)) : vote(probs, weights);
        const avg = soft(probs, weights).data;
        results.forEach((r, i) => {
          expect(r.file).toBe(images[i]);
          expect(r.text).toBe(Array.from(chosen.subarray(i * 6, i * 6 + 6), (c) => CHARSET[c]).join(''));
          r.chars.forEach((c, pos) => expect(c.p).toBeCloseTo(avg[(i * 6 + pos) * 36 + CHARSET.indexOf(c.char)], 4));
          expect(r.confidence).toBeCloseTo(r.chars.reduce((a, c) => a * c.p, 1), 10);
        });
      } finally {
        reader.dispose();
      }
    }
  });

  it('reads a trained model directory as a one-member reader', async () => {
    const [p] = await memberProbs();
    const reader = await loadReader(modelDirs[0], { backend: 'wasm' });
    try {
      expect(reader.manifest.method).toBe('single');
      expect(reader.manifest.input).toMatchObject({ height: 60, width: 200 });
      const { results } = await reader.read(images);
      const chosen = argmax({ n: images.length, length: 6, classes: 36, data: p });
      results.forEach((r, i) => expect(r.text).toBe(Array.from(chosen.subarray(i * 6, i * 6 + 6), (c) => CHARSET[c]).join('')));
    } finally {
      reader.dispose();
    }
  });

  it('refuses a member file missing from the reader, and a directory that is not a reader', async () => {
    const dir = path.join(root, 'reader-soft');
    rmSync(path.join(dir, 'members', 't2', 'weights.bin'));
    await expect(loadReader(dir)).rejects.toThrow(/members\/t2\/weights\.bin: missing/);
    writeFileSync(path.join(root, 'empty.txt'), '');
    await expect(loadReader(root)).rejects.toThrow(/neither an exported reader/);
  });

  it('refuses to export over a non-empty directory, and a member whose model is not on this machine', () => {
    expect(() => writeReader(plan('vote', [1, 1, 1]), path.join(root, 'reader-vote'))).toThrow(/exists and is not empty.*--force/);
    const p = plan('vote', [1, 1, 1]);
    p.members[1].recorded = [path.join(root, 'elsewhere', 'model')];
    p.members[1].trialId = 'gone';
    expect(() => writeReader(p, path.join(root, 'reader-gone'), { env: { SWEEP_HOME: path.join(root, 'home') } })).toThrow(
      /trial gone: its model is not on this machine \(looked at .*elsewhere\/model, .*home\/trials\/gone\/model\).*SWEEP_ARTIFACTS/,
    );
  });
});
