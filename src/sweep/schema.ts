/**
 * The sweep file schema: the single source of truth for what a sweep file may contain, the
 * defaults filled in, and the domains of the trainer's hyperparameters. A superset of the W&B
 * sweep configuration (wandb/sweeps config/schema.json) for the `grid` and `random` methods,
 * plus `seed` and a `train:` block of our own.
 *
 * Parameter names. With `trainer: true` (every command that plans or trains a sweep), a name
 * under `parameters:` must be one of the trainer's (TRAINER_PARAMS), or start with `x_`: the
 * one documented way for a sweep to carry values for its own bookkeeping (a tag, a note, a
 * group of values under `x_...: {parameters: ...}`). Such values are part of a trial's params,
 * so a swept `x_` value gives each value its own trial id, but the trainer never sees them
 * (resolveParams drops them). Without `trainer`, any W&B-valid name is read, as W&B would.
 *
 * Each parameter's spec is told apart the way W&B does (inferSpec), then checked against its
 * distribution's own schema, so that an error names the distribution the user meant instead
 * of listing why each of twenty alternatives failed. Issues this file words itself carry
 * their message; those zod raises are worded by messages.ts; parse.ts only places them.
 */
import { z } from 'zod';
import {
  BOOKKEEPING_PREFIX,
  SWEEP_PARAM_DOMAINS,
  TRAINER_PARAMS,
  domainViolation,
  isBookkeeping,
  isTrainerParam,
  unknownParamMessage,
  type Domain,
  type TrainerParam,
  type TrainerParamName,
} from '../train/params.ts';
import { maxKernelExtent, maxKernelSize, type Padding } from '../train/geometry.ts';
import { DEFAULT_SHAPE, LABEL_CASES, MAX_LABEL_LENGTH, MIN_IMAGE_SIDE, labelSpec, shapeParams, type DataShape } from '../train/shape.ts';
import { sizeProblem, specProblem } from '../train/draw-limits.ts';
import { didYouMean } from '../util/nearest.ts';
import { support } from './distributions.ts';
import { describeValue, unknownKeyMessage, type KeyPath } from './errors.ts';
import {
  DISTRIBUTION_NAMES,
  DISTRIBUTIONS,
  GRID_DISTRIBUTIONS,
  PARAMETER_NAME,
  mapping,
  plainValue,
  type DistributionName,
  type LeafParamSpec,
  type ParamSpec,
} from './param-schema.ts';
import { writtenAsFloat } from './source.ts';
import { gridSize } from './space.ts';

export { SWEEP_PARAM_DOMAINS, TRAINER_PARAMS, BOOKKEEPING_PREFIX, domainViolation, isTrainerParam, type Domain, type TrainerParamName } from '../train/params.ts';
export {
  DISTRIBUTIONS,
  DISTRIBUTION_NAMES,
  GRID_DISTRIBUTIONS,
  PARAMETER_NAME,
  type DistributionName,
  type LeafParamSpec,
  type NestedParamSpec,
  type ParamSpec,
} from './param-schema.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const int = z.number().int();

/**
 * Extra fields an issue raised here may carry for parse.ts: `at`, a sibling key to show the
 * problem at instead of its own (absent) key; `say`, a message that needs the issue's key path.
 */
export interface IssuePlacement {
  at?: KeyPath;
  say?: (path: KeyPath) => string;
}

function domainSchema(name: string, d: Domain) {
  return z.number().superRefine((v, ctx) => {
    const why = domainViolation(d, v);
    if (why) ctx.addIssue({ code: 'custom', message: `${v} is not a valid ${name}: ${why}` });
  });
}

/** A word parameter (`padding`): one of its choices. */
function choiceSchema(name: string, d: Domain & { choices: readonly string[] }) {
  return z.string({ error: () => `must be ${d.expected}` }).superRefine((v, ctx) => {
    const why = domainViolation(d, v);
    if (why) ctx.addIssue({ code: 'custom', message: `${describeValue(v)} is not a valid ${name}: ${why}` });
  });
}

export const METHODS = ['grid', 'random'] as const;
export type Method = (typeof METHODS)[number];
const WANDB_ONLY_METHODS: readonly unknown[] = ['bayes', 'custom'];

const MethodSchema = z.enum(METHODS, {
  error: (iss) => (WANDB_ONLY_METHODS.includes(iss.input) ? `\`${iss.input}\` is a W&B method this tool does not run; use grid or random` : undefined),
});

/** More trials than this in a grid without run_cap is almost surely a mistake in the file. */
export const MAX_GRID_TRIALS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// One parameter's spec.

const SPEC_FORMS = '{values: [...]}, {value: x}, {min: a, max: b} or {distribution: ..., ...}';

/** W&B: integer min and max mean int_uniform, otherwise uniform. `1.0` counts as a float. */
const writtenAsInt = (raw: Obj, key: string) => Number.isInteger(raw[key]) && !writtenAsFloat(raw, key);

/**
 * Which distribution a spec means, as W&B tells (an explicit `distribution`, else `values`,
 * `value`, `min`/`max`, or a nested `parameters` group), with `distribution` filled in; and
 * whether grid search can walk it. Issues make the spec fail here, before its own schema.
 */
function inferSpec(method: Method | undefined) {
  return (raw: unknown, ctx: z.core.$RefinementCtx<unknown>): unknown => {
    const fail = (message: string, path: KeyPath = []) => {
      ctx.addIssue({ code: 'custom', path: [...path], input: raw, message });
      return raw;
    };
    if (!isObj(raw)) {
      const say = (path: KeyPath) => {
        const hint = raw !== null && typeof raw !== 'object' ? `; for a fixed value write \`${String(path.at(-1))}: {value: ${JSON.stringify(raw)}}\`` : '';
        return `expected a parameter spec such as ${SPEC_FORMS}, got ${describeValue(raw)}${hint}`;
      };
      ctx.addIssue({ code: 'custom', input: raw, params: { say } satisfies IssuePlacement });
      return raw;
    }

    let dist: DistributionName;
    if ('distribution' in raw) {
      const d = raw.distribution;
      if (typeof d !== 'string' || !(DISTRIBUTION_NAMES as string[]).includes(d)) {
        const near = typeof d === 'string' ? didYouMean(d, DISTRIBUTION_NAMES) : '';
        return fail(`unknown distribution ${typeof d === 'string' ? `\`${d}\`` : describeValue(d)}${near} Known: ${DISTRIBUTION_NAMES.join(', ')}`, ['distribution']);
      }
      dist = d as DistributionName;
      // A superset of W&B: `distribution: categorical` may carry probabilities.
      if (dist === 'categorical' && 'probabilities' in raw) dist = 'categorical_w_probabilities';
    } else if ('parameters' in raw) {
      const extra = Object.keys(raw).filter((k) => k !== 'parameters');
      for (const k of extra) fail(`${unknownKeyMessage(k, ['parameters'])} (a nested group of parameters)`, [k]);
      return { distribution: 'nested', parameters: raw.parameters };
    } else if ('values' in raw) {
      dist = 'probabilities' in raw ? 'categorical_w_probabilities' : 'categorical';
    } else if ('value' in raw) {
      dist = 'constant';
    } else if ('min' in raw || 'max' in raw) {
      dist = writtenAsInt(raw, 'min') && writtenAsInt(raw, 'max') ? 'int_uniform' : 'uniform';
    } else {
      return fail(`cannot tell the distribution: give ${SPEC_FORMS}`);
    }

    if (dist === 'constant' && !('value' in raw)) {
      ctx.addIssue({ code: 'custom', path: ['value'], input: undefined, message: 'required: a constant parameter needs value' });
      return raw;
    }
    if (method === 'grid') {
      const name = dist === 'categorical_w_probabilities' ? 'categorical' : dist;
      if (!GRID_DISTRIBUTIONS.has(name)) {
        return fail(
          `grid search needs a finite list of values: use values, value, int_uniform or q_uniform; ${name} is continuous (use values: [...] or method: random)`,
          'distribution' in raw ? ['distribution'] : [],
        );
      }
      if (dist === 'categorical_w_probabilities') {
        return fail('grid search tries every value, so probabilities do not apply; remove them or use method: random', ['probabilities']);
      }
    }
    return { ...raw, distribution: dist };
  };
}

/** A parameter spec, for a sweep searched by `method` (unknown when the file's is invalid). */
function paramSpecSchema(method: Method | undefined): z.ZodType<ParamSpec> {
  const nested = z.strictObject({ distribution: z.literal('nested'), parameters: z.lazy(() => parametersSchema(method, false)) });
  const specs = z.discriminatedUnion('distribution', [...Object.values(DISTRIBUTIONS), nested] as unknown as [typeof nested]);
  return z.preprocess(inferSpec(method), specs) as unknown as z.ZodType<ParamSpec>;
}

// ---------------------------------------------------------------------------------------------
// The parameters block: names, and the trainer's domains.

/** `trainer`: only the trainer's names and `x_` ones (see the top of this file). */
function parameterName(trainer: boolean) {
  return z.string().superRefine((name, ctx) => {
    if (!PARAMETER_NAME.test(name)) {
      ctx.addIssue({ code: 'custom', message: `\`${name}\` is not a valid parameter name: start with a letter or _, then letters, digits, _ . or -` });
    } else if (trainer && !isTrainerParam(name) && !isBookkeeping(name)) {
      ctx.addIssue({ code: 'custom', message: unknownParamMessage(name) });
    }
  });
}

const parametersError = (iss: { code?: string; input?: unknown }) => {
  if (iss.code !== 'invalid_type') return undefined;
  if (iss.input === undefined) return 'required: the parameters to sweep (W&B requires it too)';
  return `expected a mapping from parameter names to specs, got ${describeValue(iss.input)}`;
};

const parametersCache = new Map<string, z.ZodType<Record<string, ParamSpec>>>();

/**
 * `top`: the sweep's own parameters, whose names are the trainer's (nested groups hold
 * anything); every value a trainer parameter's spec can produce must be in its domain.
 */
function parametersSchema(method: Method | undefined, top: boolean, trainer = false): z.ZodType<Record<string, ParamSpec>> {
  const key = `${method}|${top}|${trainer}`;
  const cached = parametersCache.get(key);
  if (cached) return cached;
  const schema = z.record(parameterName(top && trainer), paramSpecSchema(method), { error: parametersError }).superRefine(
    (params, ctx) => {
      if (!isObj(params)) return;
      if (Object.keys(params).length === 0 && ctx.issues.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one parameter' });
      if (!top) return;
      // Only specs that parsed: a name with a problem of its own is not checked further.
      const failed = new Set(ctx.issues.map((i) => i.path?.[0]));
      for (const [name, spec] of Object.entries(params)) {
        if (failed.has(name) || !isTrainerParam(name)) continue;
        for (const { path, message } of domainProblems(name, SWEEP_PARAM_DOMAINS[name], spec, method)) {
          ctx.addIssue({ code: 'custom', path: [name, ...path], message });
        }
      }
    },
    { when: () => true },
  );
  parametersCache.set(key, schema);
  return schema;
}

/** Every value a trainer parameter's spec can produce must be valid for the trainer. */
function domainProblems(name: string, d: Domain, spec: ParamSpec, method: Method | undefined): Array<{ path: KeyPath; message: string }> {
  const out: Array<{ path: KeyPath; message: string }> = [];
  const bad = (path: KeyPath, message: string) => out.push({ path, message });
  if (spec.distribution === 'nested') {
    bad([], `${name} is a trainer parameter and must be ${d.expected}, not a nested group`);
  } else if (spec.distribution === 'constant') {
    const why = domainViolation(d, spec.value);
    if (why) bad(['value'], `${describeValue(spec.value)} is not a valid ${name}: ${why}`);
  } else if (spec.distribution === 'categorical') {
    spec.values.forEach((v, i) => {
      const why = domainViolation(d, v);
      if (why) bad(['values', i], `${describeValue(v)} is not a valid ${name}: ${why}`);
    });
  } else {
    const s = support(spec, method ?? 'random');
    const what = describeSpec(spec);
    if (s.kind === 'list') {
      const offender = s.values.find((v) => domainViolation(d, v) !== null);
      if (offender !== undefined) bad([], `${what} can produce ${describeValue(offender)}, but ${name} must be ${d.expected}`);
    } else if (d.integer && !s.integer) {
      bad([], `${what} produces non-integers, but ${name} must be ${d.expected}; use int_uniform or values`);
    } else {
      const at = (end: 'min' | 'max'): KeyPath => ('min' in spec ? [end] : []);
      if (d.min !== undefined && (s.lo < d.min || (s.lo === d.min && d.minExclusive && !s.loOpen))) {
        bad(at('min'), `${what} can produce ${fmt(s.lo)}, but ${name} must be ${d.expected}`);
      }
      if (d.max !== undefined && (s.hi > d.max || (s.hi === d.max && d.maxExclusive && !s.hiOpen))) {
        bad(at('max'), `${what} can produce ${fmt(s.hi)}, but ${name} must be ${d.expected}`);
      }
    }
  }
  return out;
}

const fmt = (x: number) => (Number.isFinite(x) ? String(+x.toPrecision(6)) : x > 0 ? 'arbitrarily large values' : 'arbitrarily small values');

function describeSpec(spec: LeafParamSpec): string {
  if ('min' in spec && 'max' in spec) return `${spec.distribution} from ${spec.min} to ${spec.max}`;
  return spec.distribution;
}

// ---------------------------------------------------------------------------------------------
// Metric and early termination.

export const MetricSchema = mapping(
  {
    name: z.string().min(1),
    goal: z.enum(['minimize', 'maximize']).default('minimize'),
    /** The sweep is done once any trial reaches this value. */
    target: z.number().optional(),
    // W&B bayes-only keys, accepted so W&B files load unchanged.
    impute: z.enum(['latest', 'best', 'worst']).optional(),
    impute_while_running: z.enum(['latest', 'best', 'worst', 'false']).optional(),
  },
  'in metric',
);

/** The metric that ranks a sweep's trials. */
export type SweepMetric = Pick<z.output<typeof MetricSchema>, 'name' | 'goal'>;
export type Goal = SweepMetric['goal'];

export { DEFAULT_METRIC } from './default-metric.ts';

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
    .describe('for hyperband early termination')
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
  median: mapping(
    {
      type: z.literal('median'),
      /** Iterations every trial runs before it can be stopped. */
      min_iter: int.gte(1).default(1),
      /** Trials that must have reported at an iteration before any is stopped there. */
      min_trials: int.gte(1).default(5),
      /** Check every this many iterations. */
      interval: int.gte(1).default(1),
    },
    'for median early termination',
  ),
} as const;

export type EarlyTerminate = z.output<(typeof EARLY_TERMINATE)[keyof typeof EARLY_TERMINATE]>;

const STOPPING_RULES = Object.keys(EARLY_TERMINATE);

/** A mapping with a known `type`, told apart before its rule's own schema checks it. */
const EarlyTerminateSchema = z.preprocess(
  (raw, ctx) => {
    if (!isObj(raw)) {
      ctx.addIssue({ code: 'custom', input: raw, message: `expected a mapping such as {type: hyperband, min_iter: 3}, got ${describeValue(raw)}` });
    } else if (raw.type === undefined) {
      ctx.addIssue({ code: 'custom', input: raw, message: `required: type (one of ${STOPPING_RULES.join(', ')})` });
    } else if (typeof raw.type !== 'string' || !STOPPING_RULES.includes(raw.type)) {
      const near = typeof raw.type === 'string' ? didYouMean(raw.type, STOPPING_RULES) : '';
      ctx.addIssue({ code: 'custom', path: ['type'], input: raw.type, message: `unknown type ${describeValue(raw.type)}${near} Known: ${STOPPING_RULES.join(', ')}` });
    }
    return raw;
  },
  z.discriminatedUnion('type', [EARLY_TERMINATE.hyperband, EARLY_TERMINATE.median]),
);

// ---------------------------------------------------------------------------------------------
// The train block.

/** The generator's font names (data/generate/fonts.ts FONT_NAMES; a test keeps the two equal). */
export const GENERATOR_FONTS = [
  'serif', 'mono', 'sans', 'noto-serif', 'open-sans', 'plex-mono', 'roboto-slab',
  'merriweather', 'pt-serif', 'libre-baskerville', 'lato', 'ubuntu', 'montserrat', 'source-code-pro', 'fira-mono', 'zilla-slab',
] as const;

const FONTS_EXPECTED = `all, or a list of fonts from: ${GENERATOR_FONTS.join(', ')}`;
/** `all` or a non-empty list of known font names, each problem told with its place. */
const FontsSchema = z.preprocess(
  (raw, ctx) => {
    if (raw === 'all') return raw;
    if (!Array.isArray(raw) || raw.length === 0) {
      ctx.addIssue({ code: 'custom', input: raw, message: `expected ${FONTS_EXPECTED}; got ${describeValue(raw)}` });
      return raw;
    }
    raw.forEach((name, i) => {
      if (typeof name !== 'string' || !(GENERATOR_FONTS as readonly string[]).includes(name)) {
        const near = typeof name === 'string' ? didYouMean(name, GENERATOR_FONTS) : '';
        ctx.addIssue({ code: 'custom', path: [i], input: name, message: `unknown font ${typeof name === 'string' ? JSON.stringify(name) : describeValue(name)}${near || ';'} Known: ${GENERATOR_FONTS.join(', ')}` });
      }
    });
    return raw;
  },
  z.union([z.literal('all'), z.array(z.enum(GENERATOR_FONTS)).min(1)]),
);

export const GenerateSchema = mapping(
  {
    style: z.enum(['railway', 'hard']),
    count: int.gte(1),
    seed: int.default(0),
    /** How letters are drawn: lower (as labelled), upper, or mixed; labels stay as they are. */
    case: z.enum(['lower', 'upper', 'mixed']).optional(),
    /** Fonts to draw in instead of the style's own: `all`, or a list (data/generate/fonts.ts's names). */
    fonts: FontsSchema.optional(),
  },
  'for generated CAPTCHAs',
);
export type GenerateSpec = z.output<typeof GenerateSchema>;

/** A dataset directory, or CAPTCHAs to generate. */
const DataSource = z.union([z.string().min(1), GenerateSchema]);
export type DataSourceSpec = z.output<typeof DataSource>;

/** `image:` of the train block: the size every image of the sweep's data has. */
const ImageSchema = mapping(
  {
    height: int.gte(MIN_IMAGE_SIDE, { error: `must be an integer >= ${MIN_IMAGE_SIDE} (pixels)` }),
    width: int.gte(MIN_IMAGE_SIDE, { error: `must be an integer >= ${MIN_IMAGE_SIDE} (pixels)` }),
  },
  'in train.image',
);

/** `label:` of the train block: characters per label, the alphabet, and how letter case is read (train/shape.ts). */
const LabelSchema = mapping(
  {
    length: int.gte(1).lte(MAX_LABEL_LENGTH).default(DEFAULT_SHAPE.label.length),
    charset: z.string().min(1).default('0-9a-z'),
    case: z.enum(LABEL_CASES).default('lower'),
  },
  'in train.label',
).superRefine((v, ctx) => {
  try {
    labelSpec(v.length, v.charset, v.case);
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['charset'], message: (err as Error).message });
  }
});

const NOT_IN_TRAIN_BLOCK = new Set(['seed', 'val_fraction', 'micro_batch']);
const hyperparameterDefaults = Object.fromEntries(
  Object.entries(TRAINER_PARAMS)
    // the top-level `seed` is the default seed; val_fraction depends on `val` (below);
    // micro_batch is a memory setting, not part of a trial's identity
    .filter(([name]) => !NOT_IN_TRAIN_BLOCK.has(name))
    .map(([name, d]) => {
      const domain = SWEEP_PARAM_DOMAINS[name as TrainerParamName];
      return [name, domain.choices ? choiceSchema(name, { ...domain, choices: domain.choices }).default(String(d.default)) : domainSchema(name, domain).default(Number(d.default))];
    }),
) as unknown as { [K in Exclude<TrainerParamName, 'seed' | 'val_fraction' | 'micro_batch' | 'padding'>]: z.ZodDefault<z.ZodNumber> } & { padding: z.ZodDefault<z.ZodType<Padding>> };

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
    /** The data's shape; absent: the report's (60x200 images, 6 characters of 0-9a-z). */
    image: ImageSchema.optional(),
    label: LabelSchema.optional(),
  })
  .describe('in the train block')
  .superRefine((v, ctx) => {
    if (v.data !== undefined && v.generate !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['generate'], message: 'give either data (a directory) or generate, not both' });
    }
    if (v.val !== undefined && v.val_fraction !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['val_fraction'], message: 'give either val or val_fraction, not both' });
    }
    // Generated data must be drawable in the declared shape: refused here, not by a worker later.
    if ([v.generate, v.val, v.test].some((d) => d !== undefined && typeof d !== 'string')) {
      let shape: DataShape;
      try {
        shape = trainShape(v);
      } catch {
        return; // the label block's own error says why
      }
      const labelProblem = v.label ? specProblem(shape.label) : null;
      const imageProblem = v.image ? sizeProblem(shape) : null;
      if (labelProblem) ctx.addIssue({ code: 'custom', path: ['label', 'charset'], message: `the generator cannot draw these labels: ${labelProblem}` });
      if (imageProblem) ctx.addIssue({ code: 'custom', path: ['image'], message: `the generator cannot draw images of this size: ${imageProblem}` });
    }
  })
  .transform((v) => (v.val === undefined ? { ...v, val_fraction: v.val_fraction ?? DEFAULT_VAL_FRACTION } : v));

export type TrainDefaults = z.output<typeof TrainSchema>;

/**
 * The hyperparameters a `train:` block gives every trial (its defaults filled in), as the
 * trainer takes them: kernel_size ... freeze_epochs, plus val_fraction when no val set is given.
 * Data sources and the backend are not hyperparameters and are left out.
 */
export function trainHyperparameters(train: TrainDefaults): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const name of TRAIN_HYPERPARAMETERS) {
    const d: TrainerParam = TRAINER_PARAMS[name];
    if (d.omitAtDefault && train[name] === d.default) continue;
    out[name] = train[name];
  }
  if (train.val_fraction !== undefined) out.val_fraction = train.val_fraction;
  return { ...out, ...shapeParams(trainShape(train)) };
}

/** The data shape a `train:` block declares (the report's where it declares none). */
export function trainShape(train: Pick<TrainDefaults, 'image' | 'label'>): DataShape {
  const image = train.image ?? DEFAULT_SHAPE;
  const label = train.label ? labelSpec(train.label.length, train.label.charset, train.label.case) : DEFAULT_SHAPE.label;
  return { height: image.height, width: image.width, label };
}

// ---------------------------------------------------------------------------------------------
// The whole file.

const fileError = (iss: { code?: string; input?: unknown }) => {
  if (iss.code !== 'invalid_type') return undefined;
  if (iss.input == null) return 'the file is empty; expected a mapping with at least method and parameters';
  return `expected a mapping at the top level, got ${describeValue(iss.input)}`;
};

/** Rules across keys; they run whatever else is wrong, so a user fixes a file in one pass. */
function acrossKeys(v: unknown, ctx: z.core.$RefinementCtx<unknown>): void {
  if (!isObj(v)) return;
  const clean = ctx.issues.length === 0;
  if (v.method === 'random' && v.run_cap === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['run_cap'],
      params: { at: ['method'] } satisfies IssuePlacement,
      message: 'required for method random: the number of trials to sample (a positive integer)',
    });
  }
  if (v.early_terminate !== undefined && v.metric === undefined) {
    ctx.addIssue({ code: 'custom', path: ['early_terminate'], message: 'early termination compares trials by a metric; add metric: {name, goal}' });
  }
  if (clean) kernelsFitImage(v, v.method as Method, ctx);
  if (v.method === 'grid' && clean && v.run_cap === undefined) {
    const size = gridSize(v.parameters as Record<string, ParamSpec>);
    if (size > MAX_GRID_TRIALS) {
      ctx.addIssue({
        code: 'custom',
        path: ['parameters'],
        message: `the grid has ${size.toLocaleString('en-US')} trials (more than ${MAX_GRID_TRIALS.toLocaleString('en-US')}); use fewer values or set run_cap`,
      });
    }
  }
}

/**
 * A kernel must fit the sweep's images (`train.image`, else 60x200): with `padding: same` up to
 * the image's size; under the report's padding (each block's first conv `valid`) only as far as
 * leaves a feature map (4 on 60x200). Where a trial may use the report's padding its kernels
 * must fit it; the message names the image size and `padding: same`, which fits larger kernels.
 */
function kernelsFitImage(v: Obj, method: Method | undefined, ctx: z.core.$RefinementCtx<unknown>): void {
  const params = isObj(v.parameters) ? (v.parameters as Record<string, ParamSpec>) : {};
  const train = isObj(v.train) ? v.train : {};
  const image = isObj(train.image) ? (train.image as { height: number; width: number }) : DEFAULT_SHAPE;
  const padding = params.padding;
  const paddings: unknown[] =
    padding?.distribution === 'constant' ? [padding.value] : padding?.distribution === 'categorical' ? padding.values : [train.padding ?? 'report'];
  const where = padding ? 'when padding is report' : 'under padding: report (the default)';
  for (const name of ['kernel_size', 'kernel_width'] as const) {
    const domains = kernelDomains(name, image, paddings.includes('report') ? where : null);
    const spec = params[name];
    for (const d of domains) {
      const found = spec
        ? domainProblems(name, d, spec, method).map((p) => ({ path: ['parameters', name, ...p.path], message: p.message }))
        : typeof train[name] === 'number' && domainViolation(d, train[name])
          ? [{ path: ['train', name], message: `${train[name]} is not a valid ${name}: ${domainViolation(d, train[name])}` }]
          : [];
      for (const f of found) ctx.addIssue({ code: 'custom', path: f.path, message: f.message });
      if (found.length) break;
    }
  }
}

/** The bounds a kernel parameter has on `image`: under `same` padding, then (`report`: where it applies) under the report's. */
function kernelDomains(name: 'kernel_size' | 'kernel_width', image: { height: number; width: number }, report: string | null): Domain[] {
  const { height: h, width: w } = image;
  const min = name === 'kernel_size' ? 1 : 0;
  const same = name === 'kernel_size' ? maxKernelSize(h, w, 'same') : maxKernelExtent(w, 'same');
  const base = SWEEP_PARAM_DOMAINS[name];
  const out: Domain[] = [
    {
      ...base,
      max: same,
      expected: name === 'kernel_size' ? `an integer from 1 to ${same} (trials train on ${h}x${w} images)` : `an integer from 0 to ${same} (0 = kernel_size; trials train on images ${w} wide)`,
    },
  ];
  if (report !== null) {
    const max = name === 'kernel_size' ? maxKernelSize(h, w) : maxKernelExtent(w);
    out.push({
      ...base,
      max,
      expected:
        `an integer from ${min} to ${max} ${report}: each block's first conv is \`valid\`, so on ${h}x${w} images a larger kernel ` +
        `leaves no feature map; set \`padding: same\` in train: to run larger kernels`,
    });
  }
  return out;
}

function buildFileSchema(method: Method | undefined, trainer: boolean) {
  return z
    .strictObject(
      {
        method: MethodSchema,
        name: z.string().min(1).optional(),
        description: z.string().optional(),
        metric: MetricSchema.optional(),
        parameters: parametersSchema(method, true, trainer),
        /** At most this many trials; required for random (the list of trials must be finite). */
        run_cap: int.gt(0).optional(),
        early_terminate: EarlyTerminateSchema.optional() as z.ZodOptional<z.ZodType<EarlyTerminate>>,
        /** Seeds random sampling and is every trial's seed unless `seed` is itself swept. */
        seed: domainSchema('seed', TRAINER_PARAMS.seed).default(0),
        train: TrainSchema.prefault({}),
        // W&B keys: accepted and stored so a W&B file loads unchanged; not used here.
        program: z.string().optional(),
        command: z.array(plainValue).optional(),
        entity: z.string().optional(),
        project: z.string().optional(),
        job: z.string().optional(),
        image_uri: z.string().optional(),
        apiVersion: z.string().optional(),
        kind: z.literal('sweep').optional(),
        controller: z.looseObject({ type: z.enum(['local', 'cloud']) }).optional(),
      },
      { error: fileError },
    )
    .describe('at the top level')
    .superRefine(acrossKeys, { when: () => true });
}

type SweepFileOutput = z.output<ReturnType<typeof buildFileSchema>>;

/** A validated sweep file with every default filled in. */
export interface SweepSpec extends Omit<SweepFileOutput, 'name'> {
  /** The file it came from, as given. */
  file: string;
  /** `name:`, else the file's base name without extension. Part of every trial id. */
  name: string;
}

export interface SweepFileOptions {
  /**
   * Refuse a parameter name the trainer does not know (other than `x_` bookkeeping names):
   * what every command that plans or trains a sweep wants. Unset, names are free, as in W&B.
   */
  trainer?: boolean;
}

const fileSchemas = new Map<string, ReturnType<typeof buildFileSchema>>();

/**
 * The schema a sweep file is checked against. Its parameters' rules depend on its method
 * (grid search needs finite lists), so the schema is chosen by the file's `method:`.
 */
export function sweepFileSchema(raw: unknown, options: SweepFileOptions = {}): ReturnType<typeof buildFileSchema> {
  const m = isObj(raw) ? raw.method : undefined;
  const method = (METHODS as readonly unknown[]).includes(m) ? (m as Method) : undefined;
  const trainer = options.trainer ?? false;
  const key = `${method}|${trainer}`;
  let schema = fileSchemas.get(key);
  if (!schema) fileSchemas.set(key, (schema = buildFileSchema(method, trainer)));
  return schema;
}
