import { describe, expect, it } from 'vitest';
import { expandSweep, type PlannedTrial } from '../../src/scheduler/expand.ts';
import { expandGrid } from '../../src/scheduler/grid.ts';
import { gridSize } from '../../src/sweep/space.ts';
import { sampleRandom, sampleTrial } from '../../src/scheduler/random.ts';
import { canonicalJson, trialId } from '../../src/scheduler/trial-id.ts';
import { quantize } from '../../src/sweep/distributions.ts';
import { loadSweepFile, parseSweep, type SweepSpec } from '../../src/sweep/index.ts';

const sweep = (...ls: string[]): SweepSpec => parseSweep(ls.join('\n') + '\n', 'sweeps/t.yaml');
const ids = (ts: PlannedTrial[]) => ts.map((t) => t.id);

describe('grid', () => {
  it('is the full product, parameters in sorted key order, the last varying fastest', () => {
    const spec = sweep('method: grid', 'parameters:', '  lr: {values: [0.1, 0.01]}', '  kernel_size: {values: [3, 4]}', '  dropout: {values: [0.1, 0.2, 0.3]}');
    const grid = expandGrid(spec);
    expect(grid).toHaveLength(12);
    expect(grid.map((p) => [p.dropout, p.kernel_size, p.lr])).toEqual([
      [0.1, 3, 0.1],
      [0.1, 3, 0.01],
      [0.1, 4, 0.1],
      [0.1, 4, 0.01],
      [0.2, 3, 0.1],
      [0.2, 3, 0.01],
      [0.2, 4, 0.1],
      [0.2, 4, 0.01],
      [0.3, 3, 0.1],
      [0.3, 3, 0.01],
      [0.3, 4, 0.1],
      [0.3, 4, 0.01],
    ]);
  });

  it('order does not depend on the order of keys in the file', () => {
    const a = sweep('method: grid', 'parameters:', '  a: {values: [1, 2]}', '  b: {values: [x, y]}');
    const b = sweep('method: grid', 'parameters:', '  b: {values: [x, y]}', '  a: {values: [1, 2]}');
    expect(ids(expandSweep({ ...b, name: a.name }))).toEqual(ids(expandSweep(a)));
  });

  it.each([
    ['{values: [1, 2, 3]}', [1, 2, 3]],
    ['{value: 7}', [7]],
    ['{values: [1, 2, 1, 2, 3]}', [1, 2, 3]], // repeats are walked once, as in W&B
    ['{min: 1, max: 4}', [1, 2, 3, 4]], // int_uniform: both ends
    ['{distribution: int_uniform, min: -1, max: 1}', [-1, 0, 1]],
    ['{distribution: q_uniform, min: 0, max: 1, q: 0.25}', [0, 0.25, 0.5, 0.75]], // numpy.arange: max excluded
    ['{distribution: q_uniform, min: 0, max: 0.3, q: 0.1}', [0, 0.1, 0.2]],
    ['{distribution: q_uniform, min: 16, max: 64, q: 16}', [16, 32, 48]],
    ['{values: [{a: 1}, [1, 2], null, "s"]}', [{ a: 1 }, [1, 2], null, 's']],
  ])('walks %s as %j', (param, expected) => {
    const spec = sweep('method: grid', 'parameters:', `  x: ${param}`);
    expect(expandGrid(spec).map((p) => p.x)).toEqual(expected);
    expect(gridSize(spec.parameters)).toBe(expected.length);
  });

  it('nests grouped parameters in the trial params and sweeps them too', () => {
    const spec = sweep(
      'method: grid',
      'parameters:',
      '  opt:',
      '    parameters:',
      '      name: {values: [adam, sgd]}',
      '      beta: {value: 0.9}',
      '  kernel_size: {values: [3, 4]}',
    );
    const trials = expandSweep(spec);
    expect(trials.map((t) => [t.params.kernel_size, t.params.opt])).toEqual([
      [3, { beta: 0.9, name: 'adam' }],
      [3, { beta: 0.9, name: 'sgd' }],
      [4, { beta: 0.9, name: 'adam' }],
      [4, { beta: 0.9, name: 'sgd' }],
    ]);
  });

  it('run_cap takes the first N in order', () => {
    const full = sweep('method: grid', 'parameters:', '  a: {values: [1, 2, 3]}', '  b: {min: 1, max: 100}');
    const capped = sweep('method: grid', 'run_cap: 7', 'parameters:', '  a: {values: [1, 2, 3]}', '  b: {min: 1, max: 100}');
    expect(expandSweep(full)).toHaveLength(300);
    expect(expandSweep(capped)).toEqual(expandSweep(full).slice(0, 7));
  });

  it('a huge grid with run_cap expands lazily; without run_cap it is refused', () => {
    const big = ['method: grid', 'parameters:', '  a: {min: 1, max: 100000}', '  b: {min: 1, max: 100000}'];
    expect(expandSweep(sweep(...big, 'run_cap: 3')).map((t) => [t.params.a, t.params.b])).toEqual([
      [1, 1],
      [1, 2],
      [1, 3],
    ]);
    expect(() => sweep(...big)).toThrow('the grid has 10,000,000,000 trials');
  });

  it('adding a value keeps the ids of the trials that already existed', () => {
    const before = expandSweep(sweep('method: grid', 'parameters:', '  kernel_size: {values: [3, 4]}', '  dropout: {values: [0.1, 0.2]}'));
    const after = expandSweep(sweep('method: grid', 'parameters:', '  kernel_size: {values: [2, 3, 4]}', '  dropout: {values: [0.1, 0.2]}'));
    expect(after).toHaveLength(6);
    expect(ids(after)).toEqual(expect.arrayContaining(ids(before)));
    for (const t of before) expect(after.find((a) => a.id === t.id)?.params).toEqual(t.params);
  });

  it('is deterministic', () => {
    const text = ['method: grid', 'parameters:', '  a: {values: [1, 2]}', '  b: {distribution: q_uniform, min: 0, max: 1, q: 0.1}'];
    expect(expandSweep(sweep(...text))).toEqual(expandSweep(sweep(...text)));
  });
});

describe('random', () => {
  const text = [
    'method: random',
    'run_cap: 20',
    'seed: 7',
    'parameters:',
    '  lr: {distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}',
    '  dropout: {distribution: uniform, min: 0.0, max: 0.5}',
    '  kernel_size: {values: [2, 3, 4]}',
  ];

  it('same seed, same trials; another seed, other trials', () => {
    const a = expandSweep(sweep(...text));
    expect(a).toHaveLength(20);
    expect(expandSweep(sweep(...text))).toEqual(a);
    const other = expandSweep(sweep(...text.map((l) => (l === 'seed: 7' ? 'seed: 8' : l))));
    expect(ids(other).filter((id) => ids(a).includes(id))).toEqual([]);
  });

  it('raising run_cap keeps the earlier trials and appends new ones', () => {
    const small = expandSweep(sweep(...text));
    const large = expandSweep(sweep(...text.map((l) => (l === 'run_cap: 20' ? 'run_cap: 50' : l))));
    expect(large).toHaveLength(50);
    expect(large.slice(0, 20)).toEqual(small);
  });

  it('count is capped by run_cap; sampleRandom(spec, n) is a prefix', () => {
    const spec = sweep(...text);
    expect(sampleRandom(spec, 5)).toEqual(sampleRandom(spec).slice(0, 5));
    expect(sampleRandom(spec, 500)).toHaveLength(20);
  });

  it('draw k depends only on (seed, k), and adding a parameter keeps the others', () => {
    const spec = sweep(...text);
    expect(sampleTrial(spec.parameters, 7, 3)).toEqual(sampleRandom(spec)[3]);
    const more = sweep(...text, '  alpha: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}');
    const withAlpha = sampleRandom(more).map(({ alpha: _, ...rest }) => rest);
    expect(withAlpha).toEqual(sampleRandom(spec));
  });

  it('a small discrete space yields each distinct trial once', () => {
    const trials = expandSweep(sweep('method: random', 'run_cap: 20', 'parameters:', '  kernel_size: {values: [2, 3, 4]}'));
    expect(trials.map((t) => t.params.kernel_size).sort()).toEqual([2, 3, 4]);
    expect(new Set(ids(trials)).size).toBe(3);
  });

  it('the W&B example expands to run_cap trials with its values', async () => {
    const trials = expandSweep(await loadSweepFile('test/sweep/fixtures/wandb-example.yaml'));
    expect(trials).toHaveLength(10);
    for (const t of trials) {
      expect([16, 32, 64]).toContain(t.params.batch_size);
      expect(['adam', 'sgd']).toContain(t.params.optimizer);
      expect(t.params.epochs).toBe(5);
      expect(t.params.learning_rate).toBeGreaterThanOrEqual(0.0001);
      expect(t.params.learning_rate).toBeLessThanOrEqual(0.1);
    }
  });
});

describe('distributions stay within their bounds', () => {
  const N = 2000;
  const draws = (param: string, n = N): unknown[] =>
    sampleRandom(sweep('method: random', `run_cap: ${n}`, 'parameters:', `  x: ${param}`, '  i: {min: 0, max: 1000000}')).map((p) => p.x);
  const nums = (param: string, n = N) => draws(param, n) as number[];
  const isMultiple = (x: number, q: number) => Math.abs(quantize(x, q) - x) < 1e-12;

  it('uniform', () => {
    const xs = nums('{distribution: uniform, min: -2, max: 3}');
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...xs)).toBeLessThanOrEqual(3);
    expect(Math.min(...xs)).toBeLessThan(-1.9);
    expect(Math.max(...xs)).toBeGreaterThan(2.9);
  });

  it('int_uniform includes both ends', () => {
    const xs = nums('{min: 1, max: 4}');
    expect(new Set(xs)).toEqual(new Set([1, 2, 3, 4]));
    expect(xs.every(Number.isInteger)).toBe(true);
  });

  it('q_uniform: multiples of q, rounded to the nearest', () => {
    const xs = nums('{distribution: q_uniform, min: 0, max: 1, q: 0.1}');
    expect(xs.every((x) => isMultiple(x, 0.1) && x >= 0 && x <= 1)).toBe(true);
    expect(new Set(xs)).toEqual(new Set([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]));
    const ints = nums('{distribution: q_uniform, min: 10, max: 100, q: 10}');
    expect(ints.every((x) => Number.isInteger(x) && x % 10 === 0 && x >= 10 && x <= 100)).toBe(true);
  });

  it('log_uniform_values and log_uniform (exponents)', () => {
    const xs = nums('{distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}');
    expect(xs.every((x) => x >= 1e-4 && x <= 1e-2)).toBe(true);
    // log-uniform: about half the draws below the geometric mean 1e-3
    const below = xs.filter((x) => x < 1e-3).length / xs.length;
    expect(below).toBeGreaterThan(0.45);
    expect(below).toBeLessThan(0.55);
    const ys = nums('{distribution: log_uniform, min: -9.21, max: -2.3}');
    expect(ys.every((y) => y >= Math.exp(-9.21) && y <= Math.exp(-2.3))).toBe(true);
  });

  it('inv_log_uniform_values', () => {
    const xs = nums('{distribution: inv_log_uniform_values, min: 0.01, max: 1}');
    expect(xs.every((x) => x >= 0.01 && x <= 1)).toBe(true);
  });

  it('q_log_uniform_values: multiples of q within the rounded bounds', () => {
    const xs = nums('{distribution: q_log_uniform_values, min: 16, max: 256, q: 8}');
    expect(xs.every((x) => Number.isInteger(x) && x % 8 === 0 && x >= 16 && x <= 256)).toBe(true);
  });

  it('normal, q_normal, log_normal', () => {
    const xs = nums('{distribution: normal, mu: 5, sigma: 2}');
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(mean - 5)).toBeLessThan(0.2);
    expect(nums('{distribution: q_normal, mu: 0, sigma: 4, q: 2}').every((x) => Number.isInteger(x) && x % 2 === 0)).toBe(true);
    expect(nums('{distribution: log_normal, mu: 0, sigma: 1}').every((x) => x > 0)).toBe(true);
  });

  it('beta in (0, 1) with mean a / (a + b)', () => {
    const xs = nums('{distribution: beta, a: 2, b: 6}');
    expect(xs.every((x) => x > 0 && x < 1)).toBe(true);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(mean - 0.25)).toBeLessThan(0.02);
  });

  it('categorical with probabilities follows them; zero never drawn', () => {
    const xs = draws('{values: [a, b, c], probabilities: [0.8, 0.2, 0]}');
    const share = xs.filter((x) => x === 'a').length / xs.length;
    expect(share).toBeGreaterThan(0.75);
    expect(share).toBeLessThan(0.85);
    expect(xs).not.toContain('c');
  });

  it('constant', () => {
    expect(new Set(draws('{value: {k: [1, 2]}}', 10).map((x) => JSON.stringify(x)))).toEqual(new Set(['{"k":[1,2]}']));
  });
});

describe('trials', () => {
  it('carry the train-block defaults, overridden by swept values', () => {
    const [t] = expandSweep(
      sweep('method: grid', 'seed: 3', 'train:', '  width: 0.125', '  dropout: 0.3', 'parameters:', '  dropout: {values: [0.1]}', '  extra: {value: x}'),
    );
    expect(t).toEqual({
      id: t.id,
      index: 0,
      seed: 3,
      params: {
        kernel_size: 3,
        alpha: 1e-4,
        dropout: 0.1,
        lr: 1e-3,
        batch_size: 32,
        pretrain_epochs: 10,
        gru_epochs: 10,
        patience: 3,
        width: 0.125,
        freeze_epochs: 0,
        val_fraction: 0.1,
        extra: 'x',
      },
    });
    expect(t.id).toBe(trialId('t', t.params, 3));
  });

  it('leave a parameter added later out of params and id at its default, and carry it when set', () => {
    const [plain] = expandSweep(sweep('method: grid', 'parameters:', '  dropout: {values: [0.1]}'));
    for (const [name, atDefault, set] of [['lr_decay', 1, 0.9], ['lr_cosine', 0, 1], ['precise_bn', 0, 2000]] as const) {
      expect(plain.params).not.toHaveProperty(name);
      const [same] = expandSweep(sweep('method: grid', 'train:', `  ${name}: ${atDefault}`, 'parameters:', '  dropout: {values: [0.1]}'));
      expect(same.id).toBe(plain.id);
      const [changed] = expandSweep(sweep('method: grid', 'train:', `  ${name}: ${set}`, 'parameters:', '  dropout: {values: [0.1]}'));
      expect(changed.params[name]).toBe(set);
      expect(changed.id).not.toBe(plain.id);
    }
    expect(plain.params).not.toHaveProperty('kernel_width');
    const [square] = expandSweep(sweep('method: grid', 'train:', '  kernel_width: 0', 'parameters:', '  dropout: {values: [0.1]}'));
    expect(square.id).toBe(plain.id);
    const wide = expandSweep(sweep('method: grid', 'parameters:', '  dropout: {values: [0.1]}', '  kernel_width: {values: [0, 7]}'));
    expect(wide.map((t) => t.params.kernel_width)).toEqual([0, 7]);
    expect(new Set([plain.id, ...wide.map((t) => t.id)]).size).toBe(3);
  });

  it('carry swept bookkeeping (x_) values, which give each value its own id', () => {
    const trials = expandSweep(
      parseSweep(['method: grid', 'parameters:', '  dropout: {values: [0.1]}', '  x_repeat: {values: [1, 2]}', ''].join('\n'), 'sweeps/t.yaml', { trainer: true }),
    );
    expect(trials.map((t) => [t.params.dropout, t.params.x_repeat])).toEqual([
      [0.1, 1],
      [0.1, 2],
    ]);
    expect(new Set(ids(trials)).size).toBe(2);
  });

  it('take their seed from a swept `seed` parameter', () => {
    const trials = expandSweep(sweep('method: grid', 'seed: 9', 'parameters:', '  seed: {values: [1, 2]}'));
    expect(trials.map((t) => [t.seed, t.params.seed])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(new Set(ids(trials)).size).toBe(2);
  });

  it('have ids that do not depend on run_cap or on launching twice', () => {
    const a = expandSweep(sweep('method: grid', 'parameters:', '  a: {values: [1, 2, 3]}'));
    const b = expandSweep(sweep('method: grid', 'run_cap: 2', 'parameters:', '  a: {values: [1, 2, 3]}'));
    expect(ids(b)).toEqual(ids(a).slice(0, 2));
  });
});

describe('trialId', () => {
  it('is 20 hex characters of sha256', () => {
    expect(trialId('s', { a: 1 }, 0)).toMatch(/^[0-9a-f]{20}$/);
  });

  it('ignores key order at every depth; 1 and 1.0 are the same number', () => {
    expect(trialId('s', { a: 1, b: { x: 1, y: [1, 2] } }, 0)).toBe(trialId('s', { b: { y: [1, 2], x: 1.0 }, a: 1 }, 0));
    expect(canonicalJson({ b: 1, a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":1}');
  });

  it('changes with the sweep name, the params and the seed', () => {
    const base = trialId('s', { a: 1 }, 0);
    expect(trialId('t', { a: 1 }, 0)).not.toBe(base);
    expect(trialId('s', { a: 2 }, 0)).not.toBe(base);
    expect(trialId('s', { a: 1 }, 1)).not.toBe(base);
    expect(trialId('s', { a: [1, 2] }, 0)).not.toBe(trialId('s', { a: [2, 1] }, 0));
  });

  it('refuses non-finite numbers rather than hashing them as null', () => {
    expect(() => canonicalJson({ a: Infinity })).toThrow('non-finite');
  });
});
