/**
 * Reading one trial in full (`sweep show`) and the live trials of a sweep (`sweep status`):
 * queries only, few round trips. Epochs are counted from 1 here, as the worker's log and the
 * checkpoint directories (`pretrain-e0001`) count them; the database stores them from 0.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Prisma, type PrismaClient, type TrialStatus } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import type { SweepSpec } from '../sweep/schema.ts';
import { UserError } from '../util/errors.ts';
import { trialDir } from '../infra/artifacts.ts';
import { better, sweptKeys, type SweepMetric } from './metrics.ts';
import { findSweep, STALE_MS, sweepStatus, type SweepStatus } from './store.ts';

/** Shortest id prefix `sweep show` accepts: shorter ones match too many trials to be useful. */
export const MIN_PREFIX = 6;
/** Candidates listed when a prefix is ambiguous. */
const MAX_CANDIDATES = 10;
/** Characters kept of an error's first line when it is shown as a reason. */
export const REASON_CHARS = 120;

/** The first line of an error message, cut to `max` characters. */
export function errorReason(error: string | null, max = REASON_CHARS): string | null {
  if (error === null) return null;
  const line = error.trim().split('\n')[0].trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function ageSeconds(at: Date | null, now: Date): number | null {
  return at ? Math.max(0, (now.getTime() - at.getTime()) / 1000) : null;
}

function plannedEpochs(params: Record<string, unknown>, phase: string | null): number | null {
  const v = phase ? params[`${phase}_epochs`] : undefined;
  return typeof v === 'number' ? v : null;
}

// ---------------------------------------------------------------------------------------------
// Status: running and failed trials of a sweep

export interface RunningTrial {
  id: string;
  index: number;
  worker: string | null;
  attempts: number;
  params: Record<string, unknown>;
  startedAt: string | null;
  heartbeatAt: string | null;
  heartbeatAgeSeconds: number | null;
  /** The heartbeat is older than STALE_MS: the owner is probably gone. */
  stale: boolean;
  /** Phase and epoch (from 1) of the trial's latest stored epoch; null before its first. */
  phase: string | null;
  epoch: number | null;
  /** Epochs the phase runs at most (its `<phase>_epochs` parameter). */
  epochs: number | null;
  /** The sweep metric at that epoch. */
  metric: number | null;
  /** Best value of the sweep metric so far. */
  bestMetric: number | null;
}

export interface ListOptions {
  /** At most this many rows (default: all). */
  limit?: number;
  now?: Date;
}

/**
 * The sweep's running trials in index order, each with its latest epoch and the sweep metric
 * there: one statement (DISTINCT ON picks every trial's latest metric point).
 */
export async function runningTrials(prisma: PrismaClient, sweepId: string, opts: ListOptions = {}): Promise<RunningTrial[]> {
  const now = opts.now ?? new Date();
  const rows = await prisma.$queryRaw<
    Array<{
      id: string;
      index: number;
      worker: string | null;
      attempts: number;
      params: unknown;
      startedAt: Date | null;
      heartbeatAt: Date | null;
      bestMetric: number | null;
      phase: string | null;
      epoch: number | null;
      metric: number | null;
    }>
  >`
    WITH running AS (
      SELECT t."id", t."index", t."worker", t."attempts", t."params", t."startedAt", t."heartbeatAt", t."bestMetric"
      FROM "Trial" t
      WHERE t."sweepId" = ${sweepId} AND t."status" = 'running'
      ORDER BY t."index"
      ${opts.limit !== undefined ? Prisma.sql`LIMIT ${opts.limit}` : Prisma.empty}
    ), latest AS (
      -- Only the listed trials' points are sorted.
      SELECT DISTINCT ON (m."trialId") m."trialId", m."phase", m."epoch"
      FROM "MetricPoint" m JOIN running r ON r."id" = m."trialId"
      -- Rows of one epoch share a timestamp; the phase order and epoch break ties.
      ORDER BY m."trialId", m."createdAt" DESC, (m."phase" = 'gru') DESC, m."epoch" DESC
    )
    SELECT r.*, l."phase", l."epoch", v."value" AS "metric"
    FROM running r
    LEFT JOIN latest l ON l."trialId" = r."id"
    LEFT JOIN "MetricPoint" v ON v."trialId" = l."trialId" AND v."phase" = l."phase" AND v."epoch" = l."epoch"
      AND v."key" = (SELECT "metricName" FROM "Sweep" WHERE "id" = ${sweepId})
    ORDER BY r."index"`;
  return rows.map((r) => {
    const params = (r.params ?? {}) as Record<string, unknown>;
    const age = ageSeconds(r.heartbeatAt, now);
    return {
      id: r.id,
      index: Number(r.index),
      worker: r.worker,
      attempts: Number(r.attempts),
      params,
      startedAt: r.startedAt?.toISOString() ?? null,
      heartbeatAt: r.heartbeatAt?.toISOString() ?? null,
      heartbeatAgeSeconds: age,
      stale: age !== null && age * 1000 > STALE_MS,
      phase: r.phase,
      epoch: r.epoch === null ? null : Number(r.epoch) + 1,
      epochs: plannedEpochs(params, r.phase),
      metric: r.metric,
      bestMetric: r.bestMetric,
    };
  });
}

export interface FailedTrial {
  id: string;
  index: number;
  status: Extract<TrialStatus, 'failed' | 'diverged'>;
  worker: string | null;
  attempts: number;
  params: Record<string, unknown>;
  /** First line of the error, shortened (`sweep show` prints all of it). */
  reason: string | null;
  finishedAt: string | null;
}

/** The sweep's failed and diverged trials, the latest to end first. */
export async function failedTrials(prisma: PrismaClient, sweepId: string, opts: ListOptions = {}): Promise<FailedTrial[]> {
  const rows = await prisma.trial.findMany({
    where: { sweepId, status: { in: ['failed', 'diverged'] } },
    orderBy: [{ finishedAt: { sort: 'desc', nulls: 'last' } }, { index: 'asc' }],
    take: opts.limit,
    select: { id: true, index: true, status: true, worker: true, attempts: true, params: true, error: true, finishedAt: true },
  });
  return rows.map((r) => ({
    id: r.id,
    index: r.index,
    status: r.status as FailedTrial['status'],
    worker: r.worker,
    attempts: r.attempts,
    params: r.params as Record<string, unknown>,
    reason: errorReason(r.error),
    finishedAt: r.finishedAt?.toISOString() ?? null,
  }));
}

/** A sweep's status with its running and failed trials (every SweepStatus field kept). */
export interface SweepStatusView extends SweepStatus {
  /** Running trials in index order. */
  runningTrials: RunningTrial[];
  /** Failed and diverged trials, the latest to end first. */
  failedTrials: FailedTrial[];
}

/** sweepStatus plus the running and failed trials; `limit` caps both lists (counts has the totals). */
export async function sweepStatusView(prisma: PrismaClient, sweepId: string, opts: ListOptions = {}): Promise<SweepStatusView> {
  const now = opts.now ?? new Date();
  const [status, running, failed] = await Promise.all([
    sweepStatus(prisma, sweepId, now),
    runningTrials(prisma, sweepId, { limit: opts.limit, now }),
    failedTrials(prisma, sweepId, { limit: opts.limit }),
  ]);
  return { ...status, runningTrials: running, failedTrials: failed };
}

// ---------------------------------------------------------------------------------------------
// Show: one trial

export interface TrialParam {
  /** Dotted name for nested groups. */
  name: string;
  value: unknown;
  /** Varied by the sweep (not a train-block default or a constant). */
  swept: boolean;
}

export interface EpochRow {
  /** From 1. */
  epoch: number;
  /** Every number stored for the epoch: loss, val_seq_acc, images_per_s, seconds, ... */
  values: Record<string, number>;
}

export interface PhaseView {
  phase: string;
  /** Epochs the phase runs at most, when the params say. */
  planned: number | null;
  epochs: EpochRow[];
  /** The sweep metric per epoch (null where an epoch lacks it). */
  metric: Array<number | null>;
}

export interface CheckpointOnDisk {
  phase: string;
  /** From 1, as in the directory name. */
  epoch: number;
  /** Directory name under checkpoints/. */
  name: string;
  /** The checkpoint a resumed trial starts from. */
  latest: boolean;
  /** The phase's best weights so far (by val_seq_acc), which the trial keeps. */
  best: boolean;
}

export interface ArtifactView {
  kind: string;
  path: string;
  phase: string | null;
  epoch: number | null;
  bytes: number | null;
  /** Whether the path exists on this machine. */
  exists: boolean;
}

export interface TrialView {
  sweep: { id: string; name: string; method: string; metric: SweepMetric };
  id: string;
  index: number;
  status: TrialStatus;
  error: string | null;
  attempts: number;
  worker: string | null;
  backend: string | null;
  seed: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  heartbeatAt: string | null;
  heartbeatAgeSeconds: number | null;
  /** From the latest attempt's start to its end (or to now while it runs). */
  durationSeconds: number | null;
  /** Sum of the stored epochs' `seconds`. */
  epochSeconds: number | null;
  params: TrialParam[];
  /** The sweep metric: the stored best (or the best epoch's value) and where it was reached. */
  metric: SweepMetric & { best: number | null; bestAt: { phase: string; epoch: number } | null };
  phases: PhaseView[];
  /** The trial's result (val and test metrics, speed, epochs run) once it has one. */
  summary: Record<string, unknown> | null;
  artifacts: ArtifactView[];
  checkpoints: { dir: string; exists: boolean; found: CheckpointOnDisk[] };
  /** Link to the run on Weights & Biases; null when there is none. */
  wandb: string | null;
  /** Why the link could not be looked up, when it could not. */
  wandbError?: string;
}

export interface TrialViewOptions {
  /** Looks up the trial's W&B run; without it the view has no link. */
  wandbLink?: (trialId: string) => Promise<string | null>;
  /** For SWEEP_ARTIFACTS / SWEEP_HOME, where the checkpoints are when no artifact names them. */
  env?: Env;
  now?: Date;
}

const TRIAL_ID_CHARS = /^[0-9A-Za-z]+$/;

function flatten(obj: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v as Record<string, unknown>, name));
    else out.push([name, v]);
  }
  return out;
}

/**
 * The id of the trial `ref` names: a full id, a unique id prefix of at least MIN_PREFIX
 * characters, or `SWEEP#INDEX` (sweep name or id, expansion index). A UserError saying what
 * was expected (and, for an ambiguous prefix, listing the candidates) otherwise.
 */
export async function resolveTrialRef(prisma: PrismaClient, ref: string): Promise<string> {
  const r = ref.trim();
  if (r === '') throw new UserError('no trial given; name one by id, id prefix (6+ characters) or SWEEP#INDEX');
  const hash = r.lastIndexOf('#');
  if (hash >= 0) {
    const sweepRef = r.slice(0, hash);
    const indexText = r.slice(hash + 1);
    if (!sweepRef || !/^\d+$/.test(indexText)) {
      throw new UserError(`trial ${JSON.stringify(ref)}: expected SWEEP#INDEX with a sweep name and a whole-number index, e.g. my-sweep#3`);
    }
    const sweep = await findSweep(prisma, sweepRef);
    if (!sweep) throw new UserError(`trial ${JSON.stringify(ref)}: no sweep named ${JSON.stringify(sweepRef)}; \`sweep status\` lists the sweeps`);
    const index = Number(indexText);
    const t = await prisma.trial.findFirst({ where: { sweepId: sweep.id, index }, select: { id: true } });
    if (t) return t.id;
    const range = await prisma.trial.aggregate({ where: { sweepId: sweep.id }, _min: { index: true }, _max: { index: true }, _count: true });
    throw new UserError(
      `trial ${JSON.stringify(ref)}: sweep ${sweep.name} has no trial #${index}` +
        (range._count > 0 ? `; its ${range._count} trial(s) are #${range._min.index}..#${range._max.index}` : '; it has no trials'),
    );
  }
  const exact = await prisma.trial.findUnique({ where: { id: r }, select: { id: true } });
  if (exact) return exact.id;
  const bare = async () => {
    const sweep = await findSweep(prisma, r);
    return sweep ? `; ${sweep.name} is a sweep: name one of its trials as ${sweep.name}#INDEX` : '';
  };
  if (!TRIAL_ID_CHARS.test(r) || r.length < MIN_PREFIX) {
    throw new UserError(
      `trial ${JSON.stringify(ref)}: expected a trial id, an id prefix of at least ${MIN_PREFIX} characters, or SWEEP#INDEX${await bare()}`,
    );
  }
  const matches = await prisma.trial.findMany({
    where: { id: { startsWith: r.toLowerCase() } },
    orderBy: { id: 'asc' },
    take: MAX_CANDIDATES + 1,
    select: { id: true, index: true, status: true, sweep: { select: { name: true } } },
  });
  if (matches.length === 1) return matches[0].id;
  if (matches.length === 0) throw new UserError(`trial ${JSON.stringify(ref)}: no trial id starts with ${JSON.stringify(r)}${await bare()}`);
  const listed = matches.slice(0, MAX_CANDIDATES).map((m) => `  ${m.id}  ${m.sweep.name}#${m.index}  ${m.status}`);
  if (matches.length > MAX_CANDIDATES) listed.push('  and more');
  throw new UserError(`trial ${JSON.stringify(ref)}: the prefix matches several trials; give more characters:\n${listed.join('\n')}`);
}

const CHECKPOINT_DIR = /^(.+)-e(\d+)$/;

/** Checkpoint directories under `dir` (the trainer's `<phase>-e<epoch>`), with its state's view of them. */
export function checkpointsOnDisk(dir: string): { exists: boolean; found: CheckpointOnDisk[] } {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return { exists: false, found: [] };
  }
  let latest: string | null = null;
  const best = new Set<string>();
  try {
    const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as { checkpoint?: unknown; best?: Record<string, { dir?: unknown } | undefined> };
    if (typeof state.checkpoint === 'string') latest = state.checkpoint;
    for (const b of Object.values(state.best ?? {})) if (typeof b?.dir === 'string') best.add(b.dir);
  } catch {
    // No state (or one being rewritten): the directories alone are listed.
  }
  const phaseRank = (p: string) => (p === 'pretrain' ? 0 : p === 'gru' ? 1 : 2);
  const found = entries
    .map((name) => ({ name, m: CHECKPOINT_DIR.exec(name) }))
    .filter((e): e is { name: string; m: RegExpExecArray } => e.m !== null)
    .map(({ name, m }) => ({ phase: m[1], epoch: Number(m[2]), name, latest: name === latest, best: best.has(name) }))
    .sort((a, b) => phaseRank(a.phase) - phaseRank(b.phase) || a.phase.localeCompare(b.phase) || a.epoch - b.epoch);
  return { exists: true, found };
}

/** Everything known about one trial: its row, sweep, epochs, artifacts and checkpoints. */
export async function trialView(prisma: PrismaClient, ref: string, opts: TrialViewOptions = {}): Promise<TrialView> {
  const now = opts.now ?? new Date();
  const id = await resolveTrialRef(prisma, ref);
  const t = await prisma.trial.findUniqueOrThrow({
    where: { id },
    include: {
      sweep: { select: { id: true, name: true, method: true, spec: true, metricName: true, metricGoal: true } },
      artifacts: { orderBy: [{ kind: 'asc' }, { phase: 'asc' }, { createdAt: 'asc' }] },
    },
  });
  const points = await prisma.metricPoint.findMany({ where: { trialId: id }, select: { phase: true, epoch: true, key: true, value: true } });

  const metricDef: SweepMetric = { name: t.sweep.metricName, goal: t.sweep.metricGoal };
  const params = (t.params ?? {}) as Record<string, unknown>;
  const spec = t.sweep.spec as unknown as SweepSpec | null;
  const swept = new Set(sweptKeys(spec?.parameters));

  // Epochs by phase, phases in training order.
  const byPhase = new Map<string, Map<number, Record<string, number>>>();
  for (const p of points) {
    let epochs = byPhase.get(p.phase);
    if (!epochs) byPhase.set(p.phase, (epochs = new Map()));
    let values = epochs.get(p.epoch);
    if (!values) epochs.set(p.epoch, (values = {}));
    values[p.key] = p.value;
  }
  const order = (ph: string) => (ph === 'pretrain' ? 0 : ph === 'gru' ? 1 : 2);
  const phases: PhaseView[] = [...byPhase.keys()]
    .sort((a, b) => order(a) - order(b) || a.localeCompare(b))
    .map((phase) => {
      const epochs = [...byPhase.get(phase)!.entries()].sort(([a], [b]) => a - b).map(([e, values]) => ({ epoch: e + 1, values }));
      return { phase, planned: plannedEpochs(params, phase), epochs, metric: epochs.map((e) => e.values[metricDef.name] ?? null) };
    });

  let bestEpoch: { phase: string; epoch: number; value: number } | null = null;
  for (const ph of phases) {
    for (let i = 0; i < ph.epochs.length; i++) {
      const v = ph.metric[i];
      if (v !== null && better(metricDef.goal, v, bestEpoch?.value)) bestEpoch = { phase: ph.phase, epoch: ph.epochs[i].epoch, value: v };
    }
  }
  const epochSeconds = points.filter((p) => p.key === 'seconds').reduce<number | null>((s, p) => (s ?? 0) + p.value, null);

  const artifacts: ArtifactView[] = t.artifacts.map((a) => ({ kind: a.kind, path: a.path, phase: a.phase, epoch: a.epoch, bytes: a.bytes, exists: existsSync(a.path) }));
  const ckptDir = t.artifacts.find((a) => a.kind === 'checkpoint')?.path ?? path.join(trialDir(id, opts.env), 'checkpoints');

  let wandb: string | null = null;
  let wandbError: string | undefined;
  if (opts.wandbLink) {
    try {
      wandb = await opts.wandbLink(id);
    } catch (err) {
      wandbError = (err as Error).message;
    }
  }

  const end = t.finishedAt ?? (t.status === 'running' ? now : null);
  return {
    sweep: { id: t.sweep.id, name: t.sweep.name, method: t.sweep.method, metric: metricDef },
    id: t.id,
    index: t.index,
    status: t.status,
    error: t.error,
    attempts: t.attempts,
    worker: t.worker,
    backend: t.backend,
    seed: t.seed,
    createdAt: t.createdAt.toISOString(),
    startedAt: t.startedAt?.toISOString() ?? null,
    finishedAt: t.finishedAt?.toISOString() ?? null,
    heartbeatAt: t.heartbeatAt?.toISOString() ?? null,
    heartbeatAgeSeconds: t.status === 'running' ? ageSeconds(t.heartbeatAt, now) : null,
    durationSeconds: t.startedAt && end ? Math.max(0, (end.getTime() - t.startedAt.getTime()) / 1000) : null,
    epochSeconds,
    params: flatten(params).map(([name, value]) => ({ name, value, swept: swept.has(name) })),
    metric: {
      ...metricDef,
      best: t.bestMetric ?? bestEpoch?.value ?? null,
      bestAt: bestEpoch ? { phase: bestEpoch.phase, epoch: bestEpoch.epoch } : null,
    },
    phases,
    summary: t.summary && typeof t.summary === 'object' && !Array.isArray(t.summary) ? (t.summary as Record<string, unknown>) : null,
    artifacts,
    checkpoints: { dir: ckptDir, ...checkpointsOnDisk(ckptDir) },
    wandb,
    ...(wandbError !== undefined ? { wandbError } : {}),
  };
}
