/**
 * Ensemble selection with replacement (Caruana et al. 2004, as auto-sklearn's
 * `ensemble_selection.py` `_fast`): start empty; each round add the pool member whose inclusion
 * makes the running average of probabilities best on validation data; a member may be added
 * again, so the result is an integer count per member, used as soft-average weights.
 *
 * Objective: whole-sequence accuracy (the number users quote); ties go to the lower mean
 * negative log-likelihood of the true characters, then to the lower member index (members come
 * ranked best first, so a tie keeps the better-ranked one).
 *
 * Speed: the running sum S of chosen members' probabilities is kept, so a candidate m is scored
 * on S + p_m without re-averaging (the division by k + 1 changes no argmax). Most characters are
 * settled without scanning their classes: with o = the largest S over the wrong classes and
 * q_m = the largest p_m over them, S[y] + p_m[y] > o + q_m guarantees the true class y wins.
 * Only the rest are scanned, and an item stops at its first wrong character.
 */
import { UserError } from '../util/errors.ts';
import { checkLabels, checkMembers, type Labels, type Probs } from './probs.ts';

export interface GreedyOptions {
  /** Members added, counting repeats; default 25. */
  rounds?: number;
  /** Only the first `pool` members (ranked best first) are candidates; default all. Larger than the list means all. */
  pool?: number;
}

export interface GreedyResult {
  /** How many times each member was added (0 outside the pool or never chosen); sums to `rounds`. */
  weights: number[];
  /**
   * Validation sequence accuracy of the ensemble after each round, from float64 sums. Scoring
   * `soft(members, weights)` (float32 averages) gives the same number except where two classes
   * of a character differ by less than float32 resolution.
   */
  trajectory: number[];
  /** The member added in each round. */
  picks: number[];
}

export const DEFAULT_ROUNDS = 25;

/** Keras' clip for log-likelihoods, so a zero probability costs much but not Infinity. */
const MIN_PROB = 1e-7;

export function greedySelect(members: readonly Probs[], labels: Labels, options: GreedyOptions = {}): GreedyResult {
  checkMembers(members);
  checkLabels(labels, members[0]);
  const rounds = options.rounds ?? DEFAULT_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1) throw new UserError(`greedy selection: rounds must be a positive integer, got ${rounds}`);
  const poolSize = options.pool ?? members.length;
  if (!Number.isInteger(poolSize) || poolSize < 1) throw new UserError(`greedy selection: pool must be a positive integer, got ${poolSize}`);
  const pool = members.slice(0, poolSize);

  const task = prepare(pool, labels);
  const weights = members.map(() => 0);
  const trajectory: number[] = [];
  const picks: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const { member, seqAcc } = bestCandidate(task, round);
    add(task.sum, pool[member].data);
    weights[member]++;
    trajectory.push(seqAcc);
    picks.push(member);
  }
  return { weights, trajectory, picks };
}

interface Task {
  pool: readonly Probs[];
  labels: Labels;
  n: number;
  length: number;
  classes: number;
  /** Running sum of the chosen members' probabilities. */
  sum: Float64Array;
  /** Per member and character: its largest probability over the wrong classes. */
  wrongMax: Float64Array[];
}

function prepare(pool: readonly Probs[], labels: Labels): Task {
  const { n, length, classes } = pool[0];
  const wrongMax = pool.map((m) => largestWrong(m.data, labels, classes));
  return { pool, labels, n, length, classes, sum: new Float64Array(n * length * classes), wrongMax };
}

/** The member whose addition scores best in this round (k members already chosen). */
function bestCandidate(task: Task, k: number): { member: number; seqAcc: number } {
  const otherCls = new Int32Array(task.labels.length);
  const other = largestWrong(task.sum, task.labels, task.classes, otherCls);
  const counts = task.pool.map((_, m) => correctItems(task, m, other, otherCls));
  const top = Math.max(...counts);
  let member = -1;
  let bestNll = Infinity;
  counts.forEach((c, m) => {
    if (c !== top) return;
    const nll = meanNll(task, m, k);
    // Strict: an equal likelihood keeps the earlier (better-ranked) member.
    if (member < 0 || nll < bestNll) {
      member = m;
      bestNll = nll;
    }
  });
  return { member, seqAcc: top / task.n };
}

/** For every character, the largest value over the classes other than the true one, and which (the lowest on ties). */
function largestWrong(values: ArrayLike<number>, labels: Labels, classes: number, which?: Int32Array): Float64Array {
  const out = new Float64Array(labels.length);
  for (let r = 0; r < labels.length; r++) {
    const base = r * classes;
    const y = labels[r];
    let best = -Infinity;
    let bestC = -1;
    for (let c = 0; c < classes; c++) {
      if (c !== y && values[base + c] > best) {
        best = values[base + c];
        bestC = c;
      }
    }
    out[r] = best;
    if (which) which[r] = bestC;
  }
  return out;
}

/** Items whose every character is right when member m joins the running sum. */
function correctItems(task: Task, m: number, other: Float64Array, otherCls: Int32Array): number {
  const { n, length, classes, labels, sum } = task;
  const p = task.pool[m].data;
  const q = task.wrongMax[m];
  let count = 0;
  for (let i = 0; i < n; i++) {
    let ok = true;
    for (let j = 0; j < length && ok; j++) {
      const r = i * length + j;
      const base = r * classes;
      const y = labels[r];
      const vy = sum[base + y] + p[base + y];
      // Exact despite rounding: S[c] <= other and p[c] <= q for every wrong c, and rounding is
      // monotone, so the computed S[c] + p[c] never exceeds the computed other + q.
      if (vy > other[r] + q[r]) continue;
      const c = otherCls[r];
      const vc = sum[base + c] + p[base + c];
      if (vc > vy || (vc === vy && c < y)) ok = false; // the sum's strongest rival already wins
      else ok = trueClassWins(sum, p, base, y, classes, vy);
    }
    if (ok) count++;
  }
  return count;
}

/** Whether argmax of sum + p over this row is y, with ties going to the lower class as argmax() does. */
function trueClassWins(sum: Float64Array, p: Float32Array, base: number, y: number, classes: number, vy: number): boolean {
  // Written as !(v < vy) so a NaN anywhere counts as a loss, never as a win.
  for (let c = 0; c < y; c++) if (!(sum[base + c] + p[base + c] < vy)) return false;
  for (let c = y + 1; c < classes; c++) if (!(sum[base + c] + p[base + c] <= vy)) return false;
  return true;
}

/** Mean negative log-likelihood of the true characters under the average of the sum and member m. */
function meanNll(task: Task, m: number, k: number): number {
  const { labels, classes, sum } = task;
  const p = task.pool[m].data;
  let total = 0;
  for (let r = 0; r < labels.length; r++) {
    const at = r * classes + labels[r];
    total -= Math.log(Math.max(MIN_PROB, (sum[at] + p[at]) / (k + 1)));
  }
  return total / labels.length;
}

function add(sum: Float64Array, p: Float32Array): void {
  for (let k = 0; k < sum.length; k++) sum[k] += p[k];
}
