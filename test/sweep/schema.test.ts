import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSweepFile, parseSweep, SweepFileError, type SweepProblem } from '../../src/sweep/index.ts';
import { UserError } from '../../src/util/errors.ts';
import { trainHyperparameters } from '../../src/sweep/index.ts';
import { trainShape } from '../../src/sweep/schema.ts';
import { expandSweep } from '../../src/scheduler/expand.ts';

const FILE = 'sweeps/test.yaml';

/** The problems a sweep text is rejected with (fails the test if it is accepted). */
function problems(text: string): SweepProblem[] {
  try {
    parseSweep(text, FILE);
  } catch (err) {
    if (err instanceof SweepFileError) return [...err.problems];
    throw err;
  }
  throw new Error('expected the sweep file to be rejected');
}

/** The single problem at `path` (fails if there is none). */
function problemAt(text: string, path: string): SweepProblem {
  const all = problems(text);
  const found = all.find((p) => p.path === path);
  if (!found) throw new Error(`no problem at ${path}; got:\n${all.map((p) => `${p.path} (${p.line}): ${p.message}`).join('\n')}`);
  return found;
}

const lines = (...ls: string[]) => ls.join('\n') + '\n';

describe('valid files', () => {
  it('accepts a W&B documentation-style sweep file as is', async () => {
    const spec = await loadSweepFile('test/sweep/fixtures/wandb-example.yaml');
    expect(spec.name).toBe('sweepdemo');
    expect(spec.method).toBe('random');
    expect(spec.program).toBe('train.py');
    expect(spec.metric).toEqual({ name: 'val_loss', goal: 'minimize' });
    expect(spec.parameters).toEqual({
      batch_size: { distribution: 'categorical', values: [16, 32, 64] },
      epochs: { distribution: 'constant', value: 5 },
      learning_rate: { distribution: 'uniform', min: 0.0001, max: 0.1 },
      optimizer: { distribution: 'categorical', values: ['adam', 'sgd'] },
    });
  });

  it('accepts every W&B distribution, nesting, command macros and hyperband', async () => {
    const spec = await loadSweepFile('test/sweep/fixtures/wandb-full.yaml');
    expect(spec.command).toEqual(['${env}', 'python', '${program}', '${args}']);
    expect(spec.entity).toBe('my-team');
    expect(spec.early_terminate).toEqual({ type: 'hyperband', min_iter: 3, eta: 3, strict: true });
    expect(spec.parameters.optimizer).toEqual({
      distribution: 'nested',
      parameters: {
        name: { distribution: 'categorical', values: ['adam', 'sgd'] },
        beta1: { distribution: 'uniform', min: 0.85, max: 0.95 },
      },
    });
    expect(spec.parameters.pick).toEqual({ distribution: 'categorical', values: ['a', 'b', 'c'], probabilities: [0.5, 0.25, 0.25] });
    expect(spec.parameters.noise).toEqual({ distribution: 'normal', mu: 0, sigma: 0.1 });
  });

  it.each(readdirSync('sweeps').filter((f) => f.endsWith('.yaml')))('sweeps/%s is valid', async (f) => {
    const spec = await loadSweepFile(join('sweeps', f));
    expect(spec.name).toBe(f.replace(/\.yaml$/, ''));
  });

  it('infers distributions as W&B does', () => {
    const spec = parseSweep(
      lines(
        'method: random',
        'run_cap: 3',
        'parameters:',
        '  a: {values: [1, 2]}',
        '  b: {value: x}',
        '  c: {min: 1, max: 10}',
        '  d: {min: 0.5, max: 2}',
        '  e: {min: 1.0, max: 10}', // 1.0 is written as a float: uniform, as in W&B (PyYAML)
        '  f: {values: [a, b], probabilities: [0.3, 0.7]}',
      ),
      FILE,
    );
    expect(spec.parameters).toEqual({
      a: { distribution: 'categorical', values: [1, 2] },
      b: { distribution: 'constant', value: 'x' },
      c: { distribution: 'int_uniform', min: 1, max: 10 },
      d: { distribution: 'uniform', min: 0.5, max: 2 },
      e: { distribution: 'uniform', min: 1, max: 10 },
      f: { distribution: 'categorical', values: ['a', 'b'], probabilities: [0.3, 0.7] },
    });
  });

  it('fills defaults from the schema', () => {
    const spec = parseSweep(
      lines(
        'method: random',
        'run_cap: 1',
        'metric: {name: val_loss}',
        'parameters:',
        '  q: {distribution: q_uniform, min: 0, max: 10}',
        '  n: {distribution: normal}',
        '  m: {distribution: beta}',
        'early_terminate: {type: median}',
      ),
      'dir/my-sweep.yml',
    );
    expect(spec.name).toBe('my-sweep');
    expect(spec.seed).toBe(0);
    expect(spec.metric).toEqual({ name: 'val_loss', goal: 'minimize' });
    expect(spec.parameters.q).toEqual({ distribution: 'q_uniform', min: 0, max: 10, q: 1 });
    expect(spec.parameters.n).toEqual({ distribution: 'normal', mu: 0, sigma: 1 });
    expect(spec.parameters.m).toEqual({ distribution: 'beta', a: 1, b: 1 });
    expect(spec.early_terminate).toEqual({ type: 'median', min_iter: 1, min_trials: 5, interval: 1 });
    expect(spec.train).toEqual({
      backend: 'auto',
      kernel_size: 3,
      kernel_width: 0,
      padding: 'report',
      alpha: 1e-4,
      dropout: 0.2,
      lr: 1e-3,
      lr_decay: 1,
      lr_cosine: 0,
      precise_bn: 0,
      batch_size: 32,
      pretrain_epochs: 10,
      gru_epochs: 10,
      patience: 3,
      width: 1,
      freeze_epochs: 0,
      val_fraction: 0.1,
      aug_rotate: 0,
      aug_shear: 0,
      aug_scale: 0,
      aug_shift: 0,
      aug_contrast: 0,
      aug_color: 0,
      aug_noise: 0,
      aug_jpeg: 0,
      aug_after: 0,
    });
  });

  it('reads the train block: data sources and hyperparameter defaults', () => {
    const spec = parseSweep(
      lines(
        'method: grid',
        'parameters: {lr: {values: [0.001]}}',
        'train:',
        '  generate: {style: hard, count: 100}',
        '  val: data/val',
        '  test: {style: hard, count: 50, seed: 9}',
        '  width: 0.5',
        '  backend: wasm',
      ),
      FILE,
    );
    expect(spec.train.generate).toEqual({ style: 'hard', count: 100, seed: 0 });
    expect(spec.train.val).toBe('data/val');
    const fonts = (f: string) => parseSweep(lines('method: grid', 'parameters: {lr: {values: [0.001]}}', 'train:', `  generate: {style: railway, count: 9, fonts: ${f}}`), FILE).train.generate?.fonts;
    expect(fonts('all')).toBe('all');
    expect(fonts('[serif, open-sans]')).toEqual(['serif', 'open-sans']);
    expect(spec.train.test).toEqual({ style: 'hard', count: 50, seed: 9 });
    expect(spec.train.val_fraction).toBeUndefined();
    expect(spec.train.width).toBe(0.5);
    expect(spec.train.backend).toBe('wasm');
  });

  it('follows YAML anchors, aliases and merge keys', () => {
    const spec = parseSweep(
      lines('method: grid', 'parameters:', '  a: &a {values: [1, 2]}', '  b: *a', '  c:', '    <<: *a'),
      FILE,
    );
    const ab = { distribution: 'categorical', values: [1, 2] };
    expect(spec.parameters).toEqual({ a: ab, b: ab, c: ab });
  });
});

describe('bad files: each problem names the file, key path, line and column', () => {
  it('unknown top-level key: nearest name and the allowed keys', () => {
    const p = problemAt(lines('method: grid', 'parametrs:', '  a: {values: [1]}', 'parameters:', '  a: {values: [1]}'), 'parametrs');
    expect(p).toMatchObject({ file: FILE, line: 2, column: 1 });
    expect(p.message).toContain('unknown key `parametrs`; did you mean `parameters`?');
    expect(p.message).toContain('Allowed here: method, name, description, metric, parameters');
  });

  it('unknown key in a parameter spec lists the keys of that distribution', () => {
    const p = problemAt(
      lines('method: random', 'run_cap: 2', 'parameters:', '  lr:', '    distribution: uniform', '    min: 0.1', '    maxx: 0.2'),
      'parameters.lr.maxx',
    );
    expect(p.line).toBe(7);
    expect(p.message).toContain('did you mean `max`?');
    expect(p.message).toContain('Allowed here: distribution, min, max (for a uniform parameter)');
  });

  it('unknown key in train, metric and early_terminate', () => {
    const all = problems(
      lines(
        'method: grid',
        'parameters: {a: {values: [1]}}',
        'metric: {name: x, direction: max}',
        'early_terminate: {type: hyperband, min_iter: 2, etaa: 3}',
        'train:',
        '  epochs: 3',
      ),
    );
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['metric.direction', 3],
      ['early_terminate.etaa', 4],
      ['train.epochs', 6],
    ]);
    expect(all[2].message).toContain('Allowed here: data, generate, val, test, val_fraction, backend, kernel_size');
  });

  it('wrong types', () => {
    const text = lines(
      'method: random',
      'run_cap: ten',
      'seed: 1.5',
      'parameters:',
      '  a: {values: 3}',
      '  b: {distribution: uniform, min: low, max: 1}',
      '  c: 0.5',
      'train:',
      '  generate: {style: railway, count: many}',
    );
    const all = problems(text);
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['run_cap', 2],
      ['seed', 3],
      ['parameters.a.values', 5],
      ['parameters.b.min', 6],
      ['parameters.c', 7],
      ['train.generate.count', 9],
    ]);
    expect(all[0].message).toBe('expected an integer, got the string "ten"');
    expect(all[2].message).toBe('expected a list, got 3');
    expect(all[4].message).toContain('for a fixed value write `c: {value: 0.5}`');
  });

  it.each([
    ['{min: 0.001, max: 0.1}', 'uniform'],
    ['{distribution: log_uniform_values, min: 0.0001, max: 0.1}', 'log_uniform_values'],
    ['{distribution: normal, mu: 0, sigma: 1}', 'normal'],
    ['{distribution: q_log_uniform_values, min: 1, max: 100, q: 1}', 'q_log_uniform_values'],
  ])('grid refuses continuous %s (W&B grid_search.py does too)', (spec, dist) => {
    const p = problemAt(lines('method: grid', 'parameters:', '  x: {values: [1, 2]}', `  y: ${spec}`), spec.includes('distribution') ? 'parameters.y.distribution' : 'parameters.y');
    expect(p.line).toBe(4);
    expect(p.message).toContain('grid search needs a finite list of values');
    expect(p.message).toContain(`${dist} is continuous`);
  });

  it('grid accepts values, value, int_uniform and q_uniform; refuses probabilities', () => {
    expect(() =>
      parseSweep(
        lines('method: grid', 'parameters:', '  a: {values: [1]}', '  b: {value: 2}', '  c: {min: 1, max: 3}', '  d: {distribution: q_uniform, min: 0, max: 1, q: 0.5}'),
        FILE,
      ),
    ).not.toThrow();
    const p = problemAt(lines('method: grid', 'parameters:', '  a:', '    values: [1, 2]', '    probabilities: [0.5, 0.5]'), 'parameters.a.probabilities');
    expect(p.line).toBe(5);
  });

  it('min not below max', () => {
    const text = lines('method: random', 'run_cap: 1', 'parameters:', '  a:', '    min: 5', '    max: 1', '  b: {distribution: uniform, min: 2, max: 2}');
    const all = problems(text);
    expect(all.map((p) => [p.path, p.line, p.message])).toEqual([
      ['parameters.a.min', 5, 'min (5) must be less than max (1)'],
      ['parameters.b.min', 7, 'min (2) must be less than max (2)'],
    ]);
  });

  it('empty values', () => {
    const p = problemAt(lines('method: grid', 'parameters:', '  a:', '    values: []'), 'parameters.a.values');
    expect(p).toMatchObject({ line: 4, message: 'must have at least 1 item' });
  });

  it('probabilities of the wrong length or not summing to 1', () => {
    const all = problems(
      lines(
        'method: random',
        'run_cap: 1',
        'parameters:',
        '  a: {values: [x, y], probabilities: [0.5, 0.6]}',
        '  b: {values: [x, y, z], probabilities: [0.5, 0.5]}',
        '  c: {values: [x, y], probabilities: [1.5, -0.5]}',
      ),
    );
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['parameters.a.probabilities', 4],
      ['parameters.b.probabilities', 5],
      ['parameters.c.probabilities[1]', 6],
    ]);
    expect(all[0].message).toBe('must sum to 1 (they sum to 1.1)');
    expect(all[1].message).toBe('has 2 entries but values has 3; give one probability per value');
  });

  it('YAML syntax errors, with their line', () => {
    const all = problems(lines('method: grid', 'parameters:', '  a: {values: [1, 2]', '  b: 1'));
    expect(all[0].path).toBe('');
    expect(all[0].message).toMatch(/^YAML syntax: /);
    expect(all[0].line).toBeGreaterThanOrEqual(3);
  });

  it('duplicate keys are a YAML error', () => {
    const all = problems(lines('method: grid', 'parameters:', '  a: {values: [1]}', '  a: {values: [2]}'));
    expect(all[0]).toMatchObject({ line: 4, column: 3 });
    expect(all[0].message).toContain('unique');
  });

  it('run_cap is required for random, reported at method', () => {
    const p = problemAt(lines('name: x', 'method: random', 'parameters:', '  a: {min: 0.0, max: 1.0}'), 'run_cap');
    expect(p.line).toBe(2);
    expect(p.message).toContain('required for method random');
  });

  it('bayes is refused with a reason', () => {
    const p = problemAt(lines('method: bayes', 'parameters: {a: {values: [1]}}'), 'method');
    expect(p.message).toBe('`bayes` is a W&B method this tool does not run; use grid or random');
  });

  it('missing parameters, empty file, non-mapping file', () => {
    expect(problemAt('method: grid\n', 'parameters').message).toContain('required');
    expect(problems('')[0].message).toContain('the file is empty');
    expect(problems('- a\n- b\n')[0].message).toContain('expected a mapping at the top level');
  });

  it('unknown distribution, with the nearest name', () => {
    const p = problemAt(lines('method: random', 'run_cap: 1', 'parameters:', '  a: {distribution: log_uniform_value, min: 1, max: 2}'), 'parameters.a.distribution');
    expect(p.message).toContain('did you mean `log_uniform_values`?');
  });

  it('early_terminate: shape, and it needs a metric', () => {
    const all = problems(lines('method: grid', 'parameters: {a: {values: [1]}}', 'early_terminate:', '  type: hyperband', '  eta: 3'));
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['early_terminate', 3],
      ['early_terminate', 3],
    ]);
    expect(all.map((p) => p.message).sort()).toEqual([
      'early termination compares trials by a metric; add metric: {name, goal}',
      'hyperband needs min_iter, or max_iter with s',
    ]);
    const t = problemAt(lines('method: grid', 'metric: {name: l}', 'parameters: {a: {values: [1]}}', 'early_terminate: {type: asha}'), 'early_terminate.type');
    expect(t.message).toContain('Known: hyperband, median');
  });

  it('train: data and generate are exclusive, so are val and val_fraction', () => {
    const all = problems(
      lines('method: grid', 'parameters: {a: {values: [1]}}', 'train:', '  data: d', '  generate: {style: railway, count: 5}', '  val: v', '  val_fraction: 0.2'),
    );
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['train.generate', 5],
      ['train.val_fraction', 7],
    ]);
  });

  it('non-finite numbers and bad parameter names', () => {
    const all = problems(lines('method: grid', 'parameters:', '  a: {values: [.inf]}', '  9lives: {value: 1}'));
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['parameters.a.values[0]', 3],
      ['parameters["9lives"]', 4],
    ]);
  });

  it('reports every problem, sorted by line, and is a UserError (exit 2)', () => {
    const text = lines(
      'method: grid',
      'bogus: 1',
      'parameters:',
      '  dropout:',
      '    values: [0.1, 0.2, 1.2]',
      '  kernel_size: {values: [3, 0]}',
    );
    let err: unknown;
    try {
      parseSweep(text, FILE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SweepFileError);
    expect(err).toBeInstanceOf(UserError);
    const e = err as SweepFileError;
    expect(e.exitCode).toBe(2);
    expect({ file: e.file, path: e.path, line: e.line, column: e.column }).toEqual({ file: FILE, path: 'bogus', line: 2, column: 1 });
    expect(e.message.split('\n')).toEqual([
      expect.stringMatching(/^sweeps\/test\.yaml:2:1: bogus: unknown key `bogus`/),
      'sweeps/test.yaml:5:24: parameters.dropout.values[2]: 1.2 is not a valid dropout: must be a number in [0, 1)',
      'sweeps/test.yaml:6:29: parameters.kernel_size.values[1]: 0 is not a valid kernel_size: must be an integer >= 1',
    ]);
  });

  it('a missing file is a UserError naming it', async () => {
    await expect(loadSweepFile('sweeps/does-not-exist.yaml')).rejects.toThrow(UserError);
    await expect(loadSweepFile('sweeps/does-not-exist.yaml')).rejects.toThrow('sweeps/does-not-exist.yaml: cannot read the sweep file (no such file)');
  });
});

describe('trainer parameters: every value a sweep can produce must be in the domain', () => {
  const random = (param: string) => lines('method: random', 'run_cap: 5', 'parameters:', `  ${param}`);

  it.each([
    ['dropout: {values: [0.1, 0.2, 1.2]}', 'parameters.dropout.values[2]', '1.2 is not a valid dropout: must be a number in [0, 1)'],
    ['kernel_size: {values: [3, 0]}', 'parameters.kernel_size.values[1]', '0 is not a valid kernel_size: must be an integer >= 1'],
    ['kernel_size: {values: [3, 5]}', 'parameters.kernel_size.values[1]', "5 is not a valid kernel_size: must be an integer from 1 to 4 under padding: report (the default): each block's first conv is `valid`, so on 60x200 images a larger kernel leaves no feature map; set `padding: same` in train: to run larger kernels"],
    ['kernel_width: {values: [7, 14]}', 'parameters.kernel_width.values[1]', "14 is not a valid kernel_width: must be an integer from 0 to 13 under padding: report (the default): each block's first conv is `valid`, so on 60x200 images a larger kernel leaves no feature map; set `padding: same` in train: to run larger kernels"],
    ['kernel_width: {values: [7, 2.5]}', 'parameters.kernel_width.values[1]', '2.5 is not a valid kernel_width: must be an integer >= 0 (0 = kernel_size)'],
    ['lr: {value: 0}', 'parameters.lr.value', '0 is not a valid lr: must be a number > 0'],
    ['alpha: {value: -1}', 'parameters.alpha.value', '-1 is not a valid alpha: must be a number >= 0'],
    ['batch_size: {values: [32, "64"]}', 'parameters.batch_size.values[1]', 'the string "64" is not a valid batch_size: must be an integer >= 1'],
    ['dropout: {distribution: uniform, min: 0.1, max: 1.5}', 'parameters.dropout.max', 'uniform from 0.1 to 1.5 can produce 1.5, but dropout must be a number in [0, 1)'],
    ['dropout: {min: 0.0, max: 1.0}', 'parameters.dropout.max', 'uniform from 0 to 1 can produce 1, but dropout must be a number in [0, 1)'],
    ['lr: {min: 0.0, max: 0.1}', 'parameters.lr.min', 'uniform from 0 to 0.1 can produce 0, but lr must be a number > 0'],
    ['kernel_size: {min: 0, max: 4}', 'parameters.kernel_size', 'int_uniform from 0 to 4 can produce 0, but kernel_size must be an integer >= 1'],
    ['kernel_size: {min: 3, max: 7}', 'parameters.kernel_size', "int_uniform from 3 to 7 can produce 5, but kernel_size must be an integer from 1 to 4 under padding: report (the default): each block's first conv is `valid`, so on 60x200 images a larger kernel leaves no feature map; set `padding: same` in train: to run larger kernels"],
    ['batch_size: {distribution: uniform, min: 16, max: 64}', 'parameters.batch_size', 'uniform from 16 to 64 produces non-integers, but batch_size must be an integer >= 1; use int_uniform or values'],
    ['lr: {distribution: normal, mu: 0.001, sigma: 0.0005}', 'parameters.lr', 'normal can produce arbitrarily small values, but lr must be a number > 0'],
    ['lr: {distribution: q_log_uniform_values, min: 0.0001, max: 0.01, q: 0.001}', 'parameters.lr', 'q_log_uniform_values from 0.0001 to 0.01 can produce 0, but lr must be a number > 0'],
    ['width: {distribution: log_uniform, min: -3, max: 2}', 'parameters.width.max', 'log_uniform from -3 to 2 can produce 7.38906, but width must be a number in (0, 4]'],
    ['pretrain_epochs: {values: [-1]}', 'parameters.pretrain_epochs.values[0]', '-1 is not a valid pretrain_epochs: must be an integer >= 0'],
    ['patience: {value: 0}', 'parameters.patience.value', '0 is not a valid patience: must be an integer >= 1'],
    ['seed: {values: [1, 2.5]}', 'parameters.seed.values[1]', '2.5 is not a valid seed: must be an integer'],
    ['freeze_epochs: {parameters: {a: {value: 1}}}', 'parameters.freeze_epochs', 'freeze_epochs is a trainer parameter and must be an integer >= 0, not a nested group'],
  ])('%s', (param, path, message) => {
    const p = problemAt(random(param), path);
    expect(p.line).toBe(4);
    expect(p.message).toBe(message);
  });

  it.each([
    'dropout: {distribution: uniform, min: 0.0, max: 0.5}',
    'lr: {distribution: log_uniform_values, min: 0.0001, max: 0.003}',
    'lr: {distribution: log_normal, mu: -7, sigma: 1}',
    'alpha: {distribution: uniform, min: 0.0, max: 0.01}',
    'kernel_size: {values: [1, 2, 3, 4]}',
    'kernel_size: {min: 1, max: 4}',
    'padding: {values: [report, same]}',
    'batch_size: {distribution: q_uniform, min: 16, max: 128, q: 16}',
    'batch_size: {min: 16, max: 64}',
    'dropout: {distribution: beta, a: 2, b: 5}',
    'seed: {values: [0, 1, 2]}',
  ])('accepts %s', (param) => {
    expect(() => parseSweep(random(param), FILE)).not.toThrow();
  });

  it('with padding: same, kernels larger than 4 plan; under the report padding they are refused naming it', () => {
    const grid = (...train: string[]) => lines('method: grid', 'train:', ...train, 'parameters:', '  kernel_size: {values: [3, 5, 7]}');
    expect(() => parseSweep(grid('  padding: same'), FILE)).not.toThrow();
    const p = problemAt(grid('  padding: report'), 'parameters.kernel_size.values[1]');
    expect(p.line).toBe(5);
    expect(p.message).toBe("5 is not a valid kernel_size: must be an integer from 1 to 4 under padding: report (the default): each block's first conv is `valid`, so on 60x200 images a larger kernel leaves no feature map; set `padding: same` in train: to run larger kernels");
    // Swept padding: a trial with the report padding and kernel 5 would have no feature map.
    const swept = lines('method: grid', 'parameters:', '  padding: {values: [report, same]}', '  kernel_size: {values: [3, 5]}');
    expect(problemAt(swept, 'parameters.kernel_size.values[1]').message).toMatch(/^5 is not a valid kernel_size: must be an integer from 1 to 4 when padding is report: .*set `padding: same`/);
    expect(problemAt(lines('method: grid', 'train: {padding: valid}', 'parameters: {lr: {values: [0.001]}}'), 'train.padding').message).toBe(
      'the string "valid" is not a valid padding: must be `report` or `same`',
    );
    expect(problemAt(lines('method: grid', 'parameters: {padding: {values: [same, 3]}}'), 'parameters.padding.values[1]').message).toBe('3 is not a valid padding: must be `report` or `same`');
  });

  it('checks the train block too', () => {
    const all = problems(lines('method: grid', 'parameters: {a: {values: [1]}}', 'train:', '  kernel_size: 0', '  dropout: 1', '  lr: 0'));
    expect(all.map((p) => [p.path, p.line, p.message])).toEqual([
      ['train.kernel_size', 4, '0 is not a valid kernel_size: must be an integer >= 1'],
      ['train.dropout', 5, '1 is not a valid dropout: must be a number in [0, 1)'],
      ['train.lr', 6, '0 is not a valid lr: must be a number > 0'],
    ]);
  });

  it('a parameter nested under a group is not a trainer parameter', () => {
    expect(() => parseSweep(random('opt: {parameters: {dropout: {value: 3}}}'), FILE)).not.toThrow();
  });
});

describe('parameter names the trainer does not know', () => {
  /** The problems a sweep text is rejected with when read for the trainer. */
  function forTrainer(text: string): SweepProblem[] {
    try {
      parseSweep(text, FILE, { trainer: true });
    } catch (err) {
      if (err instanceof SweepFileError) return [...err.problems];
      throw err;
    }
    throw new Error('expected the sweep file to be rejected');
  }

  it('a typo is refused at its line, with the nearest name', () => {
    const all = forTrainer(lines('method: grid', 'parameters:', '  dropuot: {values: [0.1, 0.3]}', '  kernel_size: {values: [3]}'));
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ file: FILE, path: 'parameters.dropuot', line: 3, column: 3 });
    expect(all[0].message).toMatch(/^unknown parameter `dropuot`; did you mean `dropout`\? The trainer takes: kernel_size, kernel_width, .*, seed, aug_rotate, .*, aug_jpeg, aug_after; /);
    expect(all[0].message).toContain('a value kept for the sweep\'s own bookkeeping goes under a name starting with x_');
  });

  it('a name near nothing is refused too, and every one is reported', () => {
    const all = forTrainer(lines('method: grid', 'parameters:', '  optimizer: {values: [adam]}', '  widht: {values: [0.5]}', '  opt: {parameters: {b: {value: 1}}}'));
    expect(all.map((p) => [p.path, p.line])).toEqual([
      ['parameters.optimizer', 3],
      ['parameters.widht', 4],
      ['parameters.opt', 5],
    ]);
    expect(all[0].message).toMatch(/^unknown parameter `optimizer`; The trainer takes/);
    expect(all[1].message).toContain('did you mean `width`?');
  });

  it('is a UserError (exit 2) from loadSweepFile, which W&B files without our names do not pass', async () => {
    const err = await loadSweepFile('test/sweep/fixtures/wandb-example.yaml', { trainer: true }).catch((e) => e);
    expect(err).toBeInstanceOf(SweepFileError);
    expect((err as SweepFileError).exitCode).toBe(2);
    expect((err as SweepFileError).problems.map((p) => p.path)).toEqual(['parameters.epochs', 'parameters.learning_rate', 'parameters.optimizer']);
  });

  it('x_ names carry bookkeeping values: any value, nested groups, any names inside', () => {
    const spec = parseSweep(
      lines('method: grid', 'parameters:', '  dropout: {values: [0.1]}', '  x_note: {value: baseline}', '  x_run: {values: [1, 2]}', '  x_group: {parameters: {anything: {value: 1}}}'),
      FILE,
      { trainer: true },
    );
    expect(Object.keys(spec.parameters)).toEqual(['dropout', 'x_note', 'x_run', 'x_group']);
  });

  it('the train block refuses a typo with the nearest name', () => {
    const p = problemAt(lines('method: grid', 'parameters: {dropout: {values: [0.1]}}', 'train:', '  dropuot: 0.3'), 'train.dropuot');
    expect(p.line).toBe(4);
    expect(p.message).toMatch(/^unknown key `dropuot`; did you mean `dropout`\? Allowed here: data, generate, .* \(in the train block\)$/);
  });

  it('every sweep shipped in sweeps/ uses only the trainer\'s names', async () => {
    for (const f of readdirSync('sweeps').filter((x) => x.endsWith('.yaml'))) {
      await expect(loadSweepFile(join('sweeps', f), { trainer: true })).resolves.toBeDefined();
    }
  });
});

describe('rules that had no case of their own', () => {
  it.each([
    ['method: gird\nparameters: {a: {values: [1]}}\n', 'method', 1, 'expected one of grid, random, got the string "gird"; did you mean `grid`?'],
    ['method: grid\nparameters: 3\n', 'parameters', 2, 'expected a mapping from parameter names to specs, got 3'],
    ['method: grid\nparameters: {}\n', 'parameters', 2, 'needs at least one parameter'],
    ['method: grid\nparameters:\n  a: {}\n', 'parameters.a', 3, 'cannot tell the distribution: give {values: [...]}, {value: x}, {min: a, max: b} or {distribution: ..., ...}'],
    ['method: grid\nparameters:\n  a: {distribution: constant}\n', 'parameters.a.value', 3, 'required: a constant parameter needs value'],
    ['method: grid\nparameters:\n  a: {distribution: 3}\n', 'parameters.a.distribution', 3, expect.stringMatching(/^unknown distribution 3 Known: constant, categorical, /)],
    ['method: grid\nparameters:\n  g:\n    parameters: {a: {value: 1}}\n    values: [1]\n', 'parameters.g.values', 5, 'unknown key `values`; Allowed here: parameters (a nested group of parameters)'],
    ['method: grid\nparameters:\n  g: {parameters: {}}\n', 'parameters.g.parameters', 3, 'needs at least one parameter'],
    ['method: random\nrun_cap: 1\nparameters:\n  a: {min: 1e0, max: 10, q: 2}\n', 'parameters.a.q', 4, 'unknown key `q`; Allowed here: distribution, min, max (for a uniform parameter)'],
    ['method: random\nrun_cap: 1\nparameters:\n  a: {min: 0x1, max: 10, q: 2}\n', 'parameters.a.q', 4, 'unknown key `q`; Allowed here: distribution, min, max (for a int_uniform parameter)'],
    ['method: random\nrun_cap: 1\nparameters:\n  a: {min: .inf, max: 10}\n', 'parameters.a.min', 4, 'Infinity is not allowed here: use a finite number'],
    ['method: random\nrun_cap: 1\nparameters:\n  a: {value: {k: [1, .nan]}}\n', 'parameters.a.value.k[1]', 4, 'NaN is not allowed here: use a finite number'],
    ['method: grid\nmetric: {name: l, goal: max}\nparameters: {a: {values: [1]}}\n', 'metric.goal', 2, 'expected one of minimize, maximize, got the string "max"'],
    ['method: grid\nmetric: {goal: maximize}\nparameters: {a: {values: [1]}}\n', 'metric.name', 2, 'required: a string'],
    ['method: grid\nmetric: {name: l}\nparameters: {a: {values: [1]}}\nearly_terminate: 3\n', 'early_terminate', 4, 'expected a mapping such as {type: hyperband, min_iter: 3}, got 3'],
    ['method: grid\nmetric: {name: l}\nparameters: {a: {values: [1]}}\nearly_terminate: {min_iter: 3}\n', 'early_terminate', 4, 'required: type (one of hyperband, median)'],
    ['method: grid\nmetric: {name: l}\nparameters: {a: {values: [1]}}\nearly_terminate: {type: medain}\n', 'early_terminate.type', 4, 'unknown type the string "medain"; did you mean `median`? Known: hyperband, median'],
    ['method: grid\nmetric: {name: l}\nparameters: {a: {values: [1]}}\nearly_terminate: {type: hyperband, max_iter: 9}\n', 'early_terminate.max_iter', 4, 'hyperband with max_iter also needs s (the number of brackets)'],
    ['method: grid\nmetric: {name: l}\nparameters: {a: {values: [1]}}\nearly_terminate: {type: median, min_trials: 0}\n', 'early_terminate.min_trials', 4, 'must be >= 1, got 0'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  val: {style: railway, count: 0}\n', 'train.val.count', 4, 'must be >= 1, got 0'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  val: 3\n', 'train.val', 4, 'expected a string or a mapping, got 3'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  generate: {style: rail, count: 1}\n', 'train.generate.style', 4, 'expected one of railway, hard, got the string "rail"'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  generate: {style: railway, count: 1, seeed: 2}\n', 'train.generate.seeed', 4, 'unknown key `seeed`; did you mean `seed`? Allowed here: style, count, seed, case, fonts (for generated CAPTCHAs)'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  generate: {style: railway, count: 1, fonts: [serif, times, sams]}\n', 'train.generate.fonts[1]', 4, 'unknown font "times"; Known: serif, mono, sans, noto-serif, open-sans, plex-mono, roboto-slab, merriweather, pt-serif, libre-baskerville, lato, ubuntu, montserrat, source-code-pro, fira-mono, zilla-slab'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  generate: {style: railway, count: 1, fonts: [serif, times, sams]}\n', 'train.generate.fonts[2]', 4, 'unknown font "sams"; did you mean `sans`? Known: serif, mono, sans, noto-serif, open-sans, plex-mono, roboto-slab, merriweather, pt-serif, libre-baskerville, lato, ubuntu, montserrat, source-code-pro, fira-mono, zilla-slab'],
    ['method: grid\nparameters: {a: {values: [1]}}\ntrain:\n  generate: {style: railway, count: 1, fonts: []}\n', 'train.generate.fonts', 4, 'expected all, or a list of fonts from: serif, mono, sans, noto-serif, open-sans, plex-mono, roboto-slab, merriweather, pt-serif, libre-baskerville, lato, ubuntu, montserrat, source-code-pro, fira-mono, zilla-slab; got a list (0 items)'],
    ['method: grid\nparameters:\n  a: {min: 1, max: 2000}\n  b: {min: 1, max: 1000}\n', 'parameters', 2, 'the grid has 2,000,000 trials (more than 1,000,000); use fewer values or set run_cap'],
  ])('%#: %s', (text, path, line, message) => {
    const p = problemAt(text, path);
    expect(p.line).toBe(line);
    expect(p.message).toEqual(message);
  });
});

describe('train: image and label (the data shape)', () => {
  const withShape = (shape: string[], params = '  kernel_size: {values: [3, 4]}', train: string[] = []) =>
    lines('method: grid', 'train:', '  backend: auto', ...shape.map((l) => `  ${l}`), ...train.map((l) => `  ${l}`), 'parameters:', params);

  it('refuses a kernel that does not fit the declared image under the report padding, with the numbers', () => {
    // 4 fits 60x200 but leaves no feature map of a 50-pixel-high image.
    const p = problemAt(withShape(['image: {height: 50, width: 160}']), 'parameters.kernel_size.values[1]');
    expect(p.line).toBe(6);
    expect(p.message).toBe(
      "4 is not a valid kernel_size: must be an integer from 1 to 3 under padding: report (the default): each block's first conv is `valid`, so on 50x160 images a larger kernel leaves no feature map; set `padding: same` in train: to run larger kernels",
    );
    expect(problemAt(withShape(['image: {height: 50, width: 160}'], '  lr: {values: [0.001]}', ['kernel_size: 4']), 'train.kernel_size').message).toMatch(
      /^4 is not a valid kernel_size: must be an integer from 1 to 3 under padding: report .* on 50x160 images/,
    );
    expect(() => parseSweep(withShape(['image: {height: 64, width: 256}'], '  kernel_size: {values: [3, 4]}'), FILE)).not.toThrow();
  });

  it('under padding: same, kernels are bounded by the declared image, not by 60x200', () => {
    expect(() => parseSweep(withShape(['image: {height: 64, width: 256}', 'padding: same'], '  kernel_size: {values: [3, 62]}'), FILE)).not.toThrow();
    const p = problemAt(withShape(['image: {height: 50, width: 160}', 'padding: same'], '  kernel_size: {values: [3, 55]}'), 'parameters.kernel_size.values[1]');
    expect(p.message).toBe('55 is not a valid kernel_size: must be an integer from 1 to 50 (trials train on 50x160 images)');
    const w = problemAt(withShape(['image: {height: 50, width: 160}', 'padding: same'], '  kernel_width: {values: [161]}'), 'parameters.kernel_width.values[0]');
    expect(w.message).toBe('161 is not a valid kernel_width: must be an integer from 0 to 160 (0 = kernel_size; trials train on images 160 wide)');
  });

  it('checks the image and label blocks', () => {
    expect(problemAt(withShape(['image: {height: 4, width: 160}'], '  lr: {values: [0.001]}'), 'train.image.height').message).toBe('must be an integer >= 8 (pixels)');
    expect(problemAt(withShape(['image: {height: 50}'], '  lr: {values: [0.001]}'), 'train.image.width').message).toMatch(/^required/);
    expect(problemAt(withShape(['label: {length: 0}'], '  lr: {values: [0.001]}'), 'train.label.length').line).toBe(4);
    const fold = problemAt(withShape(['label: {length: 4, charset: a-zA-Z, case: fold}'], '  lr: {values: [0.001]}'), 'train.label.charset');
    expect(fold.message).toBe("charset 'a-zA-Z' holds both 'a' and 'A'; under case: fold they are one class, so give each letter once");
    expect(problemAt(withShape(['label: {length: 4, charset: z-a}'], '  lr: {values: [0.001]}'), 'train.label.charset').message).toBe("charset range 'z-a' runs backwards");
    expect(problemAt(withShape(['label: {length: 4, case: title}'], '  lr: {values: [0.001]}'), 'train.label.case').message).toMatch(/lower.*upper.*fold/);
  });

  it('refuses, when the file is checked, a generate block the generator cannot draw in the declared shape', () => {
    const gen = ['generate: {style: railway, count: 100, seed: 1}'];
    // A label alphabet of characters the bundled fonts do not hold: fine for a dataset directory, not for generated data.
    const p = problemAt(withShape(['label: {length: 4, charset: "0-9\u03b1\u03b2"}'], '  lr: {values: [0.001]}', gen), 'train.label.charset');
    expect(p.message).toBe('the generator cannot draw these labels: charset character "\u03b1" is not drawable: use printable ASCII or Latin-1 letters, no spaces');
    expect(() => parseSweep(withShape(['label: {length: 4, charset: "0-9\u03b1\u03b2"}'], '  lr: {values: [0.001]}', ['data: /some/dir']), FILE)).not.toThrow();
    // A generated val set counts too; so does an image larger than the generator draws.
    expect(problemAt(withShape(['label: {length: 4, charset: "ab\u03b1"}'], '  lr: {values: [0.001]}', ['data: /some/dir', 'val: {style: railway, count: 10, seed: 2}']), 'train.label.charset').message).toMatch(/"\u03b1" is not drawable/);
    expect(problemAt(withShape(['image: {height: 60, width: 5000}'], '  lr: {values: [0.001]}', gen), 'train.image').message).toBe(
      'the generator cannot draw images of this size: width must be an integer from 8 to 4096 pixels, got 5000',
    );
    expect(() => parseSweep(withShape(['image: {height: 50, width: 160}', 'label: {length: 4, charset: 0-9A-Z, case: fold}'], '  lr: {values: [0.001]}', gen), FILE)).not.toThrow();
  });

  it('fills the label block\'s defaults and gives the shape to every trial, leaving the report\'s out', () => {
    const spec = parseSweep(withShape(['image: {height: 50, width: 160}', 'label: {length: 4, charset: 0-9a-z, case: upper}'], '  lr: {values: [0.001]}'), FILE);
    expect(spec.train.label).toEqual({ length: 4, charset: '0-9a-z', case: 'upper' });
    expect(trainShape(spec.train)).toEqual({ height: 50, width: 160, label: { length: 4, charset: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', case: 'upper' } });
    expect(trainHyperparameters(spec.train)).toMatchObject({ image_height: 50, image_width: 160, label_length: 4, label_charset: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', label_case: 'upper' });

    const plain = parseSweep(withShape([], '  lr: {values: [0.001]}'), FILE);
    const explicit = parseSweep(withShape(['image: {height: 60, width: 200}', 'label: {length: 6, charset: 0-9a-z}'], '  lr: {values: [0.001]}'), FILE);
    expect(Object.keys(trainHyperparameters(plain.train)).filter((k) => /^(image|label)_/.test(k))).toEqual([]);
    expect(expandSweep(explicit).map((t) => t.id)).toEqual(expandSweep(plain).map((t) => t.id));
    expect(expandSweep(spec).map((t) => t.id)).not.toEqual(expandSweep(plain).map((t) => t.id));
  });
});
