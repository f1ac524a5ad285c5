/**
 * A trial's hyperparameters: the names the sweep file and `--set` use, their defaults and
 * their domains. A name not known here is refused where a user writes it (the sweep file,
 * `--set`), except bookkeeping names (`x_...`), which never reach the trainer.
 */
import { UserError } from '../util/errors.ts';
import { didYouMean } from '../util/nearest.ts';
import { PADDINGS, type Padding } from './geometry.ts';

/** A parameter's domain; `expected` is how it reads in a message ("a number > 0"). */
export interface Domain {
  integer?: boolean;
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  /** A word parameter: its value is one of these (the numeric bounds do not apply). */
  choices?: readonly string[];
  expected: string;
}

export interface TrainerParam extends Domain {
  default: number | string;
  doc: string;
  /**
   * Added after sweeps were launched: at its default it stays out of a trial's params, and so
   * out of its id, which keeps the ids of earlier sweeps and a relaunch from duplicating them.
   */
  omitAtDefault?: boolean;
}

/**
 * The trainer's hyperparameters: the one table of their names, defaults and domains. The
 * sweep file schema (src/sweep/schema.ts) checks `train:` and `parameters:` against it.
 */
export const TRAINER_PARAMS = {
  // The sweep's image size bounds it (checked in src/sweep/schema.ts); even sizes pad 'same' as Keras does.
  kernel_size: { integer: true, min: 1, default: 3, expected: 'an integer >= 1', doc: 'convolution kernel size' },
  kernel_width: { integer: true, min: 0, default: 0, expected: 'an integer >= 0 (0 = kernel_size)', doc: 'convolution kernel width (across the image); kernel_size is then its height; 0 = square', omitAtDefault: true },
  padding: { choices: PADDINGS, default: 'report' as Padding, expected: '`report` or `same`', doc: "each conv block's first conv: `report` = 'valid' as the report's model (kernels up to 4 on 60x200 images), `same` = 'same' (any kernel up to the image's size)", omitAtDefault: true },
  alpha: { min: 0, default: 1e-4, expected: 'a number >= 0', doc: 'L2 weight decay coefficient' },
  dropout: { min: 0, max: 1, maxExclusive: true, default: 0.2, expected: 'a number in [0, 1)', doc: 'dropout rate' },
  lr: { min: 0, minExclusive: true, default: 1e-3, expected: 'a number > 0', doc: 'Adam learning rate' },
  lr_decay: { min: 0, minExclusive: true, max: 1, default: 1, expected: 'a number in (0, 1]', doc: 'learning-rate factor per epoch: epoch e of a phase uses lr * lr_decay^e (1 = constant)', omitAtDefault: true },
  lr_cosine: { integer: true, min: 0, max: 2, default: 0, expected: '0, 1 or 2', doc: 'per-step half-cosine anneal: within a phase the learning rate also falls step by step along a half cosine, from its epoch value at the phase\'s first step towards 0 after its last configured epoch (pretrain_epochs, gru_epochs); 1 = in both phases, 2 = in the GRU phase only, 0 = off', omitAtDefault: true },
  precise_bn: { integer: true, min: 0, default: 0, expected: 'an integer >= 0 (0 = off)', doc: 'training images over which every BatchNorm layer\'s mean and variance are re-estimated after each epoch, before validation and checkpoint (0 = keep the moving averages)', omitAtDefault: true },
  batch_size: { integer: true, min: 1, default: 32, expected: 'an integer >= 1', doc: 'images per optimizer step' },
  pretrain_epochs: { integer: true, min: 0, default: 10, expected: 'an integer >= 0', doc: 'CNN-only epochs' },
  gru_epochs: { integer: true, min: 0, default: 10, expected: 'an integer >= 0', doc: 'CNN+GRU epochs' },
  patience: { integer: true, min: 1, default: 3, expected: 'an integer >= 1', doc: 'epochs without improvement before a phase stops' },
  width: { min: 0, minExclusive: true, max: 4, default: 1, expected: 'a number in (0, 4]', doc: 'filter multiplier (1 = the report model)' },
  freeze_epochs: { integer: true, min: 0, default: 0, expected: 'an integer >= 0', doc: 'GRU-phase epochs with the CNN not updated' },
  micro_batch: { integer: true, min: 0, default: 0, expected: 'an integer >= 0 (0 = auto)', doc: 'images per forward/backward pass; gradients accumulate up to batch_size' },
  val_fraction: { min: 0, minExclusive: true, max: 1, maxExclusive: true, default: 0.1, expected: 'a number in (0, 1)', doc: 'share held out for validation when no val set is given' },
  seed: { integer: true, default: 0, expected: 'an integer', doc: 'trial seed (weights init, data order, dropout)' },
  // Augmentation of training images (data/augment.ts), drawn per (seed, phase, epoch, image); 0 = off.
  aug_rotate: { min: 0, max: 45, default: 0, expected: 'a number of degrees in [0, 45]', doc: 'augmentation: rotation, uniform in +-aug_rotate degrees', omitAtDefault: true },
  aug_shear: { min: 0, max: 1, default: 0, expected: 'a number in [0, 1]', doc: 'augmentation: horizontal shear factor, uniform in +-aug_shear', omitAtDefault: true },
  aug_scale: { min: 0, max: 0.5, default: 0, expected: 'a number in [0, 0.5]', doc: 'augmentation: scale, uniform in 1 +- aug_scale', omitAtDefault: true },
  aug_shift: { min: 0, max: 50, default: 0, expected: 'a number of pixels in [0, 50]', doc: 'augmentation: shift, uniform in +-aug_shift pixels across and down', omitAtDefault: true },
  aug_contrast: { min: 0, max: 1, maxExclusive: true, default: 0, expected: 'a number in [0, 1)', doc: 'augmentation: contrast factor 1 +- aug_contrast and brightness +- aug_contrast/4 of full scale', omitAtDefault: true },
  aug_color: { min: 0, max: 1, maxExclusive: true, default: 0, expected: 'a number in [0, 1)', doc: 'augmentation: a gain of 1 +- aug_color per colour channel', omitAtDefault: true },
  aug_noise: { min: 0, max: 0.5, default: 0, expected: 'a number in [0, 0.5]', doc: 'augmentation: Gaussian noise, standard deviation up to aug_noise of full scale (uniform per image)', omitAtDefault: true },
  aug_jpeg: { min: 0, max: 1, default: 0, expected: 'a probability in [0, 1]', doc: 'augmentation: share of images re-encoded as JPEG at a quality from 30 to 90', omitAtDefault: true },
  aug_after: { integer: true, min: 0, default: 0, expected: 'an integer >= 0', doc: 'augmentation starts after this many epochs of the trial, pretrain epochs (as configured) counted first: 0 = from the start, pretrain_epochs = clean pretraining, augmented GRU phase', omitAtDefault: true },
} as const satisfies Record<string, TrainerParam>;

/** The augmentation hyperparameters, in the order data/augment.ts draws them. */
export const AUGMENT_PARAMS = ['aug_rotate', 'aug_shear', 'aug_scale', 'aug_shift', 'aug_contrast', 'aug_color', 'aug_noise', 'aug_jpeg'] as const;
export type AugmentSpec = Record<(typeof AUGMENT_PARAMS)[number], number>;

/** The trial's augmentation, or null when every augmentation parameter is 0 (off). */
export function augmentSpec(params: Partial<Record<string, unknown>>): AugmentSpec | null {
  const spec = Object.fromEntries(AUGMENT_PARAMS.map((k) => [k, Number(params[k] ?? 0)])) as AugmentSpec;
  return AUGMENT_PARAMS.some((k) => spec[k] !== 0) ? spec : null;
}

/**
 * What a training epoch augments with: the trial's augmentation once `aug_after` epochs of the
 * trial are behind it (pretrain epochs as configured, then GRU epochs), else null (clean images).
 * A curriculum: data as varied as many fonts plus every augmentation can hold a model at chance
 * from the first step; a few clean epochs give it features to start from.
 */
export function epochAugment(params: Partial<Record<string, unknown>>, phase: 'pretrain' | 'gru', epoch: number): AugmentSpec | null {
  const index = (phase === 'gru' ? Number(params.pretrain_epochs ?? 0) : 0) + epoch;
  return index >= Number(params.aug_after ?? 0) ? augmentSpec(params) : null;
}

export type TrainerParamName = keyof typeof TRAINER_PARAMS;

/**
 * The domains a sweep file is checked against one parameter at a time. A kernel must also fit
 * the sweep's images (its `train: {image}`, and how `padding` shrinks the maps), which depends
 * on other keys: src/sweep/schema.ts checks that across keys.
 */
export const SWEEP_PARAM_DOMAINS: Record<TrainerParamName, Domain> = TRAINER_PARAMS;
/** Word parameters (`padding`) hold strings; the rest are numbers. */
export type TrainParams = { [K in Exclude<TrainerParamName, 'padding'>]: number } & { padding: Padding };

export const DEFAULT_PARAMS = Object.fromEntries(
  Object.entries(TRAINER_PARAMS).map(([k, d]) => [k, d.default]),
) as TrainParams;

export function isTrainerParam(key: string): key is TrainerParamName {
  return Object.hasOwn(TRAINER_PARAMS, key);
}

/** Why `v` is outside `d`, or null when it is inside. */
export function domainViolation(d: Domain, v: unknown): string | null {
  const bad = () => `must be ${d.expected}`;
  if (d.choices) return typeof v === 'string' && d.choices.includes(v) ? null : bad();
  if (typeof v !== 'number' || !Number.isFinite(v)) return bad();
  if (d.integer && !Number.isInteger(v)) return bad();
  if (d.min !== undefined && (d.minExclusive ? v <= d.min : v < d.min)) return bad();
  if (d.max !== undefined && (d.maxExclusive ? v >= d.max : v > d.max)) return bad();
  return null;
}

/**
 * Names a sweep may carry for its own bookkeeping (a tag, a note, an index into another
 * table): they start with `x_`. They are part of a trial's params, and so of its id when
 * swept, but the trainer never sees them.
 */
export const BOOKKEEPING_PREFIX = 'x_';

export function isBookkeeping(key: string): boolean {
  return key.startsWith(BOOKKEEPING_PREFIX);
}

/** "unknown parameter `widht`; did you mean `width`? The trainer takes: ...; ..." */
export function unknownParamMessage(key: string, known: readonly string[] = Object.keys(TRAINER_PARAMS)): string {
  return (
    `unknown parameter \`${key}\`${didYouMean(key, known) || ';'} The trainer takes: ${known.join(', ')}; ` +
    `a value kept for the sweep's own bookkeeping goes under a name starting with ${BOOKKEEPING_PREFIX}`
  );
}

/** Refuses names the trainer does not know (a typo would train the default instead). */
export function checkParamNames(values: Record<string, unknown>, source: string): void {
  const unknown = Object.keys(values).filter((k) => !isTrainerParam(k) && !isBookkeeping(k));
  if (unknown.length) throw new UserError(unknown.map((k) => `${source} ${k}: ${unknownParamMessage(k)}`).join('\n'));
}

/** Why a value is outside a known parameter's domain, or null. */
export function paramProblem(key: string, value: unknown): string | null {
  if (!isTrainerParam(key)) return null;
  const why = domainViolation(TRAINER_PARAMS[key], value);
  return why && `${key} ${why}, got ${JSON.stringify(value)}`;
}

/**
 * Fills defaults and validates; `source` names where the values came from, for errors.
 * Bookkeeping values are left out; other names not known here pass through untouched (a
 * trial stored before unknown names were refused may hold some).
 */
export function resolveParams(values: Record<string, unknown>, source = 'parameters'): TrainParams & Record<string, unknown> {
  const out: Record<string, unknown> = { ...DEFAULT_PARAMS };
  for (const [k, v] of Object.entries(values)) if (!isBookkeeping(k)) out[k] = v;
  const problems = Object.keys(out)
    .map((k) => paramProblem(k, out[k]))
    .filter((p): p is string => p !== null);
  if (problems.length) throw new UserError(`${source}: ${problems.join('; ')}`);
  return out as TrainParams & Record<string, unknown>;
}

/**
 * Parses `--set key=value` pairs; numbers become numbers, `true`/`false` booleans. A key the
 * trainer does not know is refused (bookkeeping `x_` keys aside, which the trainer ignores).
 */
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
  checkParamNames(out, '--set');
  return out;
}
