/**
 * The shapes of one parameter's spec, one strict object per distribution (W&B names), with
 * their defaults. What each distribution means lives in distributions.ts; how a spec is told
 * apart and checked in a sweep file lives in schema.ts.
 */
import { z } from 'zod';

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

/** Walks a free-form value (a constant, a categorical choice) for numbers JSON cannot carry. */
function finiteThroughout(v: unknown, ctx: z.core.$RefinementCtx<unknown>, path: Array<string | number> = []): void {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    ctx.addIssue({ code: 'custom', path, input: v, message: `${v} is not allowed here: use a finite number` });
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => finiteThroughout(x, ctx, [...path, i]));
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) finiteThroughout(x, ctx, [...path, k]);
  }
}

/** Any value a trial's params can hold (it is hashed into the trial id as JSON). */
export const plainValue = z.unknown().superRefine((v, ctx) => finiteThroughout(v, ctx));

/**
 * A strict mapping; `where` ends the unknown-key message ("Allowed here: min, max (for a
 * uniform parameter)"), read from the description by messages.ts.
 */
export function mapping<S extends z.core.$ZodLooseShape>(shape: S, where: string) {
  return z.strictObject(shape).describe(where);
}

const dist = <N extends string>(name: N) => z.literal(name).default(name);
const forA = (name: string) => `for a ${name} parameter`;
const range = <N extends string>(name: N, lo: z.ZodNumber = num, hi: z.ZodNumber = num) =>
  z.strictObject({ distribution: dist(name), min: lo, max: hi }).describe(forA(name)).superRefine(minBelowMax);
const qRange = <N extends string>(name: N, lo: z.ZodNumber = num) =>
  z.strictObject({ distribution: dist(name), min: lo, max: num, q }).describe(forA(name)).superRefine(minBelowMax);
const normalLike = <N extends string>(name: N) =>
  mapping({ distribution: dist(name), mu: num.default(0), sigma: nonNegative.default(1) }, forA(name));
const qNormalLike = <N extends string>(name: N) =>
  mapping({ distribution: dist(name), mu: num.default(0), sigma: nonNegative.default(1), q }, forA(name));

const values = z.array(plainValue).min(1);
const probabilities = z.array(nonNegative).min(1);

export const DISTRIBUTIONS = {
  constant: mapping({ distribution: dist('constant'), value: plainValue }, forA('constant')),
  categorical: z
    .strictObject({ distribution: dist('categorical'), values, probabilities: probabilities.optional() })
    .describe(forA('categorical'))
    .superRefine(probabilitiesMatch),
  // W&B's name for `values` + `probabilities`; normalized to `categorical` with probabilities.
  categorical_w_probabilities: z
    .strictObject({ distribution: z.literal('categorical_w_probabilities').optional(), values, probabilities })
    .describe(forA('categorical'))
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
  beta: mapping({ distribution: dist('beta'), a: positive.default(1), b: positive.default(1) }, forA('beta')),
  q_beta: mapping({ distribution: dist('q_beta'), a: positive.default(1), b: positive.default(1), q }, forA('q_beta')),
} as const;

export type DistributionName = keyof typeof DISTRIBUTIONS;
/** The names a file may give as `distribution:` (categorical_w_probabilities included, as W&B). */
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
