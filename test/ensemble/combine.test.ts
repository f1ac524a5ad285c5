import { describe, expect, it } from 'vitest';
import { greedySelect, pairedDifference, soft, vote } from '../../src/ensemble/combine.ts';
import { accuracy, argmax, makeProbs, MemberError, type Probs } from '../../src/ensemble/probs.ts';
import { UserError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { chars, labelsOf, table } from './tables.ts';

describe('vote', () => {
  it('takes the majority of the members\' argmaxes at every position', () => {
    const a = table([[[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]]);
    const b = table([[[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]]]);
    const c = table([[[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]]]);
    expect(Array.from(vote([a, b, c]))).toEqual([1, 2]);
  });

  it('breaks a tie in votes by the summed probability of the tied classes', () => {
    // One vote each for 0 and 1; class 1 has 0.3 + 0.7 = 1.0 against 0.6 + 0.2 = 0.8.
    const a = chars([[0.6, 0.3, 0.1]]);
    const b = chars([[0.2, 0.7, 0.1]]);
    expect(Array.from(vote([a, b]))).toEqual([1]);
    // The same tie the other way: 0.9 + 0.45 against 0.1 + 0.55.
    expect(Array.from(vote([chars([[0.9, 0.1, 0]]), chars([[0.45, 0.55, 0]])]))).toEqual([0]);
  });

  it('ignores the summed probability of a class without the most votes, and gives a full tie to the lower class', () => {
    // Votes: class 0 once, class 1 once, class 2 never, though class 2 sums to 0.70 against 0.65 and 0.65.
    const a = chars([[0.4, 0.25, 0.35]]);
    const b = chars([[0.25, 0.4, 0.35]]);
    expect(Array.from(vote([a, b]))).toEqual([0]);
    expect(Array.from(vote([b, a]))).toEqual([0]);
  });

  it('counts each member\'s vote as often as its integer weight, and a weight of 0 not at all', () => {
    const a = chars([[0.8, 0.2]]);
    const b = chars([[0.3, 0.7]]);
    const c = chars([[0.4, 0.6]]);
    expect(Array.from(vote([a, b, c]))).toEqual([1]);
    expect(Array.from(vote([a, b, c], [3, 1, 1]))).toEqual([0]);
    // 2 votes each; summed with the weights, class 0 has 2*0.8 + 0.3 + 0.4 = 2.3 against 0.4 + 0.7 + 0.6 = 1.7.
    expect(Array.from(vote([a, b, c], [2, 1, 1]))).toEqual([0]);
    expect(Array.from(vote([a, b, c], [0, 1, 1]))).toEqual([1]);
    expect(Array.from(vote([a, b, c], [1, 0, 0]))).toEqual([0]);
  });

  it('refuses weights that are not one non-negative integer per member, or all zero', () => {
    const a = chars([[0.8, 0.2]]);
    expect(() => vote([a, a], [1])).toThrow(/1 weights for 2 members/);
    expect(() => vote([a, a], [1, 0.5])).toThrow(/member 1: weight must be a non-negative integer, got 0.5/);
    expect(() => vote([a, a], [1, -1])).toThrow(/member 1/);
    expect(() => vote([a, a], [0, 0])).toThrow(/every weight is 0/);
  });
});

describe('soft', () => {
  const a = table([[[0.2, 0.8], [1, 0]]]);
  const b = table([[[0.6, 0.4], [0.5, 0.5]]]);

  it('averages the members\' probabilities', () => {
    const s = soft([a, b]);
    expect([s.n, s.length, s.classes]).toEqual([1, 2, 2]);
    expectClose(s.data, [0.4, 0.6, 0.75, 0.25]);
  });

  it('weights them: (1 x a + 3 x b) / 4', () => {
    expectClose(soft([a, b], [1, 3]).data, [0.5, 0.5, 0.625, 0.375]);
    expectClose(soft([a, b], [0.5, 0]).data, [0.2, 0.8, 1, 0]);
  });
});

function expectClose(got: Float32Array, want: number[]): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 6));
}

describe('mismatched members', () => {
  const good = table([[[0.5, 0.5]], [[0.5, 0.5]]]);
  const fewer = table([[[0.5, 0.5]]]);
  const wider = table([[[0.2, 0.3, 0.5]], [[0.2, 0.3, 0.5]]]);

  it.each([
    ['vote', (ms: Probs[]) => vote(ms)],
    ['soft', (ms: Probs[]) => soft(ms)],
    ['greedy', (ms: Probs[]) => greedySelect(ms, labelsOf([0, 0]))],
  ])('%s refuses members of another shape, naming the member', (_name, combine) => {
    expect(() => combine([good, good, fewer])).toThrow(/member 2 has predictions of shape 1 x 1 x 2 .*member 0 has 2 x 1 x 2/);
    expect(() => combine([good, wider])).toThrow(/member 1 has predictions of shape 2 x 1 x 3/);
    try {
      combine([good, fewer]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(MemberError);
      expect(e).toBeInstanceOf(UserError);
      expect((e as MemberError).member).toBe(1);
    }
  });

  it('refuses a member whose data does not fit its own shape, an empty list, and non-finite numbers', () => {
    const lying: Probs = { n: 2, length: 1, classes: 2, data: new Float32Array(3) };
    expect(() => vote([good, lying])).toThrow(/member 1: 2 x 1 x 2 needs 4 values, it has 3/);
    expect(() => soft([])).toThrow(/at least one member/);
    const nan = makeProbs(2, 1, 2, Float32Array.from([0.5, 0.5, NaN, 0.5]));
    expect(() => vote([good, nan])).toThrow(/member 1 has a non-finite probability \(NaN\) at item 1, position 0/);
  });
});

describe('greedySelect', () => {
  // Four items of one character, each labelled 0.
  const labels = labelsOf([0, 0, 0, 0]);
  const best = chars([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.45, 0.55]]); // 3 of 4
  const complement = chars([[0.4, 0.6], [0.4, 0.6], [0.9, 0.1], [0.9, 0.1]]); // 2 of 4, but right where `best` is wrong

  it('prefers a complementary member to a duplicate of the best', () => {
    const r = greedySelect([best, best, complement], labels, { rounds: 2 });
    // Round 1: both copies of `best` score 3/4 with equal likelihood: the first (better ranked) wins.
    // Round 2: the duplicate changes nothing; the complement makes every item right.
    expect(r.picks).toEqual([0, 2]);
    expect(r.weights).toEqual([1, 0, 1]);
    expect(r.trajectory).toEqual([0.75, 1]);
  });

  it('adds a member again when that helps, giving an integer weight above 1', () => {
    const a = chars([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]]);
    const b = chars([[0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]);
    const l = labelsOf([0, 0, 0]);
    // Round 1: both 2/3; a's log-likelihood is better. Round 2: a + b gets all 3.
    // Round 3: a + b + a keeps all 3 (item 0: 2.0 / 3 on the label), a + b + b loses item 0 (1.3 / 3).
    const r = greedySelect([a, b], l, { rounds: 3 });
    expect(r.picks).toEqual([0, 1, 0]);
    expect(r.weights).toEqual([2, 1]);
    expect(r.trajectory.map((x) => +x.toFixed(6))).toEqual([0.666667, 1, 1]);
    expect(accuracy(argmax(soft([a, b], r.weights)), l, 1).seq_acc).toBe(1);
  });

  it('breaks a tie in accuracy by the likelihood of the true characters', () => {
    // Same accuracy (1 of 2); the second member is more confident on the item both get right.
    const l = labelsOf([0, 0]);
    const timid = chars([[0.6, 0.4], [0.3, 0.7]]);
    const sure = chars([[0.95, 0.05], [0.3, 0.7]]);
    expect(greedySelect([timid, sure], l, { rounds: 1 }).picks).toEqual([1]);
  });

  it('draws only from the first `pool` members, and defaults to 25 rounds', () => {
    const r = greedySelect([best, best, complement], labels, { rounds: 4, pool: 2 });
    expect(r.weights[2]).toBe(0);
    expect(r.weights.reduce((x, y) => x + y)).toBe(4);
    const d = greedySelect([best, complement], labels);
    expect(d.trajectory).toHaveLength(25);
    expect(d.weights.reduce((x, y) => x + y)).toBe(25);
  });

  it('refuses bad options and labels', () => {
    expect(() => greedySelect([best], labels, { rounds: 0 })).toThrow(/rounds must be a positive integer/);
    expect(() => greedySelect([best], labels, { pool: 1.5 })).toThrow(/pool must be a positive integer/);
    expect(() => greedySelect([best], labelsOf([0, 0, 0]))).toThrow(/3 labels for 4 items/);
  });

  it('chooses exactly what a plain re-averaging of every candidate chooses, ties included', () => {
    for (const [seed, quantized] of [['greedy-a', false], ['greedy-b', true], ['greedy-c', true]] as const) {
      const rng = new Rng(seed);
      const { members, labels: l } = randomMembers(rng, { members: 8, n: 60, length: 3, classes: 5, quantized });
      const fast = greedySelect(members, l, { rounds: 12, pool: 7 });
      const plain = plainGreedy(members.slice(0, 7), l, 12);
      expect(fast.picks).toEqual(plain.picks);
      expect(fast.trajectory).toEqual(plain.trajectory);
    }
  });
});

/** Random members near a hidden truth; quantized to eighths, many rows tie. */
function randomMembers(rng: Rng, o: { members: number; n: number; length: number; classes: number; quantized: boolean }) {
  const rows = o.n * o.length;
  const labels = Int32Array.from({ length: rows }, () => rng.int(0, o.classes - 1));
  const members = Array.from({ length: o.members }, () => {
    const data = new Float32Array(rows * o.classes);
    for (let r = 0; r < rows; r++) {
      const row = Array.from({ length: o.classes }, (_, c) => rng.next() + (c === labels[r] ? rng.uniform(0, 1.2) : 0));
      const total = row.reduce((x, y) => x + y);
      row.forEach((v, c) => (data[r * o.classes + c] = o.quantized ? Math.round((v / total) * 8) / 8 : v / total));
    }
    return makeProbs(o.n, o.length, o.classes, data);
  });
  return { members, labels };
}

/** The definition, without shortcuts: average every candidate in, take argmax, score it. */
function plainGreedy(members: Probs[], labels: Int32Array, rounds: number) {
  const { n, length, classes } = members[0];
  const sum = new Float64Array(n * length * classes);
  const picks: number[] = [];
  const trajectory: number[] = [];
  for (let k = 0; k < rounds; k++) {
    let best = { m: -1, acc: -1, nll: Infinity };
    members.forEach((p, m) => {
      const t = sum.map((s, i) => s + p.data[i]);
      let seqs = 0;
      let nll = 0;
      for (let i = 0; i < n; i++) {
        let all = true;
        for (let j = 0; j < length; j++) {
          const r = i * length + j;
          let arg = 0;
          for (let c = 1; c < classes; c++) if (t[r * classes + c] > t[r * classes + arg]) arg = c;
          if (arg !== labels[r]) all = false;
          nll -= Math.log(Math.max(1e-7, t[r * classes + labels[r]] / (k + 1)));
        }
        if (all) seqs++;
      }
      nll /= n * length;
      if (seqs > best.acc || (seqs === best.acc && nll < best.nll)) best = { m, acc: seqs, nll };
    });
    members[best.m].data.forEach((v, i) => (sum[i] += v));
    picks.push(best.m);
    trajectory.push(best.acc / n);
  }
  return { picks, trajectory };
}

describe('pairedDifference', () => {
  it('gives the mean per-item difference and a normal 95% interval on it (hand-computed)', () => {
    // d = [0, 1, 0, 0, 1, 0, 0, 0, -1, 1]: mean 0.2; sample variance (4 - 10 x 0.04) / 9 = 0.4;
    // standard error sqrt(0.4 / 10) = 0.2; half-width 1.959964 x 0.2 = 0.3919928.
    const a = Uint8Array.from([1, 1, 1, 0, 1, 0, 1, 1, 0, 1]);
    const b = Uint8Array.from([1, 0, 1, 0, 0, 0, 1, 1, 1, 0]);
    const r = pairedDifference(a, b);
    expect(r.diff).toBeCloseTo(0.2, 12);
    expect(r.lo).toBeCloseTo(-0.1919928, 6);
    expect(r.hi).toBeCloseTo(0.5919928, 6);
    const back = pairedDifference(b, a);
    expect(back.diff).toBeCloseTo(-0.2, 12);
    expect(back.lo).toBeCloseTo(-0.5919928, 6);
  });

  it('is exactly 0 for identical answers, whatever the accuracy', () => {
    const a = Uint8Array.from([1, 0, 1, 1]);
    expect(pairedDifference(a, a)).toEqual({ diff: 0, lo: 0, hi: 0 });
  });

  it('refuses different item counts and fewer than two items', () => {
    expect(() => pairedDifference(new Uint8Array(3), new Uint8Array(4))).toThrow(/A has 3 items, B has 4/);
    expect(() => pairedDifference(new Uint8Array(1), new Uint8Array(1))).toThrow(/at least 2 items/);
  });
});
