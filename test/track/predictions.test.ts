/**
 * A finished trial's predictions files are checked against their file list when read: by the
 * worker storing them and by `sweep ensemble backfill`. A damaged file is named, never stored.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfillPredictions } from '../../src/ensemble/backfill.ts';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import { trialDir } from '../../src/infra/artifacts.ts';
import { PredictionFileError, readPredictionFiles, readTrialPredictions, savePredictions } from '../../src/track/predictions.ts';
import { writeFileList } from '../../src/train/integrity.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { setTrial, storeSweep } from '../cli/view-fixtures.ts';

/** A trial output directory's predictions/: val.probs.f32 (2 x 6 x 36), val.json, files.json. */
function writePredictions(trialOut: string): string {
  const dir = path.join(trialOut, 'predictions');
  mkdirSync(dir, { recursive: true });
  const probs = new Float32Array(2 * 6 * 36).map((_, i) => (i % 36) / 36);
  writeFileSync(path.join(dir, 'val.probs.f32'), new Uint8Array(probs.buffer));
  writeFileSync(path.join(dir, 'val.json'), JSON.stringify({ shape: [2, 6, 36], files: ['a.png', 'b.png'], labels: ['abc123', 'xyz789'], metrics: {} }));
  writeFileList(dir);
  return path.join(dir, 'val.probs.f32');
}

function flipByte(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] ^= 0x01;
  writeFileSync(file, b);
}

describe('reading predictions files', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'predictions-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it.each([
    ['a flipped byte in the probabilities (same size)', 'val.probs.f32', (f: string) => flipByte(f, 100), 'its contents changed since it was written (sha256 differs)'],
    ['a label changed in the sidecar', 'val.json', (f: string) => writeFileSync(f, readFileSync(f, 'utf8').replace('abc123', 'abc124')), 'its contents changed since it was written (sha256 differs)'],
    ['a truncated probabilities file', 'val.probs.f32', (f: string) => truncateSync(f, 1000), '1000 bytes where 1728 were written'],
  ])('names %s', (what, file, damage, problem) => {
    const probs = writePredictions(path.join(root, what.replace(/\W+/g, '-')));
    expect(readPredictionFiles(probs, 'val').labels).toEqual(['abc123', 'xyz789']);
    const damaged = path.join(path.dirname(probs), file);
    damage(damaged);
    const err = (() => {
      try {
        readPredictionFiles(probs, 'val');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PredictionFileError);
    expect((err as Error).message).toBe(`damaged predictions: ${damaged}: ${problem}`);
    const said: string[] = [];
    expect(readTrialPredictions({ predictions: { val: probs, test: null } }, (m) => said.push(m))).toEqual([]);
    expect(said[0]).toContain(`${damaged}: ${problem}`);
  });

  it('reads predictions written before file lists as they are', () => {
    const probs = writePredictions(path.join(root, 'unlisted'));
    rmSync(path.join(path.dirname(probs), 'files.json'));
    flipByte(probs, 100);
    expect(readPredictionFiles(probs, 'val').files).toEqual(['a.png', 'b.png']);
  });
});

describe('sweep ensemble backfill', () => {
  let pgdb: TestDatabase;
  let db: Database;
  let home: string;
  beforeAll(async () => {
    pgdb = await createTestDatabase();
    db = await openDatabase({ env: { DATABASE_URL: pgdb.url }, migrate: true });
    home = mkdtempSync(path.join(os.tmpdir(), 'backfill-'));
  });
  afterAll(async () => {
    await db?.close();
    await pgdb?.drop();
    rmSync(home, { recursive: true, force: true });
  });

  it('does not store damaged predictions: it names the file, and stores them once they are whole', async () => {
    const env = { SWEEP_HOME: home };
    const s = await storeSweep(db.prisma, 'backfill-damaged', [0.1]);
    await setTrial(db.prisma, s.ids[0], { status: 'finished', bestMetric: 0.5, finishedAt: new Date() });
    const probs = writePredictions(trialDir(s.ids[0], env));
    const whole = readFileSync(probs);
    flipByte(probs, 7);
    const first = await backfillPredictions(db.prisma, s.name, env);
    expect(first.stored).toEqual([]);
    expect(first.missing).toHaveLength(1);
    expect(first.missing[0].problem).toBe(`damaged predictions: ${probs}: its contents changed since it was written (sha256 differs)`);
    expect(await db.prisma.trialPredictions.count({ where: { trialId: s.ids[0] } })).toBe(0);

    writeFileSync(probs, whole);
    const second = await backfillPredictions(db.prisma, s.name, env);
    expect(second.stored.map((x) => x.trialId)).toEqual([s.ids[0]]);
    expect(await db.prisma.trialPredictions.count({ where: { trialId: s.ids[0] } })).toBe(1);
  });

  it('trials finishing at once store their shared dataset once, and each its own predictions', async () => {
    const s = await storeSweep(db.prisma, 'shared-dataset', [0.1, 0.2, 0.3, 0.4]);
    // One client per trial, as workers in their own processes, each storing in its own transaction.
    const workers = await Promise.all(s.ids.map(() => openDatabase({ env: { DATABASE_URL: pgdb.url } })));
    try {
      for (let round = 0; round < 10; round++) {
        // A dataset no trial has stored yet, every round.
        const set = { ...readPredictionFiles(writePredictions(path.join(home, 'shared')), 'val'), datasetId: `round-${round}` };
        await Promise.all(s.ids.map((id, i) => savePredictions(workers[i].prisma, id, [set])));
        expect(await db.prisma.predictionDataset.count({ where: { id: set.datasetId } })).toBe(1);
        expect(await db.prisma.trialPredictions.count({ where: { trialId: { in: s.ids }, datasetId: set.datasetId } })).toBe(s.ids.length);
      }
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
