/**
 * What a drill checks once the workers have exited: the chaos run's database and W&B against
 * the undisturbed run's (same sweep file, same seeds, so the same trial ids and, the trainer
 * being deterministic, the same numbers).
 */
import pg from 'pg';
import type { FakeWandb } from '../fake-wandb.ts';

/** Metric keys that measure the machine, not the model: they differ between any two runs. */
export const TIMING_KEYS = new Set(['images_per_s', 'seconds']);
/** Summary fields that differ between runs for reasons other than training (timing, paths). */
const VOLATILE_SUMMARY = new Set(['images_per_s', 'seconds', 'model_dir', 'predictions']);

export interface TrialRow {
  id: string;
  status: string;
  error: string | null;
  attempts: number;
  bestMetric: number | null;
  summary: Record<string, unknown> | null;
}

export interface OutboxRow {
  key: string;
  kind: string;
  trialId: string | null;
  step: number | null;
  delivered: boolean;
  failed: boolean;
}

export interface RunData {
  trials: TrialRow[];
  /** `${trialId}/${phase}/${epoch}/${key}` -> value */
  points: Map<string, number>;
  outbox: OutboxRow[];
}

export async function collect(url: string): Promise<RunData> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const trials = (await c.query('SELECT id, status, error, attempts, "bestMetric", summary FROM "Trial" ORDER BY "index"')).rows as TrialRow[];
    const points = new Map<string, number>();
    for (const r of (await c.query('SELECT "trialId", phase, epoch, key, value FROM "MetricPoint"')).rows) points.set(`${r.trialId}/${r.phase}/${r.epoch}/${r.key}`, r.value);
    const outbox = (
      await c.query('SELECT key, kind, "trialId", step, "deliveredAt" IS NOT NULL AS delivered, "failedAt" IS NOT NULL AS failed FROM "WandbOutbox" ORDER BY id')
    ).rows as OutboxRow[];
    return { trials, points, outbox };
  } finally {
    await c.end();
  }
}

export interface WandbProject {
  fake: FakeWandb;
  entity: string;
  project: string;
}

export interface Comparison {
  trials: number;
  finished: number;
  /** Trials that did not finish, with their state and error. */
  notFinished: Array<{ id: string; status: string; error: string | null; attempts: number }>;
  attempts: number;
  points: { expected: number; stored: number; missing: number; extra: number; differing: number };
  /** Trials whose bestMetric or summary (timing and paths aside) differ from the undisturbed run's. */
  finalDiffering: Array<{ id: string; what: string }>;
  finalEqual: number;
  wandb: {
    linesExpected: number;
    linesReceived: number;
    missing: number;
    /** A `_step` received at more than one offset of a run. */
    duplicated: number;
    /** A line whose values differ from the undisturbed run's line at that step. */
    differing: number;
    /** Lines sent again to an offset that held them (idempotent by W&B's offsets). */
    resent: number;
    runsNotComplete: number;
  };
  outbox: { rows: number; deliveredByWorkers: number; deliveredBySync: number; undelivered: number; failed: number };
  examples: string[];
}

function lineValues(line: Record<string, unknown>): string {
  const keep = Object.entries(line).filter(([k]) => !TIMING_KEYS.has(k) && !k.startsWith('_'));
  return JSON.stringify(keep.sort(([a], [b]) => a.localeCompare(b)));
}

function summaryValues(s: Record<string, unknown> | null): string {
  if (!s) return 'null';
  const keep = Object.entries(s).filter(([k]) => !VOLATILE_SUMMARY.has(k));
  return JSON.stringify(keep.sort(([a], [b]) => a.localeCompare(b)));
}

/** Sends of each (run, offset) history line the fake W&B answered 200, by run name. */
function historySends(w: WandbProject): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  const prefix = `/files/${encodeURIComponent(w.entity)}/${encodeURIComponent(w.project)}/`;
  for (const r of w.fake.requests) {
    if (r.answer !== 200 || !r.path.startsWith(prefix)) continue;
    const chunk = r.body?.files?.['wandb-history.jsonl'];
    if (!chunk) continue;
    const run = decodeURIComponent(r.path.slice(prefix.length).split('/')[0]!);
    const m = out.get(run) ?? new Map<number, number>();
    (chunk.content as string[]).forEach((_, i) => m.set(chunk.offset + i, (m.get(chunk.offset + i) ?? 0) + 1));
    out.set(run, m);
  }
  return out;
}

export function compare(opts: {
  base: RunData;
  chaos: RunData;
  /** The chaos run's outbox before `sweep wandb sync` ran. */
  chaosOutboxBeforeSync: OutboxRow[];
  baseWandb: WandbProject;
  chaosWandb: WandbProject;
}): Comparison {
  const { base, chaos } = opts;
  const examples: string[] = [];
  const note = (s: string) => {
    if (examples.length < 20) examples.push(s);
  };

  // Trials.
  const notFinished = chaos.trials.filter((t) => t.status !== 'finished').map((t) => ({ id: t.id, status: t.status, error: t.error, attempts: t.attempts }));

  // Metric points: exactly the undisturbed run's set, with its values (timing keys aside).
  let missing = 0;
  let differing = 0;
  for (const [k, v] of base.points) {
    const got = chaos.points.get(k);
    if (got === undefined) {
      missing++;
      note(`metric point ${k} missing`);
    } else if (!TIMING_KEYS.has(k.split('/').at(-1)!) && got !== v) {
      differing++;
      note(`metric point ${k}: ${got}, undisturbed ${v}`);
    }
  }
  const extraKeys = [...chaos.points.keys()].filter((k) => !base.points.has(k));
  for (const k of extraKeys.slice(0, 5)) note(`metric point ${k} not in the undisturbed run`);

  // Final metrics.
  const baseTrials = new Map(base.trials.map((t) => [t.id, t]));
  const finalDiffering: Comparison['finalDiffering'] = [];
  for (const t of chaos.trials) {
    const b = baseTrials.get(t.id);
    if (!b) {
      finalDiffering.push({ id: t.id, what: 'not in the undisturbed run' });
      continue;
    }
    if (t.bestMetric !== b.bestMetric) finalDiffering.push({ id: t.id, what: `bestMetric ${t.bestMetric}, undisturbed ${b.bestMetric}` });
    else if (summaryValues(t.summary) !== summaryValues(b.summary)) finalDiffering.push({ id: t.id, what: `summary ${summaryValues(t.summary)}, undisturbed ${summaryValues(b.summary)}` });
  }
  for (const d of finalDiffering.slice(0, 5)) note(`trial ${d.id.slice(0, 10)} final metrics: ${d.what.slice(0, 300)}`);

  // W&B: each run's lines at offsets 0..n-1, `_step` = offset, once each, the undisturbed values.
  const wb = { linesExpected: 0, linesReceived: 0, missing: 0, duplicated: 0, differing: 0, resent: 0, runsNotComplete: 0 };
  const sends = historySends(opts.chaosWandb);
  for (const t of base.trials) {
    const runId = t.id.slice(0, 16);
    const want = opts.baseWandb.fake.history(opts.baseWandb.entity, opts.baseWandb.project, runId);
    const got = opts.chaosWandb.fake.history(opts.chaosWandb.entity, opts.chaosWandb.project, runId);
    const n = base.outbox.filter((r) => r.trialId === t.id && r.kind === 'history').length;
    wb.linesExpected += n;
    const steps = new Map<unknown, number>();
    got.forEach((line, i) => {
      if (!line) return;
      wb.linesReceived++;
      steps.set(line._step, (steps.get(line._step) ?? 0) + 1);
      if (line._step !== i) note(`W&B ${runId} offset ${i} holds _step ${String(line._step)}`);
      const w = want[i];
      if (w && lineValues(w) !== lineValues(line)) {
        wb.differing++;
        note(`W&B ${runId} step ${i}: ${lineValues(line).slice(0, 200)}, undisturbed ${lineValues(w).slice(0, 200)}`);
      }
    });
    for (let i = 0; i < n; i++) {
      if (!got[i]) {
        wb.missing++;
        note(`W&B ${runId} step ${i} missing`);
      }
    }
    if (got.length > n) note(`W&B ${runId} has ${got.length} lines, expected ${n}`);
    for (const [step, count] of steps) {
      if (count > 1) {
        wb.duplicated += count - 1;
        note(`W&B ${runId} _step ${String(step)} received ${count} times`);
      }
    }
    for (const c of sends.get(runId)?.values() ?? []) wb.resent += c - 1;
    const run = opts.chaosWandb.fake.run(opts.chaosWandb.entity, opts.chaosWandb.project, runId);
    if (!run?.complete) wb.runsNotComplete++;
  }

  // Outbox: every row delivered, by the workers or by `sweep wandb sync` after them.
  const before = new Map(opts.chaosOutboxBeforeSync.map((r) => [r.key, r.delivered]));
  const outbox = { rows: chaos.outbox.length, deliveredByWorkers: 0, deliveredBySync: 0, undelivered: 0, failed: 0 };
  for (const r of chaos.outbox) {
    if (!r.delivered) {
      outbox.undelivered++;
      if (r.failed) outbox.failed++;
      note(`outbox row ${r.key} undelivered${r.failed ? ' (failed)' : ''}`);
    } else if (before.get(r.key)) outbox.deliveredByWorkers++;
    else outbox.deliveredBySync++;
  }

  return {
    trials: chaos.trials.length,
    finished: chaos.trials.length - notFinished.length,
    notFinished,
    attempts: chaos.trials.reduce((s, t) => s + t.attempts, 0),
    points: { expected: base.points.size, stored: chaos.points.size, missing, extra: extraKeys.length, differing },
    finalDiffering,
    finalEqual: chaos.trials.length - finalDiffering.length,
    wandb: wb,
    outbox,
    examples,
  };
}

export function passed(c: Comparison, expectedTrials: number): boolean {
  return (
    c.trials === expectedTrials &&
    c.finished === c.trials &&
    c.points.missing === 0 &&
    c.points.extra === 0 &&
    c.points.differing === 0 &&
    c.finalDiffering.length === 0 &&
    c.wandb.missing === 0 &&
    c.wandb.duplicated === 0 &&
    c.wandb.differing === 0 &&
    c.wandb.runsNotComplete === 0 &&
    c.outbox.undelivered === 0
  );
}
