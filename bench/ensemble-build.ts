/**
 * `sweep ensemble build` over a large sweep: 1,000 finished trials with synthetic predictions
 * on 1,000 validation images (6 x 36 probabilities each, stored as the workers store them),
 * then vote, soft and greedy (pool 50) builds timed end to end against Postgres: ranking,
 * loading and decoding the chosen trials' predictions, combining, scoring and storing.
 *
 *   npx tsx bench/ensemble-build.ts [--trials 1000] [--images 1000] [--pool 50] [--runs 3]
 *
 * Uses a database of its own on SWEEP_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
 * dropped at the end (kept with --keep, for profiling). Writes bench/results/ensemble-build.md and .json.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openDatabase } from '../src/infra/db.ts';
import { buildEnsemble, BUILD_DEFAULTS, type EnsembleMethod } from '../src/ensemble/build.ts';
import { expandSweep } from '../src/scheduler/expand.ts';
import { parseSweep } from '../src/sweep/index.ts';
import { datasetHash } from '../src/track/codec.ts';
import { savePredictions } from '../src/track/predictions.ts';
import { insertTrials, saveSweep } from '../src/track/store.ts';
import { Rng } from '../src/util/rng.ts';
import { load, markdownTable, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    trials: { type: 'string', default: '1000' },
    images: { type: 'string', default: '1000' },
    pool: { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const trials = Number(a.trials);
const images = Number(a.images);
const pool = Number(a.pool);
const runs = Number(a.runs);
const loadAtStart = load();
const L = 6;
const C = 36;
const CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';

const admin = process.env.SWEEP_BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `sweep_bench_build_${randomBytes(4).toString('hex')}`;
const adminQuery = async (sql: string) => {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
};
await adminQuery(`CREATE DATABASE "${dbName}"`);
const url = new URL(admin);
url.pathname = `/${dbName}`;
const log = (m: string) => process.stderr.write(`${m}\n`);

const db = await openDatabase({ env: { DATABASE_URL: url.toString() }, migrate: true });
try {
  const spec = parseSweep(
    ['name: big', 'method: grid', 'train: {generate: {style: railway, count: 10, seed: 1}}', 'parameters:', `  seed: {values: [${Array.from({ length: trials }, (_, i) => i).join(', ')}]}`, ''].join('\n'),
    'big.yaml',
  );
  const sweep = await saveSweep(db.prisma, spec);
  const expanded = expandSweep(spec);
  await insertTrials(db.prisma, sweep.id, expanded);

  // Labels, and members that are right with a probability of their own (0.6-0.95 per character).
  const rng = new Rng(7);
  const labels = Array.from({ length: images }, () => Array.from({ length: L }, () => CHARSET[Math.floor(rng.next() * C)]).join(''));
  const files = labels.map((_, i) => `${i}.png`);
  const datasetId = datasetHash(files, labels);
  const t0 = performance.now();
  for (let t = 0; t < trials; t++) {
    const skill = 0.6 + 0.35 * rng.next();
    const probs = new Float32Array(images * L * C);
    for (let i = 0; i < images * L; i++) {
      const truth = CHARSET.indexOf(labels[Math.floor(i / L)][i % L]);
      const c = rng.next() < skill ? truth : Math.floor(rng.next() * C);
      let sum = 0;
      for (let k = 0; k < C; k++) sum += probs[i * C + k] = rng.next() * 0.1;
      probs[i * C + c] += 1 - sum;
    }
    const id = expanded[t].id;
    await db.prisma.trial.update({ where: { id }, data: { status: 'finished', bestMetric: skill, finishedAt: new Date(), summary: { val_seq_acc: skill } } });
    await savePredictions(db.prisma, id, [{ split: 'val', datasetId, files, labels, length: L, classes: C, probs }]);
    if ((t + 1) % 100 === 0) log(`stored ${t + 1}/${trials} trials (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }

  const rows: string[][] = [];
  const data: Array<{ method: string; k: number; ms: number[]; median: number }> = [];
  for (const [method, k] of [['vote', 5], ['soft', 5], ['greedy', pool]] as Array<[EnsembleMethod, number]>) {
    const ms: number[] = [];
    for (let r = 0; r < runs; r++) {
      const s = performance.now();
      await buildEnsemble(db.prisma, { ...BUILD_DEFAULTS, sweep: 'big', method, topK: k, pool: k });
      ms.push(performance.now() - s);
    }
    const median = [...ms].sort((x, y) => x - y)[Math.floor(ms.length / 2)];
    data.push({ method, k, ms, median });
    rows.push([method, method === 'greedy' ? `pool ${k}, ${BUILD_DEFAULTS.rounds} rounds` : `top ${k}`, ms.map((x) => x.toFixed(0)).join(', '), median.toFixed(0)]);
    log(`${method}: ${ms.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
  const markdown = [
    `\`sweep ensemble build\` as a library call (buildEnsemble: rank, load and decode the chosen trials' float16 predictions from Postgres, combine, score, store) over a sweep of ${trials} finished trials with synthetic predictions on ${images} validation images. Goal: greedy with a pool of 50 in at most 2 s.`,
    '',
    markdownTable(['method', 'members', `runs (ms)`, 'median (ms)'], rows),
  ].join('\n');
  const { md } = writeResults({ name: 'ensemble-build', title: 'Building an ensemble over 1,000 trials', markdown, loadAtStart, data: { trials, images, pool, results: data } });
  process.stdout.write(`${markdown}\nwrote ${md}\n`);
} finally {
  await db.close();
  if (a.keep) log(`kept ${url}`);
  else await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
}
