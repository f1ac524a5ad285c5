import { describe, expect, it } from 'vitest';
import { renderReport } from '../../src/report/html.ts';
import { applyChange, changedTrials, fullState, mergePatch, rowChanged, timelineKey, withParams, type MetricMark, type TrialRow } from '../../src/report/live.ts';
import { buildReport, type CurveInput, type ReportInput, type TrialInput } from '../../src/report/model.ts';
import { catchUp, hostAllowed } from '../../src/report/server.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);
const SPEC = {
  name: 'demo',
  method: 'grid',
  metric: { name: 'val_seq_acc', goal: 'maximize' },
  train: { pretrain_epochs: 2, gru_epochs: 3 },
  parameters: { dropout: { distribution: 'categorical', values: [0.1, 0.2, 0.3, 0.4] } },
};
const SECRET = 'secret-password-42';

function trial(index: number, over: Partial<TrialInput> = {}): TrialInput {
  return {
    id: `t${index}`.padEnd(16, 'x'),
    index,
    params: { dropout: 0.1 * (index + 1) },
    seed: index,
    status: 'finished',
    worker: `box-${index % 2}`,
    attempts: 1,
    error: null,
    startedAt: at(index),
    finishedAt: at(index + 5),
    bestMetric: 0.1 * (index + 1),
    ...over,
  };
}

function curves(trialId: string, pretrain: number, gru: number): CurveInput[] {
  const out: CurveInput[] = [];
  for (const [phase, n] of [['pretrain', pretrain], ['gru', gru]] as const) {
    if (n === 0) continue;
    const epochs = Array.from({ length: n }, (_, i) => i);
    out.push({ trialId, phase, key: 'val_seq_acc', epochs, values: epochs.map((e) => 0.05 * (e + 1)) });
    out.push({ trialId, phase, key: 'val_loss', epochs, values: epochs.map((e) => 2 / (e + 1)) });
  }
  return out;
}

function input(trials: TrialInput[], curveList: CurveInput[]): ReportInput {
  return {
    sweep: { id: 'sw1', name: 'demo', method: 'grid', status: 'active', metricName: 'val_seq_acc', metricGoal: 'maximize', spec: SPEC, specText: 'name: demo\n', createdAt: T0 },
    trials,
    curves: curveList,
    ensembles: [],
    readings: [],
    captchas: { images: [] },
    now: at(60),
  };
}

const row = (t: TrialInput): TrialRow => {
  const { params: _params, ...rest } = t;
  return rest;
};

describe('rowChanged', () => {
  const base = trial(0);
  it.each<[string, Partial<TrialInput>, boolean]>([
    ['nothing', {}, false],
    ['status', { status: 'failed' }, true],
    ['worker', { worker: 'other' }, true],
    ['attempts', { attempts: 2 }, true],
    ['error', { error: 'boom' }, true],
    ['best metric', { bestMetric: 0.9 }, true],
    ['finish time', { finishedAt: at(99) }, true],
    ['start time (same instant, another Date)', { startedAt: new Date(base.startedAt!.getTime()) }, false],
    ['params alone (never read by a poll)', { params: { dropout: 0.9 } }, false],
  ])('%s', (_, over, changed) => {
    expect(rowChanged(base, row({ ...base, ...over }))).toBe(changed);
  });
});

describe('changedTrials', () => {
  const prev = [trial(0), trial(1, { status: 'running', finishedAt: null })];
  const mark = (n: number, last = 1000, sum = 1): MetricMark => ({ n, last, sum });
  it.each<[string, TrialRow[], Map<string, MetricMark>, Map<string, MetricMark>, string[] | null]>([
    ['same rows, same marks', prev.map(row), new Map([[prev[1].id, mark(4)]]), new Map([[prev[1].id, mark(4)]]), []],
    ['a running trial stored an epoch', prev.map(row), new Map([[prev[1].id, mark(4)]]), new Map([[prev[1].id, mark(6, 2000)]]), [prev[1].id]],
    ['a value was overwritten (same count and time, another sum)', prev.map(row), new Map([[prev[1].id, mark(4)]]), new Map([[prev[1].id, mark(4, 1000, 2)]]), [prev[1].id]],
    ['a trial started running with points', prev.map(row), new Map(), new Map([[prev[1].id, mark(2)]]), [prev[1].id]],
    ['a row changed', [row(prev[0]), row({ ...prev[1], status: 'finished', finishedAt: at(9) })], new Map(), new Map(), [prev[1].id]],
    ['a trial was added', [...prev.map(row), row(trial(2))], new Map(), new Map(), null],
    ['a trial is another', [row(prev[0]), row(trial(5))], new Map(), new Map(), null],
  ])('%s', (_, rows, before, after, expected) => {
    const got = changedTrials(prev, rows, before, after);
    expect(got === null ? null : [...got].sort()).toEqual(expected);
  });

  it('withParams keeps each trial its params', () => {
    expect(withParams(prev, prev.map(row)).map((t) => t.params)).toEqual(prev.map((t) => t.params));
  });
});

describe('applyChange', () => {
  const trials = [trial(0), trial(1), trial(2, { status: 'running', finishedAt: null, bestMetric: 0.05 }), trial(3, { status: 'queued', startedAt: null, finishedAt: null, worker: null, bestMetric: null })];
  const base = input(trials, [...curves(trials[0].id, 2, 3), ...curves(trials[1].id, 2, 3), ...curves(trials[2].id, 2, 1)]);
  const secrets = [SECRET];

  it('an epoch of a running trial: its row and curve change, the rest is as a full rebuild makes it', () => {
    const state = fullState(base, secrets, 1);
    const now = at(61);
    const next = applyChange(state, { trials, changed: new Set([trials[2].id]), curves: curves(trials[2].id, 2, 2), sweepStatus: 'active', now }, secrets)!;
    expect(next.patch.version).toBe(2);
    expect(next.patch.trials.map((t) => t.index)).toEqual([2]);
    expect(next.patch.series.map((s) => s.index)).toEqual([2]);
    expect(next.patch.trials[0].epochs).toEqual({ pretrain: 2, gru: 2 });
    // Its bar grew with the clock alone and nothing failed: neither is sent.
    expect(next.patch.timeline).toBeUndefined();
    expect(next.patch.failures).toBeUndefined();
    const rebuilt = buildReport({ ...base, curves: [...base.curves.filter((c) => c.trialId !== trials[2].id), ...curves(trials[2].id, 2, 2)], now }, secrets);
    // The same but for the order of the curves and the running bar's end (it waits for a change).
    const sortSeries = (d: typeof rebuilt) => ({ ...d, timeline: timelineKey(d.timeline), curves: { ...d.curves, series: [...d.curves.series].sort((a, b) => a.index - b.index) } });
    expect(sortSeries(next.state.data)).toEqual(sortSeries(rebuilt));
  });

  it('a trial that finished with a better metric becomes top: every row whose top flag moved is in the patch', () => {
    const state = fullState(input(trials, base.curves), secrets, 1);
    const done = trials.map((t) => (t.index === 2 ? { ...t, status: 'finished', finishedAt: at(40), bestMetric: 0.99 } : t));
    const next = applyChange(state, { trials: done, changed: new Set([trials[2].id]), curves: curves(trials[2].id, 2, 3), sweepStatus: 'active', now: at(61) }, secrets)!;
    expect(next.patch.counts).toMatchObject({ running: 0, finished: 3, queued: 1 });
    expect(next.state.data.trials.find((t) => t.index === 2)).toMatchObject({ status: 'finished', top: true, best: 0.99 });
    expect(next.patch.timeline!.bars.find((b) => b.index === 2)).toMatchObject({ open: false });
  });

  it('the error of a failed trial reaches the patch redacted', () => {
    const state = fullState(base, secrets, 1);
    const failed = trials.map((t) => (t.index === 2 ? { ...t, status: 'failed', finishedAt: at(41), error: `connect to postgresql://u:${SECRET}@db/x refused` } : t));
    const next = applyChange(state, { trials: failed, changed: new Set([trials[2].id]), curves: curves(trials[2].id, 2, 1), sweepStatus: 'active', now: at(61) }, secrets)!;
    expect(JSON.stringify(next.patch)).not.toContain(SECRET);
    expect(next.patch.failures).toHaveLength(1);
    expect(next.patch.failures![0].error).toContain('***');
  });

  it('a longer pretrain phase moves every curve: no patch, a full rebuild', () => {
    const state = fullState(base, secrets, 1);
    expect(applyChange(state, { trials, changed: new Set([trials[2].id]), curves: curves(trials[2].id, 4, 0), sweepStatus: 'active', now: at(61) }, secrets)).toBeNull();
  });

  it('a trial set back to queued loses its curves: the patch says so', () => {
    const state = fullState(base, secrets, 1);
    const requeued = trials.map((t) => (t.index === 2 ? { ...t, status: 'queued', worker: null, startedAt: null } : t));
    const next = applyChange(state, { trials: requeued, changed: new Set([trials[2].id]), curves: [], sweepStatus: 'active', now: at(61) }, secrets)!;
    expect(next.patch.removed).toEqual([trials[2].id]);
    expect(next.state.data.curves.series.map((s) => s.index).sort()).toEqual([0, 1]);
  });

  it('mergePatch of an empty patch changes only the parts about every trial', () => {
    const data = buildReport(base, secrets);
    const merged = mergePatch(data, { version: 2, generatedAt: 5, sweepStatus: 'cancelled', counts: data.counts, total: data.total, timeline: data.timeline, failures: [], curves: data.curves, trials: [], series: [], removed: [] });
    expect(merged.trials).toEqual(data.trials);
    expect(merged.curves.series).toEqual(data.curves.series);
    expect(merged.sweep.status).toBe('cancelled');
    expect(merged.generatedAt).toBe(5);
  });
});

describe('the dashboard page', () => {
  it('is the report page with the queue, the live script and a connect-src for its events', () => {
    const data = buildReport(input([trial(0)], curves(trial(0).id, 2, 3)));
    const page = renderReport(data, '/* charts */', { live: { version: 7, queue: { at: 0, jobs: null, error: null, workers: [] } } });
    const report = renderReport(data, '/* charts */');
    expect(page).toContain('id="queue-workers"');
    expect(page).toContain("connect-src 'self'");
    expect(page).toContain('"version":7');
    expect(report).not.toContain('queue-workers');
    expect(report).not.toContain('connect-src');
    expect(report).not.toContain('EventSource');
  });
});

describe('catchUp', () => {
  const p = (version: number) => ({ version }) as never;
  it.each<[string, number[], number, number, number[] | null]>([
    ['up to date', [2, 3], 3, 3, []],
    ['missed two, both kept', [2, 3, 4], 2, 4, [3, 4]],
    ['missed one that is no longer kept', [4, 5], 2, 5, null],
    ['a version from before a rebuild', [], 2, 5, null],
    ['no version at all', [2], NaN, 2, null],
  ])('%s', (_, kept, since, version, expected) => {
    const got = catchUp(kept.map(p), since, version);
    expect(got === null ? null : got.map((x) => x.version)).toEqual(expected);
  });
});

describe('hostAllowed', () => {
  it.each<[string | undefined, string, boolean]>([
    ['127.0.0.1:8377', '127.0.0.1', true],
    ['localhost:8377', '127.0.0.1', true],
    ['[::1]:8377', '::1', true],
    ['evil.example:8377', '127.0.0.1', false],
    ['127.0.0.1:9999', '127.0.0.1', false],
    [undefined, '127.0.0.1', false],
    ['anything:1', '0.0.0.0', true],
  ])('Host %s on %s', (header, bound, ok) => {
    expect(hostAllowed(header, bound, 8377)).toBe(ok);
  });
});
