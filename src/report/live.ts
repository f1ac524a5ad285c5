/**
 * The live dashboard's decisions, pure: which trials changed between two polls of the
 * database, and the patch that brings a page (and the server's copy of the page's data) from
 * one poll to the next without rebuilding what did not change.
 *
 * A patch carries the rows and curves of the trials that changed (and of the running ones,
 * whose duration grows), and the parts about every trial at once (counts, timeline, failures),
 * which are small. A change that moves every curve (a longer pretrain phase) or adds trials
 * makes no patch: the caller rebuilds the page's data whole and pages load it again.
 */
import {
  buildReport,
  byTrial,
  curveSeries,
  extrasData,
  predictionTrials,
  redact,
  reportContext,
  summaryParts,
  trialData,
  type CurveInput,
  type CurveSeries,
  type EnsembleInput,
  type CaptchaImages,
  type ReadingsInput,
  type ReportData,
  type ReportInput,
  type SummaryParts,
  type TrialData,
  type TrialInput,
} from './model.ts';

/** A Trial row as the poll reads it: everything but what never changes (params). */
export type TrialRow = Omit<TrialInput, 'params'>;

/** What the poll knows of a running trial's metric points: their number, newest time and sum. */
export interface MetricMark {
  n: number;
  last: number;
  sum: number;
}

const time = (d: Date | null) => (d ? d.getTime() : null);

/** Whether a trial's row differs from what the page shows. */
export function rowChanged(a: TrialInput, b: TrialRow): boolean {
  return (
    a.status !== b.status ||
    a.worker !== b.worker ||
    a.attempts !== b.attempts ||
    a.error !== b.error ||
    a.bestMetric !== b.bestMetric ||
    a.index !== b.index ||
    time(a.startedAt) !== time(b.startedAt) ||
    time(a.finishedAt) !== time(b.finishedAt)
  );
}

/**
 * The trials that changed: rows that differ, and running trials whose metric points did.
 * Null when the set of trials itself changed (trials were added or removed).
 */
export function changedTrials(
  prev: readonly TrialInput[],
  rows: readonly TrialRow[],
  prevMarks: ReadonlyMap<string, MetricMark>,
  marks: ReadonlyMap<string, MetricMark>,
): Set<string> | null {
  if (prev.length !== rows.length) return null;
  const byId = new Map(prev.map((t) => [t.id, t]));
  const changed = new Set<string>();
  for (const r of rows) {
    const p = byId.get(r.id);
    if (!p) return null;
    if (rowChanged(p, r)) changed.add(r.id);
  }
  for (const [id, m] of marks) {
    const p = prevMarks.get(id);
    if (!p || p.n !== m.n || p.last !== m.last || p.sum !== m.sum) changed.add(id);
  }
  return changed;
}

/** The rows with the params they had (params never change). */
export function withParams(prev: readonly TrialInput[], rows: readonly TrialRow[]): TrialInput[] {
  const params = new Map(prev.map((t) => [t.id, t.params]));
  return rows.map((r) => ({ ...r, params: params.get(r.id) ?? {} }));
}

/** Whether the best trials (whose predictions the page reads) are others now. */
export function readingsStale(prev: ReportInput, trials: readonly TrialInput[]): boolean {
  const goal = prev.sweep.metricGoal;
  return predictionTrials(prev.trials, goal).join() !== predictionTrials(trials, goal).join();
}

/** What one poll found. */
export interface LiveChange {
  /** Every trial, as stored now. */
  trials: TrialInput[];
  /** Trials whose rows or metric points changed. */
  changed: ReadonlySet<string>;
  /** The changed trials' curves, all of them, as stored now. */
  curves: CurveInput[];
  sweepStatus: string;
  now: Date;
  /** Read again when the best trials or the ensembles changed. */
  extras?: { ensembles: EnsembleInput[]; readings: ReadingsInput[]; captchas: CaptchaImages };
}

export interface LivePatch extends Omit<SummaryParts, 'timeline' | 'failures'> {
  version: number;
  /** Absent when no bar changed but for running trials' bars growing with the clock. */
  timeline?: SummaryParts['timeline'];
  /** Absent when unchanged. */
  failures?: SummaryParts['failures'];
  generatedAt: number;
  sweepStatus: string;
  /** Rows of the trials that changed, and of the running ones. */
  trials: TrialData[];
  /** Their curves; `removed` lists trials that no longer have any. */
  series: CurveSeries[];
  removed: string[];
  extras?: Pick<ReportData, 'ensembles' | 'captchas' | 'positions'>;
}

/** The page's data with a patch applied: rows and curves replaced by id, the rest replaced whole. */
export function mergePatch(data: ReportData, patch: LivePatch): ReportData {
  const rows = new Map(patch.trials.map((t) => [t.id, t]));
  const series = new Map(patch.series.map((s) => [s.id, s]));
  const removed = new Set(patch.removed);
  const kept = data.curves.series.filter((s) => !removed.has(s.id)).map((s) => series.get(s.id) ?? s);
  const had = new Set(data.curves.series.map((s) => s.id));
  return {
    ...data,
    generatedAt: patch.generatedAt,
    sweep: { ...data.sweep, status: patch.sweepStatus },
    counts: patch.counts,
    total: patch.total,
    trials: data.trials.map((t) => rows.get(t.id) ?? t),
    curves: { ...patch.curves, series: [...kept, ...patch.series.filter((s) => !had.has(s.id))] },
    timeline: patch.timeline ?? data.timeline,
    failures: patch.failures ?? data.failures,
    ...(patch.extras ?? {}),
  };
}

export interface LiveState {
  input: ReportInput;
  data: ReportData;
  version: number;
}

/** The timeline as drawn but for running trials' bars, which grow with the clock alone. */
export function timelineKey(tl: ReportData['timeline']): string {
  return JSON.stringify([tl.workers, tl.bars.map((b) => [b.index, b.worker, b.status, b.start, b.open ? 0 : b.end])]);
}

/** The state after a full rebuild (the first load, or a change no patch can carry). */
export function fullState(input: ReportInput, secrets: readonly string[], version: number): LiveState {
  return { input, data: buildReport(input, secrets), version };
}

/**
 * The next state and the patch to it, or null when the change needs a full rebuild (the
 * pretrain phase got longer, which moves every GRU epoch along the x axis).
 */
export function applyChange(state: LiveState, change: LiveChange, secrets: readonly string[]): { state: LiveState; patch: LivePatch } | null {
  const { input, data } = state;
  const curves = [...input.curves.filter((c) => !change.changed.has(c.trialId)), ...change.curves];
  const next: ReportInput = {
    ...input,
    sweep: { ...input.sweep, status: change.sweepStatus },
    trials: change.trials,
    curves,
    now: change.now,
    ...(change.extras ?? {}),
  };
  const ctx = reportContext(next);
  if (ctx.pretrain !== data.curves.pretrain) return null;
  const wasTop = new Set(data.trials.filter((t) => t.top).map((t) => t.id));
  const affected = (t: TrialInput) => change.changed.has(t.id) || t.status === 'running' || wasTop.has(t.id) !== ctx.top.has(t.id);
  const curvesOf = byTrial(curves);
  const rows: TrialData[] = [];
  const series: CurveSeries[] = [];
  const removed: string[] = [];
  const hadSeries = new Set(data.curves.series.map((s) => s.id));
  for (const t of change.trials) {
    if (!affected(t)) continue;
    const own = curvesOf.get(t.id) ?? [];
    rows.push(trialData(t, own, ctx));
    const s = curveSeries(t, own, ctx);
    if (s) series.push(s);
    else if (hadSeries.has(t.id)) removed.push(t.id);
  }
  const { timeline, failures, ...summary } = summaryParts(next, ctx);
  const patch: LivePatch = redact(
    {
      version: state.version + 1,
      generatedAt: change.now.getTime(),
      sweepStatus: change.sweepStatus,
      ...summary,
      ...(timelineKey(timeline) !== timelineKey(data.timeline) ? { timeline } : {}),
      // Failures as the page shows them: redacted (the data holds them redacted).
      ...(JSON.stringify(redact(failures, secrets)) !== JSON.stringify(data.failures) ? { failures } : {}),
      trials: rows,
      series,
      removed,
      ...(change.extras ? { extras: extrasData(next) } : {}),
    },
    secrets,
  );
  return { state: { input: next, data: mergePatch(data, patch), version: patch.version }, patch };
}
