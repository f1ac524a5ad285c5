/**
 * The sweep file schema: the single source of truth for what a sweep file may contain, the
 * defaults filled in, and the domains of the trainer's hyperparameters. A superset of the W&B
 * sweep configuration (wandb/sweeps config/schema.json) for the `grid` and `random` methods,
 * plus `seed` and a `train:` block of our own.
 *
 * Parameter specs are validated one distribution at a time (see DISTRIBUTIONS) rather than as
 * one big union, so that an error names the distribution the user meant instead of listing
 * why each of twenty alternatives failed.
 */
import { z } from 'zod';
import { SWEEP_PARAM_DOMAINS, TRAINER_PARAMS, domainViolation, type Domain, type TrainerParam, type TrainerParamName } from '../train/params.ts';

// ---------------------------------------------------------------------------------------------
// Trainer hyperparameters: domains and defaults.

export { SWEEP_PARAM_DOMAINS, TRAINER_PARAMS, domainViolation, isTrainerParam, type Domain, type TrainerParamName } from '../train/params.ts';

function domainSchema(name: string, d: Domain) {
  return z.number().superRefine((v, ctx) => {
    const why = domainViolation(d, v);
    if (why) ctx.addIssue({ code: 'custom', message: `${v} is not a valid ${name}: ${why}` });
  });
}

// ---------------------------------------------------------------------------------------------
// Parameter distributions (W&B names). Each is a strict object; `distribution` is filled in.

const num = z.number();
const int = z.number().int();
const positive = z.number().gt(0);
const q = z.number().gt(0).default(1);
const nonNegative = z.number().gte(0);

function minBelowMax<T extends { min: number; max: number }>(v: T, ctx: z.core.$RefinementCtx<T>) {
  if (!(v.min < v.max)) {
    ctx.addIssue({ code: 'custom', path: ['min'], message: `min (${v.min}) must be less than max (${v.max})` });
  }
}

function probabilitiesMatch(v: { values: unknown[]; probabilities?: number[] }, ctx: z.core.$RefinementCtx<any>) {
  const p = v.probabilities;
  if (!p) return;
  if (p.length !== v.values.length) {
    ctx.addIssue({
      code: 'custom',
      path: ['probabilities'],
      message: `has ${p.length} entr${p.length === 1 ? 'y' : 'ies'} but values has ${v.values.length}; give one probability per value`,
    });
    return;
  }
  const sum = p.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-6) {
    ctx.addIssue({ code: 'custom', path: ['probabilities'], message: `must sum to 1 (they sum to ${+sum.toPrecision(12)})` });
  }
}

const dist = <N extends string>(name: N) => z.literal(name).default(name);
const range = <N extends string>(name: N, lo: z.ZodNumber = num, hi: z.ZodNumber = num) =>
  z.strictObject({ distribution: dist(name), min: lo, max: hi }).superRefine(minBelowMax);
const qRange = <N extends string>(name: N, lo: z.ZodNumber = num) =>
  z.strictObject({ distribution: dist(name), min: lo, max: num, q }).superRefine(minBelowMax);
const normalLike = <N extends string>(name: N) =>
  z.strictObject({ distribution: dist(name), mu: num.default(0), sigma: nonNegative.default(1) });
const qNormalLike = <N extends string>(name: N) =>
  z.strictObject({ distribution: dist(name), mu: num.default(0), sigma: nonNegative.default(1), q });

const values = z.array(z.unknown()).min(1);
const probabilities = z.array(nonNegative).min(1);

export const DISTRIBUTIONS = {
  constant: z.strictObject({ distribution: dist('constant'), value: z.unknown() }),
  categorical: z
    .strictObject({ distribution: dist('categorical'), values, probabilities: probabilities.optional() })
    .superRefine(probabilitiesMatch),
  // W&B's name for `values` + `probabilities`; normalized to `categorical` with probabilities.
  categorical_w_probabilities: z
    .strictObject({ distribution: z.literal('categorical_w_probabilities').optional(), values, probabilities })
    .superRefine(probabilitiesMatch)
    .transform((v) => ({ distribution: 'categorical' as const, values: v.values, probabilities: v.probabilities })),
  int_uniform: range('int_uniform', int, int),
  uniform: range('uniform'),
  q_uniform: qRange('q_uniform'),
  /** min/max are base-e exponents (W&B v1 semantics). */
  log_uniform: range('log_uniform'),
  log_uniform_values: range('log_uniform_values', positive),
  inv_log_uniform: range('inv_log_uniform'),
  inv_log_uniform_values: range('inv_log_uniform_values', positive),
  q_log_uniform: qRange('q_log_uniform'),
  q_log_uniform_values: qRange('q_log_uniform_values', positive),
  normal: normalLike('normal'),
  q_normal: qNormalLike('q_normal'),
  log_normal: normalLike('log_normal'),
  q_log_normal: qNormalLike('q_log_normal'),
  beta: z.strictObject({ distribution: dist('beta'), a: positive.default(1), b: positive.default(1) }),
  q_beta: z.strictObject({ distribution: dist('q_beta'), a: positive.default(1), b: positive.default(1), q }),
} as const;

export type DistributionName = keyof typeof DISTRIBUTIONS;
export const DISTRIBUTION_NAMES = Object.keys(DISTRIBUTIONS) as DistributionName[];

export type LeafParamSpec = z.output<(typeof DISTRIBUTIONS)[DistributionName]>;
/** `{parameters: {...}}`: a nested dict of parameters in the trial's params. */
export interface NestedParamSpec {
  distribution: 'nested';
  parameters: Record<string, ParamSpec>;
}
export type ParamSpec = LeafParamSpec | NestedParamSpec;

/** W&B: `^[A-Za-z_][A-Za-z0-9_.-]*$`. */
export const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Grid search needs a finite list of values per parameter (wandb/sweeps grid_search.py). */
export const GRID_DISTRIBUTIONS: ReadonlySet<string> = new Set(['constant', 'categorical', 'int_uniform', 'q_uniform', 'nested']);

/** More trials than this in a grid without run_cap is almost surely a mistake in the file. */
export const MAX_GRID_TRIALS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// The rest of the file.

export const MetricSchema = z.strictObject({
  name: z.string().min(1),
  goal: z.enum(['minimize', 'maximize']).default('minimize'),
  /** The sweep is done once any trial reaches this value. */
  target: num.optional(),
  // W&B bayes-only keys, accepted so W&B files load unchanged.
  impute: z.enum(['latest', 'best', 'worst']).optional(),
  impute_while_running: z.enum(['latest', 'best', 'worst', 'false']).optional(),
});

export const EARLY_TERMINATE = {
  /** W&B hyperband: either min_iter, or max_iter with s. */
  hyperband: z
    .strictObject({
      type: z.literal('hyperband'),
      min_iter: int.gte(1).optional(),
      max_iter: int.gte(1).optional(),
      s: int.gte(1).optional(),
      eta: z.number().gt(1).default(3),
      strict: z.boolean().default(true),
    })
    .superRefine((v, ctx) => {
      if (v.min_iter === undefined && v.max_iter === undefined) {
        ctx.addIssue({ code: 'custom', message: 'hyperband needs min_iter, or max_iter with s' });
      } else if (v.min_iter === undefined && v.s === undefined) {
        ctx.addIssue({ code: 'custom', path: ['max_iter'], message: 'hyperband with max_iter also needs s (the number of brackets)' });
      } else if (v.min_iter === undefined && v.max_iter !== undefined && v.max_iter / v.eta < 1) {
        ctx.addIssue({ code: 'custom', path: ['max_iter'], message: `max_iter ${v.max_iter} / eta ${v.eta} < 1 leaves no bracket; raise max_iter or lower eta` });
      }
    }),
  /** Stop a trial whose best metric so far is worse than the median of the others at the same iteration. */
  median: z.strictObject({
    type: z.literal('median'),
    /** Iterations every trial runs before it can be stopped. */
    min_iter: int.gte(1).default(1),
    /** Trials that must have reported at an iteration before any is stopped there. */
    min_trials: int.gte(1).default(5),
    /** Check every this many iterations. */
    interval: int.gte(1).default(1),
  }),
} as const;

export type EarlyTerminate = z.output<(typeof EARLY_TERMINATE)[keyof typeof EARLY_TERMINATE]>;

export const GenerateSchema = z.strictObject({
  style: z.enum(['railway', 'hard']),
  count: int.gte(1),
  seed: int.default(0),
});
export type GenerateSpec = z.output<typeof GenerateSchema>;

/** A dataset directory, or CAPTCHAs to generate. */
const DataSource = z.union([z.string().min(1), GenerateSchema]);
export type DataSourceSpec = z.output<typeof DataSource>;

const NOT_IN_TRAIN_BLOCK = new Set(['seed', 'val_fraction', 'micro_batch']);
const hyperparameterDefaults = Object.fromEntries(
  Object.entries(TRAINER_PARAMS)
    // the top-level `seed` is the default seed; val_fraction depends on `val` (below);
    // micro_batch is a memory setting, not part of a trial's identity
    .filter(([name]) => !NOT_IN_TRAIN_BLOCK.has(name))
    .map(([name, d]) => [name, domainSchema(name, SWEEP_PARAM_DOMAINS[name as TrainerParamName]).default(d.default)]),
) as { [K in Exclude<TrainerParamName, 'seed' | 'val_fraction' | 'micro_batch'>]: z.ZodDefault<z.ZodNumber> };

/** Hyperparameter names whose defaults come from `train:` and go into every trial's params. */
export const TRAIN_HYPERPARAMETERS = Object.keys(hyperparameterDefaults) as Array<Exclude<TrainerParamName, 'seed' | 'val_fraction' | 'micro_batch'>>;

export const DEFAULT_VAL_FRACTION = 0.1;

export const TrainSchema = z
  .strictObject({
    /** A dataset directory (labelled images). */
    data: z.string().min(1).optional(),
    /** Or CAPTCHAs generated on the fly, deterministically from `seed`. */
    generate: GenerateSchema.optional(),
    val: DataSource.optional(),
    test: DataSource.optional(),
    /** Share of the training data held out for validation when `val` is not given. */
    val_fraction: z.number().gt(0).lt(1).optional(),
    backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    ...hyperparameterDefaults,
  })
  .superRefine((v, ctx) => {
    if (v.data !== undefined && v.generate !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['generate'], message: 'give either data (a directory) or generate, not both' });
    }
    if (v.val !== undefined && v.val_fraction !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['val_fraction'], message: 'give either val or val_fraction, not both' });
    }
  })
  .transform((v) => (v.val === undefined ? { ...v, val_fraction: v.val_fraction ?? DEFAULT_VAL_FRACTION } : v));

export type TrainDefaults = z.output<typeof TrainSchema>;

/**
 * The hyperparameters a `train:` block gives every trial (its defaults filled in), as the
 * trainer takes them: kernel_size ... freeze_epochs, plus val_fraction when no val set is given.
 * Data sources and the backend are not hyperparameters and are left out.
 */
export function trainHyperparameters(train: TrainDefaults): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of TRAIN_HYPERPARAMETERS) {
    const d: TrainerParam = TRAINER_PARAMS[name];
    if (d.omitAtDefault && train[name] === d.default) continue;
    out[name] = train[name];
  }
  if (train.val_fraction !== undefined) out.val_fraction = train.val_fraction;
  return out;
}

export const METHODS = ['grid', 'random'] as const;
export type Method = (typeof METHODS)[number];

/**
 * The top level. `parameters` and `early_terminate` are checked by parse.ts with the schemas
 * above (one distribution / one stopping rule at a time).
 */
export const SweepFileSchema = z.strictObject({
  method: z.enum(METHODS),
  name: z.string().min(1).optional(),
  description: z.string().optional(),
  metric: MetricSchema.optional(),
  parameters: z.unknown(),
  /** At most this many trials; required for random (the list of trials must be finite). */
  run_cap: int.gt(0).optional(),
  early_terminate: z.unknown().optional(),
  /** Seeds random sampling and is every trial's seed unless `seed` is itself swept. */
  seed: domainSchema('seed', TRAINER_PARAMS.seed).default(0),
  train: TrainSchema.prefault({}),
  // W&B keys: accepted and stored so a W&B file loads unchanged; not used here.
  program: z.string().optional(),
  command: z.array(z.unknown()).optional(),
  entity: z.string().optional(),
  project: z.string().optional(),
  job: z.string().optional(),
  image_uri: z.string().optional(),
  apiVersion: z.string().optional(),
  kind: z.literal('sweep').optional(),
  controller: z.looseObject({ type: z.enum(['local', 'cloud']) }).optional(),
});

type SweepFileOutput = z.output<typeof SweepFileSchema>;

/** A validated sweep file with every default filled in. */
export interface SweepSpec extends Omit<SweepFileOutput, 'parameters' | 'early_terminate' | 'name'> {
  /** The file it came from, as given. */
  file: string;
  /** `name:`, else the file's base name without extension. Part of every trial id. */
  name: string;
  parameters: Record<string, ParamSpec>;
  early_terminate?: EarlyTerminate;
}
