/**
 * A trial's hyperparameters: the names the sweep file and `--set` use, their defaults and
 * their domains. Values not known here pass through untouched (a sweep may carry extra keys).
 */
import { UserError } from '../util/errors.ts';

export interface TrainParams {
  kernel_size: number;
  alpha: number;
  dropout: number;
  lr: number;
  batch_size: number;
  pretrain_epochs: number;
  gru_epochs: number;
  patience: number;
  seed: number;
  width: number;
  /** GRU-phase epochs during which the pretrained CNN is not updated. */
  freeze_epochs: number;
  /** Images per forward/backward pass; gradients are accumulated up to batch_size. 0 = auto. */
  micro_batch: number;
  /** Share of the training set held out for validation when no val set is given. */
  val_fraction: number;
}

export const DEFAULT_PARAMS: TrainParams = {
  kernel_size: 3,
  alpha: 1e-4,
  dropout: 0.2,
  lr: 1e-3,
  batch_size: 32,
  pretrain_epochs: 10,
  gru_epochs: 10,
  patience: 3,
  seed: 0,
  width: 1,
  freeze_epochs: 0,
  micro_batch: 0,
  val_fraction: 0.1,
};

type Check = (v: number) => boolean;
const int: Check = (v) => Number.isInteger(v);
export const PARAM_DOMAINS: Record<keyof TrainParams, { check: Check; expected: string }> = {
  kernel_size: { check: (v) => int(v) && v > 0 && v % 2 === 1, expected: 'a positive odd integer' },
  alpha: { check: (v) => v >= 0, expected: 'a number >= 0' },
  dropout: { check: (v) => v >= 0 && v < 1, expected: 'a number in [0, 1)' },
  lr: { check: (v) => v > 0, expected: 'a number > 0' },
  batch_size: { check: (v) => int(v) && v >= 1, expected: 'an integer >= 1' },
  pretrain_epochs: { check: (v) => int(v) && v >= 0, expected: 'an integer >= 0' },
  gru_epochs: { check: (v) => int(v) && v >= 0, expected: 'an integer >= 0' },
  patience: { check: (v) => int(v) && v >= 1, expected: 'an integer >= 1' },
  seed: { check: int, expected: 'an integer' },
  width: { check: (v) => v > 0 && v <= 4, expected: 'a number in (0, 4]' },
  freeze_epochs: { check: (v) => int(v) && v >= 0, expected: 'an integer >= 0' },
  micro_batch: { check: (v) => int(v) && v >= 0, expected: 'an integer >= 0 (0 = auto)' },
  val_fraction: { check: (v) => v > 0 && v < 1, expected: 'a number in (0, 1)' },
};

export function isTrainParam(key: string): key is keyof TrainParams {
  return Object.hasOwn(DEFAULT_PARAMS, key);
}

/** Why a value is outside a known parameter's domain, or null. */
export function paramProblem(key: string, value: unknown): string | null {
  if (!isTrainParam(key)) return null;
  const d = PARAM_DOMAINS[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || !d.check(value)) {
    return `${key} must be ${d.expected}, got ${JSON.stringify(value)}`;
  }
  return null;
}

/** Fills defaults and validates; `source` names where the values came from, for errors. */
export function resolveParams(values: Record<string, unknown>, source = 'parameters'): TrainParams & Record<string, unknown> {
  const out: Record<string, unknown> = { ...DEFAULT_PARAMS, ...values };
  const problems = Object.keys(out)
    .map((k) => paramProblem(k, out[k]))
    .filter((p): p is string => p !== null);
  if (problems.length) throw new UserError(`${source}: ${problems.join('; ')}`);
  return out as TrainParams & Record<string, unknown>;
}

/** Parses `--set key=value` pairs; numbers become numbers, `true`/`false` booleans. */
export function parseSetArgs(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError(`--set ${pair}: expected key=value`);
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    let value: unknown = raw;
    if (raw === 'true' || raw === 'false') value = raw === 'true';
    else if (raw !== '' && Number.isFinite(Number(raw))) value = Number(raw);
    out[key] = value;
  }
  return out;
}
