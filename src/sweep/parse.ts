/**
 * Sweep file -> SweepSpec. Every problem is collected (with its key path, line and column)
 * and thrown together as one SweepFileError, so a user fixes a file in one pass.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { z } from 'zod';
import { UserError } from '../util/errors.ts';
import { support, type Support } from './distributions.ts';
import {
  describeValue,
  formatPath,
  nearest,
  SweepFileError,
  unknownKeyMessage,
  type KeyPath,
  type SweepProblem,
} from './errors.ts';
import {
  DISTRIBUTION_NAMES,
  DISTRIBUTIONS,
  EARLY_TERMINATE,
  GRID_DISTRIBUTIONS,
  isTrainerParam,
  MAX_GRID_TRIALS,
  METHODS,
  PARAMETER_NAME,
  SweepFileSchema,
  SWEEP_PARAM_DOMAINS,
  domainViolation,
  type DistributionName,
  type Domain,
  type EarlyTerminate,
  type LeafParamSpec,
  type Method,
  type ParamSpec,
  type SweepSpec,
} from './schema.ts';
import { readYaml, type YamlSource } from './source.ts';
import { gridSize } from '../scheduler/grid.ts';

export async function loadSweepFile(path: string): Promise<SweepSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String((err as Error).message);
    throw new UserError(`${path}: cannot read the sweep file (${why})`);
  }
  return parseSweep(text, path);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parse and validate sweep file text. `fileName` is used in messages and for the default name. */
export function parseSweep(text: string, fileName: string): SweepSpec {
  const src = readYaml(text, fileName);
  const problems: SweepProblem[] = [];
  const report = (path: KeyPath, message: string, at: KeyPath = path) =>
    problems.push(src.problem(at, message, formatPath(path)));
  const fail = () => {
    problems.sort((a, b) => a.line - b.line || a.column - b.column);
    return new SweepFileError(problems);
  };

  const raw = src.value;
  if (!isObj(raw)) {
    report([], raw == null ? 'the file is empty; expected a mapping with at least method and parameters' : `expected a mapping at the top level, got ${describeValue(raw)}`);
    throw fail();
  }
  findNonFinite(raw, [], report);

  const top = SweepFileSchema.safeParse(raw, { reportInput: true });
  if (!top.success) zodProblems(SweepFileSchema, top.error.issues, [], report, 'at the top level');

  const method: Method | undefined = (METHODS as readonly unknown[]).includes(raw.method) ? (raw.method as Method) : undefined;
  if (raw.method === 'bayes' || raw.method === 'custom') {
    // Replace zod's generic enum message with one that says why.
    const i = problems.findIndex((p) => p.path === 'method');
    if (i >= 0) problems.splice(i, 1);
    report(['method'], `\`${raw.method}\` is a W&B method this tool does not run; use grid or random`);
  }

  const ctx: ParamContext = { src, report, method };
  const parameters = 'parameters' in raw ? parseParameters(raw.parameters, ['parameters'], ctx, 0) : undefined;
  if (!('parameters' in raw)) report(['parameters'], 'required: the parameters to sweep (W&B requires it too)', []);

  let earlyTerminate: EarlyTerminate | undefined;
  if (raw.early_terminate !== undefined) {
    earlyTerminate = parseEarlyTerminate(raw.early_terminate, ['early_terminate'], report);
    if (raw.metric === undefined) report(['early_terminate'], 'early termination compares trials by a metric; add metric: {name, goal}');
  }

  if (method === 'random' && raw.run_cap === undefined) {
    report(['run_cap'], 'required for method random: the number of trials to sample (a positive integer)', ['method']);
  }
  if (method === 'grid' && parameters && problems.length === 0 && raw.run_cap === undefined) {
    const size = gridSize(parameters);
    if (size > MAX_GRID_TRIALS) {
      report(['parameters'], `the grid has ${size.toLocaleString('en-US')} trials (more than ${MAX_GRID_TRIALS.toLocaleString('en-US')}); use fewer values or set run_cap`);
    }
  }

  if (problems.length > 0 || !top.success || !parameters) throw fail();

  const { early_terminate: _raw, parameters: _rawParams, ...rest } = top.data;
  const name = rest.name ?? basename(fileName, extname(fileName));
  const spec: SweepSpec = { ...rest, file: fileName, name, parameters };
  if (earlyTerminate) spec.early_terminate = earlyTerminate;
  return spec;
}

// ---------------------------------------------------------------------------------------------

type Report = (path: KeyPath, message: string, at?: KeyPath) => void;

interface ParamContext {
  src: YamlSource;
  report: Report;
  method: Method | undefined;
}

function parseParameters(raw: unknown, path: KeyPath, ctx: ParamContext, depth: number): Record<string, ParamSpec> | undefined {
  if (!isObj(raw)) {
    ctx.report(path, `expected a mapping from parameter names to specs, got ${describeValue(raw)}`);
    return undefined;
  }
  const names = Object.keys(raw);
  if (names.length === 0) ctx.report(path, 'needs at least one parameter');
  const out: Record<string, ParamSpec> = {};
  let ok = names.length > 0;
  for (const name of names) {
    const p = [...path, name];
    if (!PARAMETER_NAME.test(name)) {
      ctx.report(p, `\`${name}\` is not a valid parameter name: start with a letter or _, then letters, digits, _ . or -`);
      ok = false;
      continue;
    }
    const spec = parseParameter(raw[name], p, ctx, depth);
    if (!spec) {
      ok = false;
      continue;
    }
    if (depth === 0 && isTrainerParam(name)) {
      if (!checkDomain(name, SWEEP_PARAM_DOMAINS[name], spec, p, ctx)) ok = false;
    }
    out[name] = spec;
  }
  return ok ? out : undefined;
}

const SPEC_FORMS = '{values: [...]}, {value: x}, {min: a, max: b} or {distribution: ..., ...}';

function parseParameter(raw: unknown, path: KeyPath, ctx: ParamContext, depth: number): ParamSpec | undefined {
  const { src, report } = ctx;
  if (!isObj(raw)) {
    const name = String(path[path.length - 1]);
    const hint = raw !== null && typeof raw !== 'object' ? `; for a fixed value write \`${name}: {value: ${JSON.stringify(raw)}}\`` : '';
    report(path, `expected a parameter spec such as ${SPEC_FORMS}, got ${describeValue(raw)}${hint}`);
    return undefined;
  }

  let dist: DistributionName;
  if ('distribution' in raw) {
    const d = raw.distribution;
    if (typeof d !== 'string' || !(DISTRIBUTION_NAMES as string[]).includes(d)) {
      const near = typeof d === 'string' ? nearest(d, DISTRIBUTION_NAMES) : undefined;
      report(
        [...path, 'distribution'],
        `unknown distribution ${typeof d === 'string' ? `\`${d}\`` : describeValue(d)}` +
          (near ? `; did you mean \`${near}\`?` : '') +
          ` Known: ${DISTRIBUTION_NAMES.join(', ')}`,
      );
      return undefined;
    }
    dist = d as DistributionName;
    // A superset of W&B: `distribution: categorical` may carry probabilities.
    if (dist === 'categorical' && 'probabilities' in raw) dist = 'categorical_w_probabilities';
  } else if ('parameters' in raw) {
    const extra = Object.keys(raw).filter((k) => k !== 'parameters');
    for (const k of extra) report([...path, k], `${unknownKeyMessage(k, ['parameters'])} (a nested group of parameters)`);
    const nested = parseParameters(raw.parameters, [...path, 'parameters'], ctx, depth + 1);
    if (!nested || extra.length > 0) return undefined;
    return { distribution: 'nested', parameters: nested };
  } else if ('values' in raw) {
    dist = 'probabilities' in raw ? 'categorical_w_probabilities' : 'categorical';
  } else if ('value' in raw) {
    dist = 'constant';
  } else if ('min' in raw || 'max' in raw) {
    // W&B: integer min and max mean int_uniform, otherwise uniform. `1.0` counts as a float.
    const ints = src.isIntLiteral([...path, 'min']) && src.isIntLiteral([...path, 'max']);
    dist = ints ? 'int_uniform' : 'uniform';
  } else {
    report(path, `cannot tell the distribution: give ${SPEC_FORMS}`);
    return undefined;
  }

  if (dist === 'constant' && !('value' in raw)) {
    report([...path, 'value'], 'required: a constant parameter needs value', path);
    return undefined;
  }
  const schema = DISTRIBUTIONS[dist];
  const r = schema.safeParse(raw, { reportInput: true });
  if (!r.success) {
    zodProblems(schema, r.error.issues, path, report, `for a ${dist.replace('_w_probabilities', '')} parameter`);
    return undefined;
  }
  const spec = r.data as LeafParamSpec;

  if (ctx.method === 'grid' && !GRID_DISTRIBUTIONS.has(spec.distribution)) {
    report(
      'distribution' in raw ? [...path, 'distribution'] : path,
      `grid search needs a finite list of values: use values, value, int_uniform or q_uniform; ` +
        `${spec.distribution} is continuous (use values: [...] or method: random)`,
    );
    return undefined;
  }
  if (ctx.method === 'grid' && spec.distribution === 'categorical' && spec.probabilities) {
    report([...path, 'probabilities'], 'grid search tries every value, so probabilities do not apply; remove them or use method: random');
    return undefined;
  }
  return spec;
}

function parseEarlyTerminate(raw: unknown, path: KeyPath, report: Report): EarlyTerminate | undefined {
  const types = Object.keys(EARLY_TERMINATE) as Array<keyof typeof EARLY_TERMINATE>;
  if (!isObj(raw)) {
    report(path, `expected a mapping such as {type: hyperband, min_iter: 3}, got ${describeValue(raw)}`);
    return undefined;
  }
  const t = raw.type;
  if (typeof t !== 'string' || !(types as string[]).includes(t)) {
    const near = typeof t === 'string' ? nearest(t, types) : undefined;
    report(
      t === undefined ? path : [...path, 'type'],
      t === undefined
        ? `required: type (one of ${types.join(', ')})`
        : `unknown type ${describeValue(t)}${near ? `; did you mean \`${near}\`?` : ''} Known: ${types.join(', ')}`,
    );
    return undefined;
  }
  const schema = EARLY_TERMINATE[t as keyof typeof EARLY_TERMINATE];
  const r = schema.safeParse(raw, { reportInput: true });
  if (!r.success) {
    zodProblems(schema, r.error.issues, path, report, `for ${t} early termination`);
    return undefined;
  }
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// Trainer parameter domains: every value a sweep can produce must be valid for the trainer.

function checkDomain(name: string, d: Domain, spec: ParamSpec, path: KeyPath, ctx: ParamContext): boolean {
  const bad = (at: KeyPath, msg: string) => {
    ctx.report(at, msg);
    return false;
  };
  if (spec.distribution === 'nested') return bad(path, `${name} is a trainer parameter and must be ${d.expected}, not a nested group`);
  if (spec.distribution === 'constant') {
    const why = domainViolation(d, spec.value);
    return why ? bad([...path, 'value'], `${describeValue(spec.value)} is not a valid ${name}: ${why}`) : true;
  }
  if (spec.distribution === 'categorical') {
    let ok = true;
    spec.values.forEach((v, i) => {
      const why = domainViolation(d, v);
      if (why) ok = bad([...path, 'values', i], `${describeValue(v)} is not a valid ${name}: ${why}`);
    });
    return ok;
  }
  const s: Support = support(spec, ctx.method ?? 'random');
  const what = describeSpec(spec);
  if (s.kind === 'list') {
    const offender = s.values.find((v) => domainViolation(d, v) !== null);
    if (offender === undefined) return true;
    return bad(path, `${what} can produce ${describeValue(offender)}, but ${name} must be ${d.expected}`);
  }
  const at = (end: 'min' | 'max'): KeyPath => ('min' in spec ? [...path, end] : path);
  if (d.integer && !s.integer) {
    return bad(path, `${what} produces non-integers, but ${name} must be ${d.expected}; use int_uniform or values`);
  }
  let ok = true;
  if (d.min !== undefined && (s.lo < d.min || (s.lo === d.min && d.minExclusive && !s.loOpen))) {
    ok = bad(at('min'), `${what} can produce ${fmt(s.lo)}, but ${name} must be ${d.expected}`);
  }
  if (d.max !== undefined && (s.hi > d.max || (s.hi === d.max && d.maxExclusive && !s.hiOpen))) {
    ok = bad(at('max'), `${what} can produce ${fmt(s.hi)}, but ${name} must be ${d.expected}`);
  }
  return ok;
}

const fmt = (x: number) => (Number.isFinite(x) ? String(+x.toPrecision(6)) : x > 0 ? 'arbitrarily large values' : 'arbitrarily small values');

function describeSpec(spec: LeafParamSpec): string {
  if ('min' in spec && 'max' in spec) return `${spec.distribution} from ${spec.min} to ${spec.max}`;
  return spec.distribution;
}

// ---------------------------------------------------------------------------------------------

function findNonFinite(v: unknown, path: KeyPath, report: Report): void {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    report(path, `${v} is not allowed here: use a finite number`);
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => findNonFinite(x, [...path, i], report));
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) findNonFinite(x, [...path, k], report);
  }
}

type Issue = z.core.$ZodIssue;
type AnySchema = z.core.$ZodType;

/** Turn zod issues into located problems with messages a user can act on. */
function zodProblems(schema: AnySchema, issues: readonly Issue[], prefix: KeyPath, report: Report, where: string): void {
  for (const issue of issues) {
    const rel = issue.path as KeyPath;
    const path = [...prefix, ...rel];
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = keysAt(schema, rel);
        for (const key of issue.keys) report([...path, key], `${unknownKeyMessage(key, allowed)} (${where})`);
        break;
      }
      case 'invalid_type': {
        // z.number().int() reports `number` for a non-number; say integer when that is what it takes.
        const isInt = issue.expected === 'number' && (schemaAt(schema, rel) as { isInt?: boolean }).isInt === true;
        const expected = expectedName(isInt ? 'int' : issue.expected);
        if (input === undefined) report(path, `required: ${expected}`, path.slice(0, -1));
        else report(path, `expected ${expected}, got ${describeValue(input)}`);
        break;
      }
      case 'invalid_value': {
        const options = issue.values.map((v) => String(v));
        const near = typeof input === 'string' ? nearest(input, options) : undefined;
        if (input === undefined) {
          report(path, `required: one of ${options.join(', ')}`, path.slice(0, -1));
        } else {
          report(path, `expected ${options.length === 1 ? options[0] : `one of ${options.join(', ')}`}, got ${describeValue(input)}${near ? `; did you mean \`${near}\`?` : ''}`);
        }
        break;
      }
      case 'too_small':
      case 'too_big': {
        const small = issue.code === 'too_small';
        const bound = Number(small ? (issue as { minimum: unknown }).minimum : (issue as { maximum: unknown }).maximum);
        const inclusive = (issue as { inclusive?: boolean }).inclusive !== false;
        if (issue.origin === 'array') {
          report(path, small ? `must have at least ${bound} item${bound === 1 ? '' : 's'}` : `must have at most ${bound} items`);
        } else if (issue.origin === 'string') {
          report(path, small ? 'must not be empty' : `must be at most ${bound} characters`);
        } else {
          const op = small ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
          report(path, `must be ${op} ${bound}, got ${describeValue(input)}`);
        }
        break;
      }
      case 'invalid_union': {
        // Report the alternative the user evidently meant: the one that got past the type check.
        const branches = issue.errors;
        const options = unionOptions(schemaAt(schema, rel));
        const idx = branches.findIndex((b) => !b.some((i) => i.code === 'invalid_type' && i.path.length === 0));
        if (idx >= 0 && options[idx]) zodProblems(options[idx], branches[idx], path, report, where);
        else {
          const expected = branches.flatMap((b) => b.filter((i) => i.code === 'invalid_type').map((i) => expectedName((i as { expected: string }).expected)));
          report(path, `expected ${[...new Set(expected)].join(' or ')}, got ${describeValue(input)}`);
        }
        break;
      }
      default:
        report(path, issue.message);
    }
  }
}

function expectedName(e: string): string {
  switch (e) {
    case 'int':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    default:
      return e;
  }
}

/** Zod schema internals, only as far as needed to find the keys allowed at a path. */
interface Def {
  type: string;
  shape?: Record<string, AnySchema>;
  innerType?: AnySchema;
  in?: AnySchema;
  element?: AnySchema;
  valueType?: AnySchema;
  options?: AnySchema[];
}
const defOf = (s: AnySchema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(s: AnySchema): AnySchema {
  for (let i = 0; i < 20; i++) {
    const d = defOf(s);
    if (d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in) s = d.in;
    else break;
  }
  return s;
}

function schemaAt(schema: AnySchema, path: KeyPath): AnySchema {
  let s = unwrap(schema);
  for (const seg of path) {
    const d = defOf(s);
    if (d.type === 'object' && d.shape && typeof seg === 'string' && d.shape[seg]) s = unwrap(d.shape[seg]);
    else if (d.type === 'array' && d.element) s = unwrap(d.element);
    else if (d.type === 'record' && d.valueType) s = unwrap(d.valueType);
    else break;
  }
  return s;
}

function keysAt(schema: AnySchema, path: KeyPath): string[] {
  const d = defOf(schemaAt(schema, path));
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

function unionOptions(s: AnySchema): AnySchema[] {
  const d = defOf(s);
  return d.type === 'union' && d.options ? d.options : [];
}
