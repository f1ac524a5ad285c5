/**
 * What each distribution means: how random search samples it, which values grid search walks,
 * and the set of values it can produce (to check a trainer parameter's domain). Pure.
 *
 * Semantics follow wandb/sweeps params.py (`ppf` of a uniform draw) and grid_search.py:
 *  - int_uniform includes both ends; categorical picks uniformly unless `probabilities` given.
 *  - q_* distributions round the continuous draw to the nearest multiple of q (half to even,
 *    as numpy does); the result is then cleared of float noise (0.30000000000000004 -> 0.3).
 *  - log_uniform / q_log_uniform / inv_log_uniform take base-e exponents as min/max;
 *    the *_values variants take the values themselves.
 *  - grid over q_uniform walks numpy.arange(min, max, q): max itself is excluded, as in W&B.
 */
import type { Rng } from '../util/rng.ts';
import type { LeafParamSpec } from './param-schema.ts';

/** Round half to even, like numpy.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Drop float noise from arithmetic on decimal steps; integers pass through exactly. */
export function tidy(x: number): number {
  if (Number.isInteger(x)) return x + 0; // also turns -0 into 0
  return Number(x.toPrecision(12)) + 0;
}

/** Nearest multiple of q. */
export function quantize(x: number, q: number): number {
  return tidy(roundHalfEven(x / q) * q);
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** A fresh copy of list/mapping values, so trials never share (and mutate) one object. */
const copy = <T>(v: T): T => (typeof v === 'object' && v !== null ? structuredClone(v) : v);

/** Gamma(shape, 1) by Marsaglia and Tsang; for beta draws. */
function gamma(rng: Rng, shape: number): number {
  if (shape < 1) return gamma(rng, shape + 1) * Math.pow(rng.next(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const v0 = 1 + c * x;
    if (v0 <= 0) continue;
    const v = v0 * v0 * v0;
    const u = rng.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

function beta(rng: Rng, a: number, b: number): number {
  const x = gamma(rng, a);
  const y = gamma(rng, b);
  return x + y > 0 ? x / (x + y) : a / (a + b);
}

/** One draw from a leaf distribution. */
export function sample(spec: LeafParamSpec, rng: Rng): unknown {
  switch (spec.distribution) {
    case 'constant':
      return copy(spec.value);
    case 'categorical': {
      const { values, probabilities } = spec;
      if (!probabilities) return copy(values[Math.floor(rng.next() * values.length)]);
      const u = rng.next();
      let acc = 0;
      let last = 0;
      for (let i = 0; i < values.length; i++) {
        if (probabilities[i] <= 0) continue;
        last = i;
        acc += probabilities[i];
        if (u < acc) return copy(values[i]);
      }
      return copy(values[last]); // probabilities summing to 1 - tiny
    }
    case 'int_uniform':
      return rng.int(spec.min, spec.max);
    case 'uniform':
      return rng.uniform(spec.min, spec.max);
    case 'q_uniform':
      return quantize(rng.uniform(spec.min, spec.max), spec.q);
    case 'log_uniform':
      return Math.exp(rng.uniform(spec.min, spec.max));
    case 'log_uniform_values':
      return clamp(Math.exp(rng.uniform(Math.log(spec.min), Math.log(spec.max))), spec.min, spec.max);
    case 'inv_log_uniform':
      return Math.exp(-rng.uniform(spec.min, spec.max));
    case 'inv_log_uniform_values':
      // W&B: exp(-U(-ln max, -ln min)), i.e. 1/x is log-uniform.
      return clamp(Math.exp(-rng.uniform(-Math.log(spec.max), -Math.log(spec.min))), spec.min, spec.max);
    case 'q_log_uniform':
      return quantize(Math.exp(rng.uniform(spec.min, spec.max)), spec.q);
    case 'q_log_uniform_values':
      return quantize(Math.exp(rng.uniform(Math.log(spec.min), Math.log(spec.max))), spec.q);
    case 'normal':
      return rng.normal(spec.mu, spec.sigma);
    case 'q_normal':
      return quantize(rng.normal(spec.mu, spec.sigma), spec.q);
    case 'log_normal':
      return Math.exp(rng.normal(spec.mu, spec.sigma));
    case 'q_log_normal':
      return quantize(Math.exp(rng.normal(spec.mu, spec.sigma)), spec.q);
    case 'beta':
      return beta(rng, spec.a, spec.b);
    case 'q_beta':
      return quantize(beta(rng, spec.a, spec.b), spec.q);
  }
}

/** The values grid search walks for one parameter, in order, without materializing them. */
export interface GridAxis {
  readonly length: number;
  at(i: number): unknown;
}

/**
 * Grid values of a grid-capable leaf (constant, categorical, int_uniform, q_uniform).
 * Repeated categorical values are walked once, as W&B does.
 */
export function gridAxis(spec: LeafParamSpec, canonical: (v: unknown) => string): GridAxis {
  switch (spec.distribution) {
    case 'constant':
      return { length: 1, at: () => copy(spec.value) };
    case 'categorical': {
      const seen = new Set<string>();
      const unique = spec.values.filter((v) => {
        const key = canonical(v);
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      return { length: unique.length, at: (i) => copy(unique[i]) };
    }
    case 'int_uniform':
      return { length: spec.max - spec.min + 1, at: (i) => spec.min + i };
    case 'q_uniform': {
      const { min, max, q } = spec;
      return { length: Math.max(0, Math.ceil((max - min) / q)), at: (i) => tidy(min + i * q) };
    }
    default:
      throw new Error(`grid search cannot walk a ${spec.distribution} parameter`);
  }
}

/**
 * The values a leaf can produce, for domain checks: either a list (when small enough to list)
 * or an interval with an `integer` flag.
 */
export type Support =
  | { kind: 'list'; values: unknown[] }
  | { kind: 'interval'; lo: number; hi: number; loOpen: boolean; hiOpen: boolean; integer: boolean };

const LISTABLE = 10_000;

function quantizedSupport(lo: number, hi: number, q: number, loOpen = false, hiOpen = false): Support {
  const kLo = roundHalfEven(lo / q);
  const kHi = roundHalfEven(hi / q);
  if (Number.isFinite(kLo) && Number.isFinite(kHi) && kHi - kLo < LISTABLE) {
    const values: number[] = [];
    for (let k = kLo; k <= kHi; k++) values.push(tidy(k * q));
    return { kind: 'list', values };
  }
  return { kind: 'interval', lo: lo === -Infinity ? lo : tidy(kLo * q), hi: hi === Infinity ? hi : tidy(kHi * q), loOpen, hiOpen, integer: Number.isInteger(q) };
}

const interval = (lo: number, hi: number, loOpen = false, hiOpen = false, integer = false): Support => ({
  kind: 'interval',
  lo,
  hi,
  loOpen,
  hiOpen,
  integer,
});

export function support(spec: LeafParamSpec, method: 'grid' | 'random'): Support {
  switch (spec.distribution) {
    case 'constant':
      return { kind: 'list', values: [spec.value] };
    case 'categorical':
      return { kind: 'list', values: spec.values.filter((_, i) => !spec.probabilities || spec.probabilities[i] > 0) };
    case 'int_uniform':
      if (spec.max - spec.min < LISTABLE) {
        return { kind: 'list', values: Array.from({ length: spec.max - spec.min + 1 }, (_, i) => spec.min + i) };
      }
      return interval(spec.min, spec.max, false, false, true);
    case 'q_uniform': {
      if (method === 'grid') {
        const axis = gridAxis(spec, String);
        if (axis.length <= LISTABLE) return { kind: 'list', values: Array.from({ length: axis.length }, (_, i) => axis.at(i)) };
        return interval(spec.min, axis.at(axis.length - 1) as number, false, false, Number.isInteger(spec.q) && Number.isInteger(spec.min));
      }
      return quantizedSupport(spec.min, spec.max, spec.q);
    }
    case 'uniform':
      return interval(spec.min, spec.max);
    case 'log_uniform':
      return interval(Math.exp(spec.min), Math.exp(spec.max));
    case 'log_uniform_values':
    case 'inv_log_uniform_values':
      return interval(spec.min, spec.max);
    case 'inv_log_uniform':
      return interval(Math.exp(-spec.max), Math.exp(-spec.min));
    case 'q_log_uniform':
      return quantizedSupport(Math.exp(spec.min), Math.exp(spec.max), spec.q);
    case 'q_log_uniform_values':
      return quantizedSupport(spec.min, spec.max, spec.q);
    case 'normal':
      return spec.sigma === 0 ? { kind: 'list', values: [spec.mu] } : interval(-Infinity, Infinity, true, true);
    case 'q_normal':
      return spec.sigma === 0 ? { kind: 'list', values: [quantize(spec.mu, spec.q)] } : quantizedSupport(-Infinity, Infinity, spec.q, true, true);
    case 'log_normal':
      return spec.sigma === 0 ? { kind: 'list', values: [Math.exp(spec.mu)] } : interval(0, Infinity, true, true);
    case 'q_log_normal':
      return spec.sigma === 0 ? { kind: 'list', values: [quantize(Math.exp(spec.mu), spec.q)] } : quantizedSupport(0, Infinity, spec.q, false, true);
    case 'beta':
      return interval(0, 1, true, true);
    case 'q_beta':
      return quantizedSupport(0, 1, spec.q);
  }
}
