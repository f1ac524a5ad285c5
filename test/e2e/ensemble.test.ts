/**
 * From a finished sweep to a reader: a tiny real sweep (three trials, a generated test set),
 * then `sweep ensemble build`, `export`, `predict` and `eval` as subprocesses, against real
 * Redis and Postgres.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProbs } from '../../src/track/codec.ts';
import { runCli, testEnv, writeFile, type TestEnv } from './helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

let t: TestEnv;
const SWEEP = 'tiny-ensemble';
let testDir: string;

interface Stored {
  trialId: string;
  split: string;
  length: number;
  classes: number;
  data: Uint8Array;
  dataset: { files: string[]; labels: string[] };
}

async function storedPredictions(split: string): Promise<Stored[]> {
  const db = await t.db();
  try {
    const rows = await db.prisma.trialPredictions.findMany({ where: { split }, include: { dataset: true } });
    return rows.map((r) => ({ ...r, dataset: { files: r.dataset.files as string[], labels: r.dataset.labels as string[] } }));
  } finally {
    await db.close();
  }
}

function argmaxText(probs: Float32Array, item: number, length: number, classes: number, charset = '0123456789abcdefghijklmnopqrstuvwxyz'): string {
  let s = '';
  for (let p = 0; p < length; p++) {
    const row = (item * length + p) * classes;
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs[row + c] > probs[row + best]) best = c;
    s += charset[best];
  }
  return s;
}

beforeAll(async () => {
  t = await testEnv('ens');
  const file = writeFile(
    t.dir,
    'tiny.yaml',
    tinySweep({ name: SWEEP, dropout: [0.1, 0.2, 0.3], extra: '  test: {style: railway, count: 24, seed: 7}' }),
  );
  const run = await runCli(['launch', file, '--workers', '2', '--json'], t.env, { timeoutMs: 280_000 });
  if (run.code !== 0) console.error(run.stderr);
  expect(run.code).toBe(0);
  testDir = path.join(t.home, 'data', 'railway-24-s7');
});
afterAll(async () => {
  await t?.cleanup();
});

describe('ensembles of a finished sweep', () => {
  it('stores every finished trial\'s validation and test predictions in Postgres', async () => {
    const val = await storedPredictions('val');
    const test = await storedPredictions('test');
    expect(val).toHaveLength(3);
    expect(test).toHaveLength(3);
    // One dataset per split, shared by the three trials; float16 = 2 bytes a value.
    expect(new Set(val.map((v) => JSON.stringify(v.dataset))).size).toBe(1);
    expect(test[0].dataset.files).toHaveLength(24);
    expect(test[0].data.byteLength).toBe(24 * 6 * 36 * 2);
  });

  it('builds vote, soft and greedy ensembles and replaces one of the same name', async () => {
    for (const method of ['vote', 'soft', 'greedy']) {
      const r = await runCli(['ensemble', 'build', SWEEP, '--method', method, '--top-k', '3', '--pool', '3', '--json'], t.env);
      if (r.code !== 0) console.error(r.stderr);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.method).toBe(method);
      expect(s.members).toHaveLength(3);
      expect(s.ensemble.test).not.toBeNull();
      expect(s.optimistic).toBe(false);
      expect(s.gain.test.seq_lo).toBeLessThanOrEqual(s.gain.test.seq_acc);
    }
    const again = await runCli(['ensemble', 'build', SWEEP, '--top-k', '2'], t.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/ensemble vote-top2 of sweep tiny-ensemble/);
    expect(again.stdout).toMatch(/gain over the best single member/);
    const twice = await runCli(['ensemble', 'build', SWEEP, '--top-k', '2', '--json'], t.env);
    expect(twice.code).toBe(0);
    const db = await t.db();
    try {
      const rows = await db.prisma.ensemble.findMany({ where: { name: 'vote-top2' }, include: { members: true } });
      expect(rows).toHaveLength(1);
      expect(rows[0].members.map((m) => m.rank).sort()).toEqual([1, 2]);
    } finally {
      await db.close();
    }
  });

  it('exports a reader whose predictions reproduce the stored ones, and refuses a non-empty directory', async () => {
    const out = path.join(t.dir, 'reader-soft');
    const e = await runCli(['ensemble', 'export', `${SWEEP}/soft-top3`, '--out', out], t.env);
    if (e.code !== 0) console.error(e.stderr);
    expect(e.code).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'sweep-reader', version: 1, method: 'soft', input: { height: 60, width: 200 }, label: { length: 6 } });
    expect(manifest.members).toHaveLength(3);
    expect(Object.keys(manifest.files)).toContain('README.md');

    const refused = await runCli(['ensemble', 'export', `${SWEEP}/soft-top3`, '--out', out], t.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/exists and is not empty.*--force/);
    expect((await runCli(['ensemble', 'export', `${SWEEP}/soft-top3`, '--out', out, '--force'], t.env)).code).toBe(0);

    // A one-member reader reads the test set exactly as the stored predictions say.
    const test = await storedPredictions('test');
    const one = test[0];
    const single = path.join(t.dir, 'reader-one');
    expect((await runCli(['export', one.trialId, '--out', single], t.env)).code).toBe(0);
    const files = one.dataset.files.map((f) => path.join(testDir, f));
    const p = await runCli(['predict', single, ...files, '--json', '--backend', 'wasm'], t.env);
    if (p.code !== 0) console.error(p.stderr);
    expect(p.code).toBe(0);
    const read = JSON.parse(p.stdout);
    const stored = decodeProbs(one.data, files.length * one.length * one.classes);
    read.results.forEach((r: { text: string; probs: number[][] }, i: number) => {
      expect(r.text).toBe(argmaxText(stored, i, one.length, one.classes));
      for (let pos = 0; pos < one.length; pos++) {
        for (let c = 0; c < one.classes; c++) expect(Math.abs(r.probs[pos][c] - stored[(i * one.length + pos) * one.classes + c])).toBeLessThan(2e-3);
      }
    });
  });

  it('names a corrupt and a wrong-size image, still reads the rest, and exits 2', async () => {
    const dir = path.join(t.dir, 'mixed');
    mkdirSync(dir, { recursive: true });
    const good = readdirSync(testDir).filter((f) => f.endsWith('.png')).slice(0, 2);
    for (const f of good) copyFileSync(path.join(testDir, f), path.join(dir, f));
    writeFileSync(path.join(dir, 'broken.png'), 'not an image at all');
    // A valid PNG of the wrong size.
    const canvas = createCanvas(160, 50);
    canvas.getContext('2d').fillRect(0, 0, 80, 25);
    writeFileSync(path.join(dir, 'small.png'), canvas.toBuffer('image/png'));
    const r = await runCli(['predict', path.join(t.dir, 'reader-soft'), '--data', dir, '--backend', 'wasm'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.png: /);
    expect(r.stderr).toMatch(/small\.png: .*160/);
    for (const f of good) expect(r.stdout).toContain(f);
  });

  it('refuses a reader whose files do not match the manifest, naming the file', async () => {
    const out = path.join(t.dir, 'reader-soft');
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    const weights = Object.keys(manifest.files).find((f) => f.endsWith('weights.bin'))!;
    manifest.files[weights] = '0'.repeat(64);
    writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest));
    const r = await runCli(['predict', out, path.join(testDir, readdirSync(testDir).find((f) => f.endsWith('.png'))!)], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(weights.split('/').pop()!);
    expect(r.stderr).toMatch(/sha256/);
  });

  it('evaluates a reader on a labelled directory', async () => {
    const r = await runCli(['eval', path.join(t.dir, 'reader-one'), '--data', testDir, '--json', '--backend', 'wasm'], t.env);
    if (r.code !== 0) console.error(r.stderr);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.images).toBe(24);
    expect(e.by_position).toHaveLength(6);
    expect(e.char_acc).toBeCloseTo(e.by_position.reduce((a: number, b: number) => a + b, 0) / 6, 10);
  });

  it('backfills predictions from the artifact directories and says which trials need it', async () => {
    const db = await t.db();
    try {
      await db.prisma.trialPredictions.deleteMany({});
    } finally {
      await db.close();
    }
    const missing = await runCli(['ensemble', 'build', SWEEP], t.env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no stored validation predictions: #\d/);
    expect(missing.stderr).toMatch(/sweep ensemble backfill tiny-ensemble/);
    const b = await runCli(['ensemble', 'backfill', SWEEP, '--json'], t.env);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout).stored).toHaveLength(3);
    expect(await storedPredictions('test')).toHaveLength(3);
    expect((await runCli(['ensemble', 'build', SWEEP], t.env)).code).toBe(0);
    expect(existsSync(path.join(t.dir, 'reader-one', 'manifest.json'))).toBe(true);
  });

  it('refuses to export a trial whose model was damaged on disk, naming the file', async () => {
    const [one] = await storedPredictions('val');
    const weights = path.join(t.home, 'trials', one!.trialId, 'model', 'weights.bin');
    expect(existsSync(path.join(t.home, 'trials', one!.trialId, 'model', 'files.json'))).toBe(true);
    truncateSync(weights, 100);
    const r = await runCli(['export', one!.trialId, '--out', path.join(t.dir, 'reader-damaged')], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`its model in ${path.dirname(weights)} is damaged: ${weights}: 100 bytes where`);
    expect(existsSync(path.join(t.dir, 'reader-damaged'))).toBe(false);
  });
});
