/**
 * `sweep ensemble build`: the top trials of a sweep combined into one reader, measured member
 * by member on the stored validation and test predictions, and stored as Ensemble +
 * EnsembleMember rows (building the same name again replaces it).
 *
 *   vote    the report's majority vote per character position (ties: summed probability)
 *   soft    the average of the members' probabilities
 *   greedy  ensemble selection with replacement on the validation predictions (Caruana et
 *           al. 2004) from the top `pool` trials; integer weights, probabilities averaged
 *
 * Members are picked on validation predictions only, so the test numbers are honest; without a
 * test set the validation numbers are the ones selected on, hence optimistic, and say so.
 */
import type { PrismaClient } from '../infra/db.ts';
import type { LabelSpec } from '../data/charset.ts';
import { describeShape, shapeFromParams, type LabelCase } from '../train/shape.ts';
import { findSweep, sweepMetric } from '../track/store.ts';
import type { PredictionSet } from '../track/predictions.ts';
import type { SweepSpec } from '../sweep/schema.ts';
import { UserError } from '../util/errors.ts';
import { argmax, accuracy, correctSequences, type Probs } from './probs.ts';
import { greedySelect, pairedDifference, soft, vote } from './combine.ts';
import { finishedTrials, memberPredictions, metricGoal, rankCandidates, RANKABLE_METRICS, short, type Candidate } from './members.ts';

export const METHODS = ['vote', 'soft', 'greedy'] as const;
export type EnsembleMethod = (typeof METHODS)[number];

export interface BuildOptions {
  sweep: string;
  method: EnsembleMethod;
  topK: number;
  /** Candidates greedy selection draws from. */
  pool: number;
  /** Greedy selection rounds (members added, with replacement). */
  rounds: number;
  /** Result key members are ranked by; the sweep's metric by default. */
  metric?: string;
  name?: string;
}

export const BUILD_DEFAULTS = { method: 'vote' as EnsembleMethod, topK: 5, pool: 20, rounds: 25 };

export interface Accuracy {
  char_acc: number;
  seq_acc: number;
  by_position: number[];
}

export interface Scored {
  val: Accuracy;
  test: Accuracy | null;
}

export interface MemberScore extends Scored {
  trialId: string;
  index: number;
  rank: number;
  weight: number;
  metric: number | null;
  params: Record<string, unknown>;
}

/** Difference in sequence accuracy, ensemble minus best member, with a 95% paired interval. */
export interface Gain {
  char_acc: number;
  seq_acc: number;
  seq_lo: number;
  seq_hi: number;
}

export interface EnsembleSummary {
  id: string;
  name: string;
  sweep: { id: string; name: string };
  method: EnsembleMethod;
  metric: string;
  k: number;
  pool: number | null;
  /** Every candidate considered, best first; weight 0 = not chosen (greedy). */
  members: MemberScore[];
  ensemble: Scored;
  /** The best single member: the top-ranked trial. */
  best: string;
  gain: { val: Gain; test: Gain | null };
  /** True when there is no test set: validation numbers were selected on (greedy) or ranked on. */
  optimistic: boolean;
  datasets: { val: string; test: string | null };
  /** How the members' classes read; `case` absent: `lower`. */
  label: { length: number; classes: number; charset: string; case?: LabelCase };
}

/** The label spec the chosen trials were trained on (one for all: a reader has one alphabet). */
export function membersLabel(chosen: readonly Pick<Candidate, 'id' | 'params'>[]): LabelSpec {
  const shapes = chosen.map((c) => shapeFromParams(c.params));
  const differs = shapes.findIndex((s) => JSON.stringify(s) !== JSON.stringify(shapes[0]));
  if (differs > 0) {
    throw new UserError(
      `trials ${short(chosen[0].id)} and ${short(chosen[differs].id)} were trained on different data (${describeShape(shapes[0])}; ${describeShape(shapes[differs])}); ` +
        'an ensemble reads one kind of image: build it from trials of one shape',
    );
  }
  return shapes[0].label;
}

/** Class indices of every item's label, refusing a character outside the charset. */
export function labelClasses(set: PredictionSet, spec: LabelSpec): Int32Array {
  const out = new Int32Array(set.labels.length * set.length);
  set.labels.forEach((label, i) => {
    for (let p = 0; p < set.length; p++) {
      const c = spec.charset.indexOf(label[p] ?? '');
      if (c < 0) throw new UserError(`label '${label}' of ${set.files[i]} has a character outside the charset '${spec.charset}'`);
      out[i * set.length + p] = c;
    }
  });
  return out;
}

function toProbs(s: PredictionSet): Probs {
  return { n: s.labels.length, length: s.length, classes: s.classes, data: s.probs };
}

/** The combined prediction (class per character) of the members with the given weights. */
export function combine(method: EnsembleMethod, members: readonly Probs[], weights: readonly number[]): Int32Array {
  const used = members.filter((_, i) => weights[i] > 0);
  const w = weights.filter((x) => x > 0);
  return method === 'vote' ? vote(used, w) : argmax(soft(used, w));
}

function score(pred: Int32Array, labels: Int32Array, length: number): Accuracy {
  return accuracy(pred, labels, length);
}

function gain(ens: Int32Array, best: Int32Array, labels: Int32Array, length: number): Gain {
  const a = score(ens, labels, length);
  const b = score(best, labels, length);
  const d = pairedDifference(correctSequences(ens, labels, length), correctSequences(best, labels, length));
  return { char_acc: a.char_acc - b.char_acc, seq_acc: d.diff, seq_lo: d.lo, seq_hi: d.hi };
}

interface Split {
  probs: Probs[];
  labels: Int32Array;
  datasetId: string;
}

function split(sets: PredictionSet[] | null, spec: LabelSpec): Split | null {
  if (!sets) return null;
  return { probs: sets.map(toProbs), labels: labelClasses(sets[0], spec), datasetId: sets[0].datasetId };
}

/** Weights per candidate: the top k for vote and soft, greedy's selection counts otherwise. */
export function chooseWeights(method: EnsembleMethod, val: Split, k: number, rounds: number): number[] {
  if (method !== 'greedy') return val.probs.map((_, i) => (i < k ? 1 : 0));
  return greedySelect(val.probs, val.labels, { rounds }).weights;
}

/** Everything about an ensemble that the predictions decide: weights, scores, gains. Pure. */
export function evaluateEnsemble(method: EnsembleMethod, ranked: readonly Candidate[], val: Split, test: Split | null, k: number, rounds: number) {
  const weights = chooseWeights(method, val, k, rounds);
  const length = val.probs[0].length;
  const memberPreds = (s: Split) => s.probs.map((p) => argmax(p));
  const valPreds = memberPreds(val);
  const testPreds = test ? memberPreds(test) : null;
  const members: MemberScore[] = ranked.map((c, i) => ({
    trialId: c.id,
    index: c.index,
    rank: i + 1,
    weight: weights[i],
    metric: c.metric,
    params: c.params,
    val: score(valPreds[i], val.labels, length),
    test: test && testPreds ? score(testPreds[i], test.labels, length) : null,
  }));
  const ensVal = combine(method, val.probs, weights);
  const ensTest = test ? combine(method, test.probs, weights) : null;
  return {
    members,
    ensemble: { val: score(ensVal, val.labels, length), test: test && ensTest ? score(ensTest, test.labels, length) : null },
    gain: {
      val: gain(ensVal, valPreds[0], val.labels, length),
      test: test && ensTest && testPreds ? gain(ensTest, testPreds[0], test.labels, length) : null,
    },
  };
}

function checkOptions(o: BuildOptions): void {
  if (!METHODS.includes(o.method)) throw new UserError(`--method: expected one of ${METHODS.join(', ')}, got ${JSON.stringify(o.method)}`);
  for (const [flag, v] of [['--top-k', o.topK], ['--pool', o.pool], ['--rounds', o.rounds]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${flag}: expected an integer >= 1, got ${v}`);
  }
  if (o.metric !== undefined && !(RANKABLE_METRICS as readonly string[]).includes(o.metric)) {
    throw new UserError(`--metric: expected one of ${RANKABLE_METRICS.join(', ')}, got ${JSON.stringify(o.metric)}`);
  }
  if (o.name !== undefined && !/^[\w.-]{1,64}$/.test(o.name)) {
    throw new UserError(`--name: expected 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(o.name)}`);
  }
}

export function defaultName(o: Pick<BuildOptions, 'method' | 'topK' | 'pool'>): string {
  return o.method === 'greedy' ? `greedy-pool${o.pool}` : `${o.method}-top${o.topK}`;
}

/** Builds, stores (replacing one of the same name) and returns the ensemble. */
export async function buildEnsemble(prisma: PrismaClient, o: BuildOptions): Promise<EnsembleSummary> {
  checkOptions(o);
  const found = await findSweep(prisma, o.sweep);
  if (!found) throw new UserError(`no sweep named ${JSON.stringify(o.sweep)}; \`sweep status\` lists them`);
  const row = await prisma.sweep.findUniqueOrThrow({ where: { id: found.id }, select: { spec: true } });
  const sm = sweepMetric(row.spec as unknown as SweepSpec);
  const metric = o.metric ?? sm.name;
  const sweep = { id: found.id, name: found.name, metric: sm };
  const ranked = rankCandidates(await finishedTrials(prisma, sweep, metric), metricGoal(metric, sm));
  if (ranked.length === 0) throw new UserError(`sweep ${found.name} has no finished trial yet; \`sweep status ${found.name}\` shows where it stands`);
  const take = Math.min(ranked.length, o.method === 'greedy' ? o.pool : o.topK);
  const chosen = ranked.slice(0, take);
  const spec = membersLabel(chosen);
  const val = split(await memberPredictions(prisma, found.name, chosen, 'val', true), spec)!;
  const test = split(await memberPredictions(prisma, found.name, chosen, 'test', false), spec);
  const r = evaluateEnsemble(o.method, chosen, val, test, take, o.rounds);
  const name = o.name ?? defaultName(o);
  const members = r.members.filter((m) => m.weight > 0);
  const summaryBase = {
    name,
    sweep: { id: found.id, name: found.name },
    method: o.method,
    metric,
    k: members.length,
    pool: o.method === 'greedy' ? take : null,
    members: r.members,
    ensemble: r.ensemble,
    best: chosen[0].id,
    gain: r.gain,
    optimistic: test === null,
    datasets: { val: val.datasetId, test: test?.datasetId ?? null },
    label: { length: val.probs[0].length, classes: val.probs[0].classes, charset: spec.charset, ...(spec.case ? { case: spec.case } : {}) },
  };
  const id = await storeEnsemble(prisma, found.id, summaryBase, members);
  return { id, ...summaryBase };
}

async function storeEnsemble(prisma: PrismaClient, sweepId: string, s: Omit<EnsembleSummary, 'id'>, members: readonly MemberScore[]): Promise<string> {
  return prisma.$transaction(async (tx) => {
    await tx.ensemble.deleteMany({ where: { sweepId, name: s.name } });
    const e = await tx.ensemble.create({
      data: { sweepId, name: s.name, method: s.method, k: s.k, metric: s.metric, pool: s.pool, summary: JSON.parse(JSON.stringify(s)) },
    });
    await tx.ensembleMember.createMany({ data: members.map((m) => ({ ensembleId: e.id, trialId: m.trialId, rank: m.rank, weight: m.weight })) });
    return e.id;
  }, { timeout: 60_000, maxWait: 60_000 });
}

export { short };
