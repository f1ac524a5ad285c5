import { describe, expect, it } from 'vitest';
import { escapeHtml, inlineScript, renderReport, scriptJson } from '../../src/report/html.ts';
import {
  buildReport,
  iteration,
  paramAxes,
  pickCaptchas,
  positionAccuracy,
  rankTrials,
  readProbs,
  redact,
  secretValues,
  wrongPositions,
  type CurveInput,
  type ReportInput,
  type TrialInput,
} from '../../src/report/model.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

const SPEC = {
  name: 'demo',
  method: 'grid',
  metric: { name: 'val_seq_acc', goal: 'maximize' },
  train: { pretrain_epochs: 2, gru_epochs: 3, val: '/data/val' },
  // As stored: the parsed spec, each parameter with its distribution.
  parameters: {
    lr: { distribution: 'categorical', values: [1e-4, 1e-3, 1e-2] },
    dropout: { distribution: 'categorical', values: [0.1, 0.2] },
    kernel: { distribution: 'categorical', values: ['3x3', '3x5'] },
    width: { distribution: 'constant', value: 0.125 },
  },
};

function trial(index: number, over: Partial<TrialInput> = {}): TrialInput {
  return {
    id: `t${index}`.padEnd(16, 'x'),
    index,
    params: { lr: [1e-4, 1e-3, 1e-2][index % 3], dropout: index % 2 ? 0.2 : 0.1, kernel: index % 2 ? '3x5' : '3x3', width: 0.125 },
    seed: index,
    status: 'finished',
    worker: `box-${index % 2}`,
    attempts: 1,
    error: null,
    startedAt: at(index),
    finishedAt: at(index + 5),
    bestMetric: 0.1 * index,
    ...over,
  };
}

/** val_seq_acc and val_loss of a trial over `pretrain` and `gru` epochs. */
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

function input(trials: TrialInput[], over: Partial<ReportInput> = {}): ReportInput {
  return {
    sweep: { id: 'sw1', name: 'demo', method: 'grid', status: 'active', metricName: 'val_seq_acc', metricGoal: 'maximize', spec: SPEC, specText: 'name: demo\n', createdAt: T0 },
    trials,
    curves: [],
    ensembles: [],
    readings: [],
    captchas: { images: [] },
    now: at(60),
    ...over,
  };
}

describe('buildReport with finished, failed, stopped and running trials', () => {
  const trials = [
    trial(0),
    trial(1, { status: 'failed', error: 'Error: out of memory\n    at train (trainer.ts:1)', bestMetric: null, finishedAt: at(3) }),
    trial(2, { status: 'stopped', error: 'stopped by hyperband at iteration 2', bestMetric: 0.05 }),
    trial(3, { status: 'running', finishedAt: null, bestMetric: 0.2 }),
    trial(4, { status: 'queued', worker: null, startedAt: null, finishedAt: null, bestMetric: null }),
    trial(5, { bestMetric: 0.9 }),
  ];
  const c = [...curves(trials[0].id, 2, 3), ...curves(trials[2].id, 2, 0), ...curves(trials[3].id, 2, 1), ...curves(trials[5].id, 2, 3)];
  const r = buildReport(input(trials, { curves: c }));

  it('counts every status and keeps one row per trial', () => {
    expect(r.total).toBe(6);
    expect(r.counts).toMatchObject({ finished: 2, failed: 1, stopped: 1, running: 1, queued: 1, diverged: 0 });
    expect(r.trials.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('keeps the swept parameters only, with their axes', () => {
    expect(r.axes.map((a) => a.name)).toEqual(['dropout', 'kernel', 'lr']);
    expect(r.axes.find((a) => a.name === 'lr')).toMatchObject({ kind: 'number', log: true });
    expect(r.axes.find((a) => a.name === 'dropout')).toMatchObject({ kind: 'number', log: false });
    expect(r.axes.find((a) => a.name === 'kernel')).toMatchObject({ kind: 'category', categories: ['3x3', '3x5'] });
    expect(r.trials[0].params).toEqual({ lr: 1e-4, dropout: 0.1, kernel: '3x3' });
  });

  it('highlights the best trials by the metric, whatever their state', () => {
    expect(r.trials.filter((t) => t.top).map((t) => t.index)).toEqual([0, 2, 3, 5]);
  });

  it('durations: ended trials to their end, running ones to now, queued ones none', () => {
    expect(r.trials[0].durationSeconds).toBe(300);
    expect(r.trials[3].durationSeconds).toBe((60 - 3) * 60);
    expect(r.trials[4].durationSeconds).toBeNull();
  });

  it('puts both phases on one iteration axis with the boundary after the pretrain epochs', () => {
    expect(r.curves.pretrain).toBe(2);
    expect(r.curves.gru).toBe(3);
    expect(r.curves.boundary).toBe(2.5);
    const best = r.curves.series.find((s) => s.index === 5)!;
    expect(best.acc.map(([x]) => x)).toEqual([1, 2, 3, 4, 5]);
    expect(best.loss[2]).toEqual([3, 2]);
    expect(r.curves.series.map((s) => s.index)).toEqual([0, 2, 3, 5]);
  });

  it('marks a stopped trial where it stopped, and no other', () => {
    expect(r.curves.series.find((s) => s.index === 2)!.stoppedAt).toBe(2);
    expect(r.curves.series.filter((s) => s.stoppedAt !== null)).toHaveLength(1);
    expect(r.trials[2].reason).toBe('stopped by hyperband at iteration 2');
  });

  it('lists failures with their whole error, and only failures', () => {
    expect(r.failures).toEqual([{ index: 1, id: trials[1].id, status: 'failed', worker: 'box-1', attempts: 1, error: trials[1].error }]);
    expect(r.trials[1].reason).toBe('Error: out of memory');
  });

  it('draws each started trial on its worker\'s timeline; a running one up to now', () => {
    expect(r.timeline.workers).toEqual(['box-0', 'box-1']);
    expect(r.timeline.bars).toHaveLength(5);
    expect(r.timeline.bars.find((b) => b.index === 3)).toMatchObject({ open: true, end: at(60).getTime() });
  });

  it('says why there are no CAPTCHAs when no trial stored predictions', () => {
    expect(r.captchas).toEqual({ trial: null, items: [], note: expect.stringMatching(/no finished trial/i) });
    expect(r.positions.series).toEqual([]);
    expect(r.ensembles).toEqual([]);
  });
});

describe('buildReport with no finished trial', () => {
  it('has no best, no curves, no boundary and no timeline, and still every section', () => {
    const r = buildReport(input([trial(0, { status: 'queued', worker: null, startedAt: null, finishedAt: null, bestMetric: null }), trial(1, { status: 'failed', bestMetric: null, error: 'boom' })]));
    expect(r.trials.every((t) => !t.top && t.best === null)).toBe(true);
    expect(r.curves).toEqual({ boundary: null, pretrain: 2, gru: 0, series: [] });
    expect(r.timeline.bars).toHaveLength(1);
    expect(r.failures).toHaveLength(1);
    expect(r.positions).toEqual({ length: 0, series: [] });
    const html = renderReport(r, '/* chart library */');
    expect(html).toContain('id="report-data"');
  });

  it('with no trials at all', () => {
    const r = buildReport(input([]));
    expect(r.total).toBe(0);
    expect(r.axes.map((a) => a.name)).toEqual(['dropout', 'kernel', 'lr']);
    expect(r.axes.every((a) => a.kind === 'category' && a.categories.length === 0)).toBe(true);
  });
});

describe('predictions, positions and CAPTCHAs', () => {
  const labels = ['abc123', 'xyz789', 'aaaaaa', 'bbbbbb'];
  const readings = ['abc123', 'xyz780', 'aaaaaa', 'cbbbbb'];

  it('reads the arg-max class per position', () => {
    const charset = 'ab';
    // Two examples of two positions over two classes.
    const probs = new Float32Array([0.9, 0.1, 0.2, 0.8, 0.4, 0.6, 0.5, 0.5]);
    expect(readProbs(probs, 2, 2, 2, charset)).toEqual(['ab', 'ba']);
  });

  it('accuracy by position and the wrong characters', () => {
    expect(positionAccuracy(labels, readings, 6)).toEqual([0.75, 1, 1, 1, 1, 0.75]);
    expect(wrongPositions('xyz789', 'xyz780')).toEqual([5]);
  });

  it('picks the mistakes first, then right readings, in dataset order', () => {
    expect(pickCaptchas(labels, readings, 2)).toEqual([0, 1]);
    expect(pickCaptchas(labels, readings, 3)).toEqual([0, 1, 3]);
    expect(pickCaptchas(labels, readings, 24)).toEqual([0, 1, 2, 3]);
  });

  it('shows the best trial\'s readings with its images, or why not', () => {
    const t = [trial(0), trial(1)];
    const best = { trialId: t[1].id, files: ['a.png', 'b.png', 'c.png', 'd.png'], labels, readings };
    const withImages = buildReport(input(t, { readings: [best], captchas: { images: [{ file: 'b.png', src: 'data:image/png;base64,AAAA' }] } }));
    expect(withImages.captchas).toEqual({ trial: 1, items: [{ file: 'b.png', label: 'xyz789', reading: 'xyz780', src: 'data:image/png;base64,AAAA' }], note: null });
    expect(withImages.positions.series).toEqual([{ index: 1, id: t[1].id, acc: [0.75, 1, 1, 1, 1, 0.75] }]);
    const missing = buildReport(input(t, { readings: [best], captchas: { missing: 'The validation images are not on this machine.' } }));
    expect(missing.captchas).toEqual({ trial: 1, items: [], note: 'The validation images are not on this machine.' });
  });
});

describe('ensembles', () => {
  it('reads the gain over the best member from the stored summary', () => {
    const t = [trial(0), trial(1)];
    const summary = {
      best: t[1].id,
      members: [
        { trialId: t[1].id, index: 1, weight: 1, val: { seq_acc: 0.5 } },
        { trialId: t[0].id, index: 0, weight: 1, val: { seq_acc: 0.4 } },
      ],
      ensemble: { val: { seq_acc: 0.55, char_acc: 0.9 }, test: null },
      gain: { val: { seq_acc: 0.05, seq_lo: 0.01, seq_hi: 0.09, char_acc: 0.02 }, test: null },
      optimistic: true,
    };
    const r = buildReport(input(t, { ensembles: [{ name: 'vote-top2', method: 'vote', k: 2, metric: 'val_seq_acc', summary, createdAt: T0 }] }));
    expect(r.ensembles[0]).toMatchObject({ name: 'vote-top2', valSeqAcc: 0.55, bestMemberValSeqAcc: 0.5, gainSeq: 0.05, gainLo: 0.01, gainHi: 0.09, testSeqAcc: null, optimistic: true, members: [1, 0] });
  });

  it('an unreadable summary gives empty numbers, not an error', () => {
    const r = buildReport(input([], { ensembles: [{ name: 'x', method: 'vote', k: 1, metric: 'val_seq_acc', summary: null, createdAt: T0 }] }));
    expect(r.ensembles[0]).toMatchObject({ valSeqAcc: null, gainSeq: null, members: [] });
  });
});

describe('pieces', () => {
  it('ranks by the goal, ties by index, skipping trials without a value', () => {
    const ts = [{ index: 0, bestMetric: 0.5 }, { index: 1, bestMetric: null }, { index: 2, bestMetric: 0.2 }, { index: 3, bestMetric: 0.5 }];
    expect(rankTrials(ts, 'maximize').map((t) => t.index)).toEqual([0, 3, 2]);
    expect(rankTrials(ts, 'minimize', 2).map((t) => t.index)).toEqual([2, 0]);
  });

  it('a log axis only for positive values over more than 1.5 decades', () => {
    const axes = paramAxes(['a', 'b', 'c'], [{ params: { a: 1e-4, b: 0, c: 1 } }, { params: { a: 1e-2, b: 1e-2, c: 20 } }]);
    expect(axes.map((a) => a.log)).toEqual([true, false, false]);
  });

  it('iterations: pretrain epochs first, then GRU epochs after the longest pretrain', () => {
    expect(iteration('pretrain', 0, 3)).toBe(1);
    expect(iteration('gru', 0, 3)).toBe(4);
  });
});

describe('secrets and escaping', () => {
  it('redacts secret values and URL passwords everywhere, images excepted', () => {
    const env = { DATABASE_URL: 'postgresql://me:hunter22@db:5432/x', WANDB_API_KEY: 'k'.repeat(40), HOME: '/root' };
    const secrets = secretValues(env);
    expect(secrets).toContain('hunter22');
    const v = redact({ a: ['failed: postgresql://me:hunter22@db:5432/x', `key ${'k'.repeat(40)}`], b: 'redis://u:pw99@h', img: 'data:image/png;base64,hunter22' }, secrets);
    expect(JSON.stringify(v)).not.toMatch(/hunter22@|kkkk|pw99/);
    expect(v.img).toBe('data:image/png;base64,hunter22');
    expect(v.a[1]).toBe('key ***');
  });

  it('no </script or <!-- inside the inlined data and script', () => {
    const json = scriptJson({ s: '</script><!-- x \u2028' });
    expect(json).not.toMatch(/<\/script|<!--|\u2028/i);
    expect(JSON.parse(json)).toEqual({ s: '</script><!-- x \u2028' });
    expect(inlineScript('a="</script>"')).toBe('a="<\\/script>"');
    expect(escapeHtml('<a href="x">&\'')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
  });

  it('a trial error holding a secret does not reach the page', () => {
    const r = buildReport(input([trial(0, { status: 'failed', error: 'connect failed: WANDB_API_KEY=abcdef0123456789' })]), ['abcdef0123456789']);
    expect(renderReport(r, '')).not.toContain('abcdef0123456789');
  });
});
