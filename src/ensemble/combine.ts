/**
 * Rules that combine several models' probabilities over the same examples into one answer:
 * the report's majority vote, a (weighted) soft average, and greedy ensemble selection.
 * Pure functions over Probs; which trials are members, and where their numbers live, is
 * decided elsewhere.
 */
import { UserError } from '../util/errors.ts';
import { checkMembers, makeProbs, type Labels, type Probs } from './probs.ts';

/** Weights checked against the members: one per member, finite, >= 0, not all 0 (and integers if asked). */
function checkWeights(members: readonly Probs[], weights: readonly number[] | undefined, integers: boolean): readonly number[] {
  if (weights === undefined) return members.map(() => 1);
  if (weights.length !== members.length) throw new UserError(`${weights.length} weights for ${members.length} members; give one per member`);
  weights.forEach((w, i) => {
    if (!Number.isFinite(w) || w < 0 || (integers && !Number.isInteger(w))) {
      throw new UserError(`member ${i}: weight must be a non-negative ${integers ? 'integer' : 'number'}, got ${w}`);
    }
  });
  if (!weights.some((w) => w > 0)) throw new UserError('every weight is 0: at least one member must count');
  return weights;
}

/**
 * The report's majority vote: at every (item, position) each member votes for its most probable
 * class, `weights[m]` times (integer multiplicities, as greedy selection gives; default 1).
 * A tie in votes goes to the tied class with the larger probability summed over the members
 * (counted with the same multiplicities), and a tie in that to the lower class index, so the
 * answer never depends on the order of anything but the classes.
 */
export function vote(members: readonly Probs[], weights?: readonly number[]): Int32Array {
  checkMembers(members);
  const w = checkWeights(members, weights, true);
  const { n, length, classes } = members[0];
  const rows = n * length;
  const out = new Int32Array(rows);
  const votes = new Float64Array(classes);
  const sums = new Float64Array(classes);
  for (let r = 0; r < rows; r++) {
    votes.fill(0);
    sums.fill(0);
    const base = r * classes;
    for (let m = 0; m < members.length; m++) {
      if (w[m] === 0) continue;
      const d = members[m].data;
      let best = 0;
      for (let c = 1; c < classes; c++) if (d[base + c] > d[base + best]) best = c;
      votes[best] += w[m];
      for (let c = 0; c < classes; c++) sums[c] += w[m] * d[base + c];
    }
    out[r] = winner(votes, sums);
  }
  return out;
}

/** The class with the most votes, then the largest summed probability, then the lowest index. */
function winner(votes: Float64Array, sums: Float64Array): number {
  let best = 0;
  for (let c = 1; c < votes.length; c++) {
    if (votes[c] > votes[best] || (votes[c] === votes[best] && sums[c] > sums[best])) best = c;
  }
  return best;
}

/** The (weighted) average of the members' probabilities; summed in float64, stored as float32. */
export function soft(members: readonly Probs[], weights?: readonly number[]): Probs {
  checkMembers(members);
  const w = checkWeights(members, weights, false);
  const total = w.reduce((a, b) => a + b, 0);
  const { n, length, classes } = members[0];
  const acc = new Float64Array(n * length * classes);
  members.forEach((m, i) => {
    if (w[i] === 0) return;
    for (let k = 0; k < acc.length; k++) acc[k] += w[i] * m.data[k];
  });
  const out = new Float32Array(acc.length);
  for (let k = 0; k < acc.length; k++) out[k] = acc[k] / total;
  return makeProbs(n, length, classes, out);
}

export interface PairedDifference {
  /** Accuracy of A minus accuracy of B, over the same items. */
  diff: number;
  /** 95% interval for diff. */
  lo: number;
  hi: number;
}

/**
 * How much more often A is right than B on the same items, with a 95% interval that uses the
 * pairing: the per-item differences d_i = a_i - b_i (each -1, 0 or 1) have mean `diff`, and the
 * interval is diff +- 1.96 * sd(d) / sqrt(n) — a normal approximation on the differences
 * (sample sd, n - 1). Pairing matters: two models that err on the same hard images differ far
 * less than two independent samples would. The approximation is poor when only a handful of
 * items differ between A and B (then the interval is too narrow, and 0 when none differ);
 * with a thousand or more test images and tens of discordant items it is adequate.
 */
export function pairedDifference(correctA: Uint8Array, correctB: Uint8Array): PairedDifference {
  const n = correctA.length;
  if (correctB.length !== n) throw new UserError(`pairedDifference: A has ${n} items, B has ${correctB.length}; they must be the same items`);
  if (n < 2) throw new UserError(`pairedDifference: needs at least 2 items, got ${n}`);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const d = (correctA[i] ? 1 : 0) - (correctB[i] ? 1 : 0);
    sum += d;
    sumSq += d * d;
  }
  const diff = sum / n;
  const variance = Math.max(0, (sumSq - n * diff * diff) / (n - 1));
  const half = Z95 * Math.sqrt(variance / n);
  return { diff, lo: diff - half, hi: diff + half };
}

/** The two-sided 95% quantile of the standard normal. */
const Z95 = 1.959963984540054;

export { greedySelect, type GreedyOptions, type GreedyResult } from './greedy.ts';
export type { Labels };
