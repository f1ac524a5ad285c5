/**
 * The sweep report's data: Postgres rows (as src/report/data.ts reads them) shaped into what the
 * page draws. Pure: no I/O, no clock (the caller passes `now`), no environment (the caller
 * passes the values that must not reach the page).
 *
 * Iterations: a trial's epochs over both phases on one axis. Pretrain epoch e (from 0) sits at
 * x = e + 1 and GRU epoch e at x = P + e + 1, where P is the most pretrain epochs any trial
 * planned or ran, so every trial's GRU phase starts at the same x and one boundary (P + 0.5)
 * marks where the GRU joins.
 */
import { sweptKeys } from '../track/metrics.ts';
import type { ParamSpec } from '../sweep/index.ts';

export type Goal = 'minimize' | 'maximize';

/** A Trial row as data.ts reads it. */
export interface TrialInput {
  id: string;
  index: number;
  params: Record<string, unknown>;
  seed: number;
  status: string;
  worker: string | null;
  attempts: number;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  bestMetric: number | null;
}

/** One trial's values of one key in one phase, by epoch (from 0). */
export interface CurveInput {
  trialId: string;
  phase: string;
  key: string;
  epochs: number[];
  values: number[];
}

export interface EnsembleInput {
  name: string;
  method: string;
  k: number;
  metric: string;
  /** Ensemble.summary as `sweep ensemble build` stores it (read defensively: it is JSON). */
  summary: unknown;
  createdAt: Date;
}

/** A trial's stored validation predictions, read as text: one string per example. */
export interface ReadingsInput {
  trialId: string;
  files: string[];
  labels: string[];
  readings: string[];
}

/** The validation images shown, or why there are none. */
export type CaptchaImages = { images: Array<{ file: string; src: string }> } | { missing: string };

export interface ReportInput {
  sweep: {
    id: string;
    name: string;
    method: string;
    status: string;
    metricName: string;
    metricGoal: Goal;
    spec: unknown;
    /** The stored spec as YAML (data.ts renders it). */
    specText: string;
    createdAt: Date;
  };
  trials: TrialInput[];
  curves: CurveInput[];
  ensembles: EnsembleInput[];
  /** Best trials' readings, best first (at most TOP). */
  readings: ReadingsInput[];
  captchas: CaptchaImages;
  now: Date;
}

/** Trials highlighted in the learning curves and measured by position. */
export const TOP = 5;
/** Validation CAPTCHAs in the strip. */
export const CAPTCHAS = 24;
/** A positive parameter whose values span more than this many decades gets a log axis. */
export const LOG_DECADES = 1.5;
/** Learning-curve keys: sequence accuracy and loss on the validation set. */
export const CURVE_KEYS = ['val_seq_acc', 'val_loss'] as const;

// ---------------------------------------------------------------------------------------------
// Page data

export interface ParamAxis {
  name: string;
  kind: 'number' | 'category';
  /** Numbers spanning more than LOG_DECADES decades, all positive. */
  log: boolean;
  /** Category values in order of first appearance (kind category). */
  categories: string[];
}

export interface TrialData {
  id: string;
  index: number;
  status: string;
  worker: string | null;
  attempts: number;
  seed: number;
  /** Swept parameters' values (numbers stay numbers; anything else as text). */
  params: Record<string, number | string | null>;
  best: number | null;
  /** Epochs stored per phase. */
  epochs: { pretrain: number; gru: number };
  startedAt: number | null;
  finishedAt: number | null;
  durationSeconds: number | null;
  /** Among the TOP best by the sweep metric. */
  top: boolean;
  /** First line of the stored error: why it failed or was stopped. */
  reason: string | null;
}

export interface CurveSeries {
  index: number;
  id: string;
  status: string;
  top: boolean;
  /** [iteration, value] pairs of val_seq_acc and val_loss. */
  acc: Array<[number, number]>;
  loss: Array<[number, number]>;
  /** A stopped trial's last iteration. */
  stoppedAt: number | null;
}

export interface TimelineBar {
  worker: string;
  index: number;
  status: string;
  start: number;
  end: number;
  /** Still running: `end` is `now`. */
  open: boolean;
}

export interface EnsembleData {
  name: string;
  method: string;
  k: number;
  metric: string;
  valSeqAcc: number | null;
  valCharAcc: number | null;
  bestMemberValSeqAcc: number | null;
  gainSeq: number | null;
  gainLo: number | null;
  gainHi: number | null;
  gainChar: number | null;
  testSeqAcc: number | null;
  testGainSeq: number | null;
  optimistic: boolean;
  members: number[];
  createdAt: number;
}

export interface CaptchaData {
  file: string;
  label: string;
  reading: string;
  src: string;
}

export interface ReportData {
  generatedAt: number;
  sweep: { id: string; name: string; method: string; status: string; createdAt: number; specText: string };
  metric: { name: string; goal: Goal };
  counts: Record<string, number>;
  total: number;
  axes: ParamAxis[];
  trials: TrialData[];
  curves: { boundary: number | null; pretrain: number; gru: number; series: CurveSeries[] };
  timeline: { workers: string[]; bars: TimelineBar[] };
  positions: { length: number; series: Array<{ index: number; id: string; acc: number[] }> };
  failures: Array<{ index: number; id: string; status: string; worker: string | null; attempts: number; error: string }>;
  ensembles: EnsembleData[];
  captchas: { trial: number | null; items: CaptchaData[]; note: string | null };
}

export const STATUS_ORDER = ['queued', 'running', 'finished', 'failed', 'diverged', 'stopped', 'cancelled'] as const;

// ---------------------------------------------------------------------------------------------
// Pieces

/** Significant digits kept of a plotted number: the page stays small, the plot the same. */
export function round(v: number, digits = 5): number {
  return Number.isFinite(v) ? +v.toPrecision(digits) : v;
}

/** `a` better than `b` for the goal. */
function better(goal: Goal, a: number, b: number): boolean {
  return goal === 'maximize' ? a > b : a < b;
}

/** The trials with a metric value, best first (ties: lower index), at most `n`. */
export function rankTrials<T extends Pick<TrialInput, 'bestMetric' | 'index'>>(trials: readonly T[], goal: Goal, n = Infinity): T[] {
  return trials
    .filter((t) => t.bestMetric !== null && Number.isFinite(t.bestMetric))
    .sort((a, b) => (a.bestMetric === b.bestMetric ? a.index - b.index : better(goal, a.bestMetric!, b.bestMetric!) ? -1 : 1))
    .slice(0, n);
}

/** Finished trials whose stored predictions the report reads: the best TOP. */
export function predictionTrials(trials: readonly TrialInput[], goal: Goal, n = TOP): string[] {
  return rankTrials(
    trials.filter((t) => t.status === 'finished'),
    goal,
    n,
  ).map((t) => t.id);
}

function valueAt(params: Record<string, unknown>, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), params);
}

function leafKeys(params: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(params).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? leafKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

/**
 * The swept parameters: those the spec varies, else (a spec this version cannot read) those
 * whose value differs between trials.
 */
export function sweptParams(spec: unknown, trials: readonly Pick<TrialInput, 'params'>[]): string[] {
  const parameters = spec && typeof spec === 'object' ? (spec as { parameters?: Record<string, ParamSpec> }).parameters : undefined;
  let keys: string[] = [];
  try {
    keys = sweptKeys(parameters);
  } catch {
    keys = [];
  }
  if (keys.length > 0) return keys;
  const all = [...new Set(trials.flatMap((t) => leafKeys(t.params)))];
  return all.filter((k) => new Set(trials.map((t) => JSON.stringify(valueAt(t.params, k)))).size > 1);
}

function paramValue(v: unknown): number | string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number') return v;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** An axis per swept parameter: numeric (log when positive over > LOG_DECADES decades) or categories. */
export function paramAxes(names: readonly string[], trials: readonly Pick<TrialInput, 'params'>[]): ParamAxis[] {
  return names.map((name) => {
    const values = trials.map((t) => paramValue(valueAt(t.params, name))).filter((v): v is number | string => v !== null);
    if (values.length > 0 && values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      const nums = values as number[];
      const lo = Math.min(...nums);
      const hi = Math.max(...nums);
      return { name, kind: 'number', log: lo > 0 && Math.log10(hi / lo) > LOG_DECADES, categories: [] };
    }
    return { name, kind: 'category', log: false, categories: [...new Set(values.map(String))] };
  });
}

function plannedPretrain(params: Record<string, unknown>, spec: unknown): number {
  const p = params.pretrain_epochs;
  if (typeof p === 'number') return p;
  const train = spec && typeof spec === 'object' ? (spec as { train?: Record<string, unknown> }).train : undefined;
  return typeof train?.pretrain_epochs === 'number' ? train.pretrain_epochs : 0;
}

/** P: the most pretrain epochs any trial planned or stored. */
export function pretrainSpan(trials: readonly TrialInput[], curves: readonly CurveInput[], spec: unknown): number {
  let p = 0;
  for (const t of trials) p = Math.max(p, plannedPretrain(t.params, spec));
  for (const c of curves) if (c.phase === 'pretrain' && c.epochs.length) p = Math.max(p, Math.max(...c.epochs) + 1);
  return p;
}

/** The x of a phase's epoch (from 0) on the shared iteration axis. */
export function iteration(phase: string, epoch: number, pretrain: number): number {
  return phase === 'gru' ? pretrain + epoch + 1 : epoch + 1;
}

export function byTrial(curves: readonly CurveInput[]): Map<string, CurveInput[]> {
  const m = new Map<string, CurveInput[]>();
  for (const c of curves) {
    const list = m.get(c.trialId);
    if (list) list.push(c);
    else m.set(c.trialId, [c]);
  }
  return m;
}

function points(curves: readonly CurveInput[], key: string, pretrain: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const c of curves) {
    if (c.key !== key || (c.phase !== 'pretrain' && c.phase !== 'gru')) continue;
    c.epochs.forEach((e, i) => {
      if (Number.isFinite(c.values[i])) out.push([iteration(c.phase, e, pretrain), round(c.values[i])]);
    });
  }
  return out.sort((a, b) => a[0] - b[0]);
}

function epochCounts(curves: readonly CurveInput[]): { pretrain: number; gru: number } {
  const count = (phase: string) => new Set(curves.filter((c) => c.phase === phase).flatMap((c) => c.epochs)).size;
  return { pretrain: count('pretrain'), gru: count('gru') };
}

/** Characters of `reading` that differ from `label`, by position. */
export function wrongPositions(label: string, reading: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.max(label.length, reading.length); i++) if (label[i] !== reading[i]) out.push(i);
  return out;
}

/** Share of examples whose character at each position was read right. */
export function positionAccuracy(labels: readonly string[], readings: readonly string[], length: number): number[] {
  const right = new Array<number>(length).fill(0);
  const n = Math.min(labels.length, readings.length);
  for (let i = 0; i < n; i++) for (let p = 0; p < length; p++) if (labels[i][p] === readings[i][p]) right[p]++;
  return right.map((r) => (n ? round(r / n, 4) : 0));
}

/** The text each example's probabilities read as: the arg-max class per position (ties: the lower class). */
export function readProbs(probs: Float32Array, n: number, length: number, classes: number, charset: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = '';
    for (let p = 0; p < length; p++) {
      const row = (i * length + p) * classes;
      let best = 0;
      for (let c = 1; c < classes; c++) if (probs[row + c] > probs[row + best]) best = c;
      s += charset[best] ?? '?';
    }
    out.push(s);
  }
  return out;
}

/**
 * Which examples the strip shows: up to `n`, half of them read wrong where there are that many
 * (the mistakes are what a reader looks for), the rest right, each group in dataset order.
 */
export function pickCaptchas(labels: readonly string[], readings: readonly string[], n = CAPTCHAS): number[] {
  const wrong: number[] = [];
  const right: number[] = [];
  labels.forEach((l, i) => (l === readings[i] ? right : wrong).push(i));
  const w = Math.min(wrong.length, Math.max(Math.ceil(n / 2), n - right.length));
  const r = Math.min(right.length, n - w);
  return [...wrong.slice(0, w), ...right.slice(0, r)].sort((a, b) => a - b);
}

/** The first line of an error, at most 200 characters. */
export function firstLine(error: string): string {
  const line = error.trim().split('\n')[0].trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const obj = (x: unknown): Record<string, unknown> => (x && typeof x === 'object' ? (x as Record<string, unknown>) : {});

/** An ensemble row: its numbers read from the stored summary, null where absent. */
export function ensembleData(e: EnsembleInput, indexOf: (trialId: string) => number | undefined): EnsembleData {
  const s = obj(e.summary);
  const ens = obj(s.ensemble);
  const gain = obj(s.gain);
  const gv = obj(gain.val);
  const gt = gain.test ? obj(gain.test) : null;
  const members = Array.isArray(s.members) ? (s.members as unknown[]).map(obj) : [];
  const chosen = members.filter((m) => (num(m.weight) ?? 1) > 0);
  const bestMember = members.find((m) => m.trialId === s.best) ?? members[0];
  const valSeq = num(obj(ens.val).seq_acc);
  return {
    name: e.name,
    method: e.method,
    k: e.k,
    metric: e.metric,
    valSeqAcc: valSeq,
    valCharAcc: num(obj(ens.val).char_acc),
    bestMemberValSeqAcc: bestMember ? num(obj(bestMember.val).seq_acc) : null,
    gainSeq: num(gv.seq_acc),
    gainLo: num(gv.seq_lo),
    gainHi: num(gv.seq_hi),
    gainChar: num(gv.char_acc),
    testSeqAcc: ens.test ? num(obj(ens.test).seq_acc) : null,
    testGainSeq: gt ? num(gt.seq_acc) : null,
    optimistic: s.optimistic === true,
    members: chosen.map((m) => (typeof m.trialId === 'string' ? indexOf(m.trialId) : undefined) ?? num(m.index) ?? -1),
    createdAt: e.createdAt.getTime(),
  };
}

// ---------------------------------------------------------------------------------------------
// Secrets

/**
 * Replaces every occurrence of the given secret values in every string of `value` (deeply),
 * and the password of any URL with credentials. The page is a file people pass around.
 */
export function redact<T>(value: T, secrets: readonly string[]): T {
  const list = [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
  const clean = (s: string): string => {
    let out = s.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):([^@\s]+)@/gi, '$1:***@');
    for (const secret of list) out = out.split(secret).join('***');
    return out;
  };
  const walk = (v: unknown): unknown => {
    // Inlined images are left whole: a short secret could match inside their base64.
    if (typeof v === 'string') return v.startsWith('data:image/') ? v : clean(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && !(v instanceof Date)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/**
 * Values of the environment that must never appear in a report: the connection strings, the
 * W&B key, anything named like a credential, and the passwords inside URLs.
 */
export function secretValues(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!v) continue;
    if (/^(DATABASE_URL|REDIS_URL|WANDB_API_KEY)$/.test(k) || /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i.test(k) || /_URL$/.test(k)) out.push(v);
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:([^@\s]+)@/i.exec(v);
    if (m) {
      out.push(m[1]);
      try {
        out.push(decodeURIComponent(m[1]));
      } catch {
        // not percent-encoded
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The whole report

function countStatuses(trials: readonly TrialInput[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(STATUS_ORDER.map((s) => [s, 0]));
  for (const t of trials) counts[t.status] = (counts[t.status] ?? 0) + 1;
  return counts;
}

function timeline(trials: readonly TrialInput[], now: Date): ReportData['timeline'] {
  const bars: TimelineBar[] = [];
  for (const t of trials) {
    if (!t.worker || !t.startedAt) continue;
    const open = !t.finishedAt;
    const end = t.finishedAt ? t.finishedAt.getTime() : t.status === 'running' ? now.getTime() : t.startedAt.getTime();
    bars.push({ worker: t.worker, index: t.index, status: t.status, start: t.startedAt.getTime(), end: Math.max(end, t.startedAt.getTime()), open: open && t.status === 'running' });
  }
  const workers = [...new Set(bars.map((b) => b.worker))].sort();
  return { workers, bars };
}

function captchaData(input: ReportInput, indexOf: Map<string, number>): ReportData['captchas'] {
  const best = input.readings[0];
  if (!best) return { trial: null, items: [], note: 'No finished trial has stored validation predictions yet.' };
  if ('missing' in input.captchas) return { trial: indexOf.get(best.trialId) ?? null, items: [], note: input.captchas.missing };
  const pos = new Map(best.files.map((f, i) => [f, i]));
  const items = input.captchas.images.flatMap((img) => {
    const i = pos.get(img.file);
    return i === undefined ? [] : [{ file: img.file, label: best.labels[i], reading: best.readings[i], src: img.src }];
  });
  return { trial: indexOf.get(best.trialId) ?? null, items, note: items.length ? null : 'None of the validation images was found on this machine.' };
}

/** What every trial's row and curves depend on beyond the trial itself. */
export interface ReportContext {
  names: string[];
  top: Set<string>;
  pretrain: number;
  now: Date;
}

export function reportContext(input: ReportInput): ReportContext {
  const { sweep, trials } = input;
  return {
    names: sweptParams(sweep.spec, trials),
    top: new Set(rankTrials(trials, sweep.metricGoal, TOP).map((t) => t.id)),
    pretrain: pretrainSpan(trials, input.curves, sweep.spec),
    now: input.now,
  };
}

/** A trial's table row. `curves`: its own. */
export function trialData(t: TrialInput, curves: readonly CurveInput[], ctx: ReportContext): TrialData {
  const end = t.finishedAt ?? (t.status === 'running' ? ctx.now : null);
  return {
    id: t.id,
    index: t.index,
    status: t.status,
    worker: t.worker,
    attempts: t.attempts,
    seed: t.seed,
    params: Object.fromEntries(ctx.names.map((n) => [n, paramValue(valueAt(t.params, n))])),
    best: t.bestMetric !== null && Number.isFinite(t.bestMetric) ? t.bestMetric : null,
    epochs: epochCounts(curves),
    startedAt: t.startedAt?.getTime() ?? null,
    finishedAt: t.finishedAt?.getTime() ?? null,
    durationSeconds: t.startedAt && end ? Math.max(0, (end.getTime() - t.startedAt.getTime()) / 1000) : null,
    top: ctx.top.has(t.id),
    reason: t.error ? firstLine(t.error) : null,
  };
}

/** A trial's learning curves, or null before its first epoch. `curves`: its own. */
export function curveSeries(t: TrialInput, curves: readonly CurveInput[], ctx: ReportContext): CurveSeries | null {
  const acc = points(curves, 'val_seq_acc', ctx.pretrain);
  const loss = points(curves, 'val_loss', ctx.pretrain);
  if (acc.length === 0 && loss.length === 0) return null;
  const last = Math.max(acc.at(-1)?.[0] ?? 0, loss.at(-1)?.[0] ?? 0);
  return { index: t.index, id: t.id, status: t.status, top: ctx.top.has(t.id), acc, loss, stoppedAt: t.status === 'stopped' ? last : null };
}

/** The GRU epochs any trial stored. */
export function gruSpan(curves: readonly CurveInput[]): number {
  let gru = 0;
  for (const c of curves) if (c.phase === 'gru' && c.epochs.length) gru = Math.max(gru, Math.max(...c.epochs) + 1);
  return gru;
}

/** The parts of the page that are about every trial at once: cheap to rebuild whole. */
export interface SummaryParts extends Pick<ReportData, 'counts' | 'total' | 'timeline' | 'failures'> {
  curves: Omit<ReportData['curves'], 'series'>;
}

export function summaryParts(input: ReportInput, ctx: ReportContext): SummaryParts {
  const { trials } = input;
  const gru = gruSpan(input.curves);
  return {
    counts: countStatuses(trials),
    total: trials.length,
    timeline: timeline(trials, ctx.now),
    failures: trials
      .filter((t) => t.status === 'failed' || t.status === 'diverged')
      .map((t) => ({ index: t.index, id: t.id, status: t.status, worker: t.worker, attempts: t.attempts, error: t.error ?? '(no reason stored)' })),
    curves: { boundary: ctx.pretrain > 0 && gru > 0 ? ctx.pretrain + 0.5 : null, pretrain: ctx.pretrain, gru },
  };
}

/** Accuracy by position of the best trials' readings. */
export function positionsData(input: ReportInput): ReportData['positions'] {
  const indexOf = new Map(input.trials.map((t) => [t.id, t.index]));
  const length = input.readings[0]?.labels[0]?.length ?? 0;
  return {
    length,
    series: input.readings.map((r) => ({ index: indexOf.get(r.trialId) ?? -1, id: r.trialId, acc: positionAccuracy(r.labels, r.readings, length) })),
  };
}

/** The ensembles and the CAPTCHA strip. */
export function extrasData(input: ReportInput): Pick<ReportData, 'ensembles' | 'captchas' | 'positions'> {
  const indexOf = new Map(input.trials.map((t) => [t.id, t.index]));
  return {
    positions: positionsData(input),
    ensembles: input.ensembles.map((e) => ensembleData(e, (id) => indexOf.get(id))),
    captchas: captchaData(input, indexOf),
  };
}

/** Everything the page shows, from the rows. Pure. */
export function buildReport(input: ReportInput, secrets: readonly string[] = []): ReportData {
  const { sweep, trials, now } = input;
  const ctx = reportContext(input);
  const curvesOf = byTrial(input.curves);
  const series: CurveSeries[] = [];
  for (const t of trials) {
    const s = curveSeries(t, curvesOf.get(t.id) ?? [], ctx);
    if (s) series.push(s);
  }
  const summary = summaryParts(input, ctx);
  const data: ReportData = {
    generatedAt: now.getTime(),
    sweep: { id: sweep.id, name: sweep.name, method: sweep.method, status: sweep.status, createdAt: sweep.createdAt.getTime(), specText: sweep.specText },
    metric: { name: sweep.metricName, goal: sweep.metricGoal },
    counts: summary.counts,
    total: summary.total,
    axes: paramAxes(ctx.names, trials),
    trials: trials.map((t) => trialData(t, curvesOf.get(t.id) ?? [], ctx)),
    curves: { ...summary.curves, series },
    timeline: summary.timeline,
    failures: summary.failures,
    ...extrasData(input),
  };
  return redact(data, secrets);
}
