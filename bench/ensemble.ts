/**
 * What voting buys: the ensembles of a CPU sweep against its best single trial.
 *
 *   npx tsx bench/ensemble.ts [--sweep bench/sweeps/ensemble.yaml] [--workers 2] [--hard 1000] [--no-launch]
 *
 * Runs the sweep file (eight tiny railway models around the accuracy recipe; trials already
 * finished are not run again), stores predictions that are only on disk (`sweep ensemble
 * backfill`), then builds vote, soft and greedy ensembles of the top 3 and 5 and compares each
 * with the best single member (the top-ranked trial) on the sweep's 2,000-image test set, with
 * a 95% interval for each difference (paired: the same images). Every model and ensemble is
 * also read on `--hard` images of the `hard` style, which no model trained on. Also checks
 * that storing probabilities as float16 changes no vote and no accuracy.
 *
 * State lives in SWEEP_HOME (default bench/out/ensemble/home) and DATABASE_URL (default: the
 * embedded database there). Writes bench/results/ensemble.md and .json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { generateDataset } from '../src/data/generate/index.ts';
import { openDatabase } from '../src/infra/db.ts';
import { backfillPredictions } from '../src/ensemble/backfill.ts';
import { buildEnsemble, BUILD_DEFAULTS, labelClasses, type EnsembleMethod, type EnsembleSummary } from '../src/ensemble/build.ts';
import { pairedDifference, vote } from '../src/ensemble/combine.ts';
import { decodeImageFiles } from '../src/ensemble/images.ts';
import { locateModel } from '../src/ensemble/export.ts';
import { loadMember } from '../src/ensemble/member.ts';
import { combineMembers } from '../src/ensemble/reader.ts';
import { accuracy, argmax, correctSequences } from '../src/ensemble/probs.ts';
import { initBackend } from '../src/train/backend.ts';
import * as tf from '../src/train/tf.ts';
import { loadPredictions, readPredictionFiles } from '../src/track/predictions.ts';
import { parseSweep } from '../src/sweep/index.ts';
import { readFileSync } from 'node:fs';
import { load, markdownTable, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    sweep: { type: 'string', default: 'bench/sweeps/ensemble.yaml' },
    workers: { type: 'string', default: '2' },
    hard: { type: 'string', default: '1000' },
    // --no-launch: measure the trials that finished so far without running the rest.
    launch: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const loadAtStart = load();
process.env.SWEEP_HOME ??= path.resolve('bench/out/ensemble/home');
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const spec = parseSweep(readFileSync(a.sweep!, 'utf8'), a.sweep!);

// 1. The sweep: launched (again) until every trial has ended; finished ones are not rerun.
if (a.launch) {
  log(`running ${a.sweep} with ${a.workers} workers (finished trials are kept)`);
  const launch = spawnSync(process.execPath, ['bin/sweep.mjs', 'launch', a.sweep!, '--workers', a.workers!], { stdio: 'inherit' });
  if (launch.status !== 0) log(`sweep launch exited ${launch.status}; going on with the trials that finished`);
}

const db = await openDatabase({ migrate: true });
const prisma = db.prisma;
try {
  // 2. Predictions only on disk (trials trained before they were stored) go to the database.
  const bf = await backfillPredictions(prisma, spec.name);
  log(`backfill: ${bf.stored.length} stored, ${bf.alreadyStored} already there, ${bf.missing.length} missing`);

  // 3. float16 storage against the float32 files: votes and accuracies.
  const sweep = await prisma.sweep.findUniqueOrThrow({ where: { name: spec.name } });
  const finished = await prisma.trial.findMany({ where: { sweepId: sweep.id, status: 'finished' }, include: { artifacts: { where: { kind: 'model' } } } });
  const f16 = await float16Check(finished.map((t) => t.id));

  // 4. Ensembles, built and stored as `sweep ensemble build` does.
  const configs: Array<{ method: EnsembleMethod; k: number }> = [];
  for (const method of ['vote', 'soft', 'greedy'] as const) for (const k of [3, 5]) configs.push({ method, k });
  const built: EnsembleSummary[] = [];
  for (const c of configs) {
    const name = `bench-${c.method}-${c.k}`;
    built.push(await buildEnsemble(prisma, { ...BUILD_DEFAULTS, sweep: spec.name, method: c.method, topK: c.k, pool: c.k, name }));
  }
  const ranked = built[built.length - 1].members; // the top 5, best first
  const best = ranked[0];

  // 5. Every model read on the hard set, which none trained on.
  const hardDir = path.join(process.env.SWEEP_HOME!, 'data', `hard-${a.hard}-s21`);
  if (!existsSync(path.join(hardDir, 'labels.csv'))) {
    log(`generating ${a.hard} hard CAPTCHAs`);
    await generateDataset({ style: 'hard', count: Number(a.hard), seed: 21, out: hardDir });
  }
  const hardSet = await loadDataset(hardDir, { spec: DEFAULT_LABEL_SPEC });
  const decoded = await decodeImageFiles(hardSet.items.map((it) => path.join(hardDir, it.file)), { height: hardSet.height, width: hardSet.width });
  const hardLabels = labelClasses(
    { split: 'test', datasetId: '', files: decoded.ok, labels: hardSet.items.map((it) => it.label), length: 6, classes: 36, probs: new Float32Array() },
    DEFAULT_LABEL_SPEC,
  );
  await initBackend('auto', log);
  const hardProbs = new Map<string, Float32Array>();
  for (const m of ranked) {
    const trial = finished.find((t) => t.id === m.trialId)!;
    const member = await loadMember(locateModel({ trialId: m.trialId, recorded: trial.artifacts.map((x) => x.path) }));
    const out = new Float32Array(decoded.ok.length * 6 * 36);
    const per = hardSet.height * hardSet.width * 3;
    for (let i = 0; i < decoded.ok.length; i += 100) {
      const n = Math.min(100, decoded.ok.length - i);
      const x = tf.tensor4d(decoded.images.subarray(i * per, (i + n) * per), [n, hardSet.height, hardSet.width, 3]);
      const y = member.predict(x);
      out.set((await y.data()) as Float32Array, i * 6 * 36);
      tf.dispose([x, y]);
    }
    member.dispose();
    hardProbs.set(m.trialId, out);
    log(`read the hard set with #${m.index}`);
  }
  const n = decoded.ok.length;
  const hardBestPred = argmax({ n, length: 6, classes: 36, data: hardProbs.get(best.trialId)! });
  const hardScore = (pred: Int32Array) => accuracy(pred, hardLabels, 6);
  const hardGain = (pred: Int32Array) => pairedDifference(correctSequences(pred, hardLabels, 6), correctSequences(hardBestPred, hardLabels, 6));

  // 6. Tables.
  const pct = (x: number) => (100 * x).toFixed(2);
  const sgn = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  const ci = (d: { diff?: number; seq_acc?: number; lo?: number; hi?: number; seq_lo?: number; seq_hi?: number }) =>
    `${sgn(d.diff ?? d.seq_acc!)} [${sgn(d.lo ?? d.seq_lo!)}, ${sgn(d.hi ?? d.seq_hi!)}]`;
  const memberRows = ranked.map((m) => {
    const hp = argmax({ n, length: 6, classes: 36, data: hardProbs.get(m.trialId)! });
    const h = hardScore(hp);
    return [`#${m.index} ${m.trialId.slice(0, 10)}`, fmtParams(m.params), pct(m.val.seq_acc), pct(m.test!.char_acc), pct(m.test!.seq_acc), pct(h.char_acc), pct(h.seq_acc)];
  });
  const ensembleRows = built.map((e) => {
    const members = e.members.filter((m) => m.weight > 0);
    const c = combineMembers(e.method, members.map((m) => hardProbs.get(m.trialId)!), members.map((m) => m.weight), n, 6, 36);
    const h = hardScore(c.chosen);
    return {
      row: [e.name.replace('bench-', ''), members.map((m) => `#${m.index}${m.weight > 1 ? `x${m.weight}` : ''}`).join(' '), pct(e.ensemble.test!.char_acc), pct(e.ensemble.test!.seq_acc), ci(e.gain.test!), pct(h.seq_acc), ci(hardGain(c.chosen))],
      data: { name: e.name, method: e.method, k: e.k, members: members.map((m) => ({ trialId: m.trialId, weight: m.weight })), test: e.ensemble.test, val: e.ensemble.val, gain: e.gain, hard: { ...h, gain: hardGain(c.chosen) } },
    };
  });
  const markdown = [
    `Sweep \`${a.sweep}\`: ${finished.length} finished trials (width ${spec.train.width}, ${spec.train.pretrain_epochs} pretrain + ${spec.train.gru_epochs} GRU epochs on ${(spec.train.generate as { count: number }).count} railway images). Best single member: #${best.index} (top by ${built[0].metric}). Test: the sweep's ${(spec.train.test as { count: number }).count} railway images; hard: ${n} images of the \`hard\` style, which no model trained on. Sequence accuracy in %, differences in points with a 95% paired interval (normal approximation over per-image differences).`,
    '',
    '## Members (top 5)',
    '',
    markdownTable(['trial', 'params', 'val seq', 'test char', 'test seq', 'hard char', 'hard seq'], memberRows),
    '',
    '## Ensembles against the best single member',
    '',
    markdownTable(['ensemble', 'members (weight)', 'test char', 'test seq', 'test seq gain [95%]', 'hard seq', 'hard seq gain [95%]'], ensembleRows.map((r) => r.row)),
    '',
    `Greedy selects on validation predictions only (pool = the top k), so its test numbers are as honest as the others'.`,
    '',
    '## float16 storage',
    '',
    `Probabilities are stored in Postgres as float16. Against the float32 files of ${f16.trials} trials (${f16.values.toLocaleString('en-US')} characters): ${f16.argmaxChanged} arg-max changes, ${f16.accuracyChanged} accuracy changes, ${f16.voteChanged} changed votes of the top-5 vote.`,
  ].join('\n');
  const { md } = writeResults({
    name: 'ensemble',
    title: 'Ensembles of a CPU sweep against its best single model',
    markdown,
    loadAtStart,
    data: { sweep: spec.name, members: ranked.map((m, i) => ({ ...m, hard: hardScore(argmax({ n, length: 6, classes: 36, data: hardProbs.get(m.trialId)! })), row: memberRows[i] })), ensembles: ensembleRows.map((r) => r.data), float16: f16 },
  });
  process.stdout.write(`${markdown}\n\nwrote ${md}\n`);
} finally {
  await db.close();
}

function fmtParams(p: Record<string, unknown>): string {
  return ['lr', 'dropout', 'seed'].map((k) => `${k}=${p[k]}`).join(' ');
}

/** Stored float16 predictions against the trainer's float32 files: arg-max, accuracy, votes. */
async function float16Check(ids: string[]) {
  const stored = await loadPredictions(prisma, ids, 'test');
  const top = [...stored.keys()].slice(0, 5);
  let values = 0;
  let argmaxChanged = 0;
  let accuracyChanged = 0;
  const f32s: Float32Array[] = [];
  const f16s: Float32Array[] = [];
  let shape = { n: 0, length: 6, classes: 36 };
  for (const id of stored.keys()) {
    const s = stored.get(id)!;
    const file = path.join(process.env.SWEEP_HOME!, 'trials', id, 'predictions', 'test.probs.f32');
    if (!existsSync(file)) continue;
    const f = readPredictionFiles(file, 'test');
    shape = { n: f.labels.length, length: f.length, classes: f.classes };
    const a32 = argmax({ ...shape, data: f.probs });
    const a16 = argmax({ ...shape, data: s.probs });
    values += a32.length;
    for (let i = 0; i < a32.length; i++) if (a32[i] !== a16[i]) argmaxChanged++;
    const labels = labelClasses(s, DEFAULT_LABEL_SPEC);
    const x = accuracy(a32, labels, f.length);
    const y = accuracy(a16, labels, f.length);
    if (x.char_acc !== y.char_acc || x.seq_acc !== y.seq_acc) accuracyChanged++;
    if (top.includes(id)) {
      f32s.push(f.probs);
      f16s.push(s.probs);
    }
  }
  const v32 = vote(f32s.map((data) => ({ ...shape, data })));
  const v16 = vote(f16s.map((data) => ({ ...shape, data })));
  let voteChanged = 0;
  for (let i = 0; i < v32.length; i++) if (v32[i] !== v16[i]) voteChanged++;
  return { trials: stored.size, values, argmaxChanged, accuracyChanged, voteChanged };
}
