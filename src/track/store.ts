/**
 * The sweep database as the scheduler and the workers use it. Postgres is the source of truth;
 * the queue only says which trial to look at next.
 *
 * Who owns a trial (the storage contract):
 *  - `queued`: nobody. Any worker that receives its job may claim it.
 *  - `running`: the worker named in `worker` (hostname:pid), for as long as it heartbeats
 *    (`heartbeatAt`, every HEARTBEAT_MS). Every write a worker makes to a running trial is
 *    conditional on `worker` still being itself, so a worker that lost the trial writes nothing.
 *    A running trial whose heartbeat is older than STALE_MS has lost its owner (the process
 *    died, or its machine did); the next worker that receives its job claims it and resumes it
 *    from its last checkpoint. The queue re-delivers such a job once its lock (renewed by the
 *    live owner) expires, which happens well before STALE_MS.
 *  - `finished`, `diverged`, `stopped`, `cancelled`: ended; never run again. `failed`: ended
 *    after its last attempt; `sweep launch --retry` sets it (and `cancelled`) back to `queued`.
 *  - `cancelled` may also be set on a running trial by `sweep cancel`; its owner sees that at
 *    its next heartbeat or epoch, stops after checkpointing, and leaves it cancelled.
 */
import { statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Prisma, type PrismaClient, type TrialStatus } from '../infra/db.ts';
import type { PlannedTrial } from '../sweep/planned-trial.ts';
import type { SweepSpec } from '../sweep/schema.ts';
import type { TrialResult } from '../train/trainer.ts';
import { upsertMetrics } from './ingest.ts';
import { DEFAULT_METRIC, sweptKeys, type MetricRow, type SweepMetric, type ValAccuracy } from './metrics.ts';
import { savePredictions, type PredictionSet } from './predictions.ts';

export const TRIAL_STATUSES = ['queued', 'running', 'finished', 'failed', 'diverged', 'stopped', 'cancelled'] as const satisfies readonly TrialStatus[];
/** States a trial never leaves on its own. */
export const ENDED_STATUSES: readonly TrialStatus[] = ['finished', 'failed', 'diverged', 'stopped', 'cancelled'];

/** Trials that have ended, from counts by state. */
export function endedCount(counts: Readonly<Record<TrialStatus, number>>): number {
  return ENDED_STATUSES.reduce((sum, k) => sum + counts[k], 0);
}

/** How often a running trial's owner writes heartbeatAt. */
export const HEARTBEAT_MS = 10_000;
/** A running trial whose heartbeat is older than this has lost its owner. */
export const STALE_MS = 90_000;

/** Rows per INSERT: well under Postgres' 65,535 bind parameters. */
const INSERT_CHUNK = 1000;

const json = (v: unknown) => v as Prisma.InputJsonValue;

export function sweepMetric(spec: Pick<SweepSpec, 'metric'>): SweepMetric {
  return spec.metric ? { name: spec.metric.name, goal: spec.metric.goal } : DEFAULT_METRIC;
}

// ---------------------------------------------------------------------------------------------
// Launching

export interface SavedSweep {
  id: string;
  name: string;
  /** False when a sweep of this name already existed (its spec is replaced by this one). */
  created: boolean;
}

/** Creates the sweep, or updates the spec of the sweep with that name. */
export async function saveSweep(prisma: PrismaClient, spec: SweepSpec, storedSpec: unknown = spec): Promise<SavedSweep> {
  const metric = sweepMetric(spec);
  const data = { method: spec.method, spec: json(storedSpec), metricName: metric.name, metricGoal: metric.goal, status: 'active' };
  const existing = await prisma.sweep.findUnique({ where: { name: spec.name }, select: { id: true } });
  if (!existing) {
    try {
      const row = await prisma.sweep.create({ data: { name: spec.name, ...data }, select: { id: true } });
      return { id: row.id, name: spec.name, created: true };
    } catch (err) {
      // Another launch of the same name got there first: fall through to the update.
      if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002')) throw err;
    }
  }
  const row = await prisma.sweep.update({ where: { name: spec.name }, data, select: { id: true } });
  return { id: row.id, name: spec.name, created: false };
}

/**
 * Inserts the trials that are not there yet; returns how many were new. One statement per
 * INSERT_CHUNK trials, the columns passed as arrays and unnested by Postgres: for 10,000
 * trials this is several times faster than createMany, whose cost grows with the number of
 * bind parameters it builds.
 */
export async function insertTrials(prisma: PrismaClient, sweepId: string, trials: readonly PlannedTrial[]): Promise<number> {
  let created = 0;
  for (let i = 0; i < trials.length; i += INSERT_CHUNK) {
    const chunk = trials.slice(i, i + INSERT_CHUNK);
    created += await prisma.$executeRaw`
      INSERT INTO "Trial" ("id", "sweepId", "index", "params", "seed")
      SELECT t.id, ${sweepId}, t.index, t.params::jsonb, t.seed
      FROM unnest(${chunk.map((t) => t.id)}::text[], ${chunk.map((t) => t.index)}::int[],
                  ${chunk.map((t) => JSON.stringify(t.params))}::text[], ${chunk.map((t) => t.seed)}::int[])
        AS t(id, index, params, seed)
      ON CONFLICT ("id") DO NOTHING`;
  }
  return created;
}

/** Sets the sweep's trials in `from` back to queued (for `launch --retry`); returns how many. */
export async function requeueTrials(prisma: PrismaClient, sweepId: string, from: readonly TrialStatus[]): Promise<number> {
  const r = await prisma.trial.updateMany({
    // A cancelled trial still being stopped (finishedAt unset) keeps its owner until it stops:
    // requeueing it now would let a second worker train in the same directory.
    where: { sweepId, status: { in: [...from] }, NOT: { status: 'cancelled', finishedAt: null } },
    data: { status: 'queued', worker: null, finishedAt: null, heartbeatAt: null },
  });
  return r.count;
}

/** Ids of the sweep's queued trials, in expansion order. */
export async function queuedTrialIds(prisma: PrismaClient, sweepId: string): Promise<string[]> {
  const rows = await prisma.trial.findMany({ where: { sweepId, status: 'queued' }, select: { id: true }, orderBy: { index: 'asc' } });
  return rows.map((r) => r.id);
}

// ---------------------------------------------------------------------------------------------
// Running (the worker)

export interface ClaimedTrial {
  id: string;
  index: number;
  params: Record<string, unknown>;
  seed: number;
  attempts: number;
  bestMetric: number | null;
  sweep: { id: string; name: string; spec: SweepSpec; metric: SweepMetric };
}

export type Claim =
  | { outcome: 'claimed'; trial: ClaimedTrial }
  /** Not in the database (its sweep was deleted). */
  | { outcome: 'missing' }
  /** Ended, or failed: nothing to run. */
  | { outcome: 'ended'; status: TrialStatus }
  /** Running on another worker that is alive. */
  | { outcome: 'busy'; worker: string | null };

/**
 * Takes ownership of a queued trial, or of a running one whose owner is gone (see the top).
 *
 * `claimedAt` names the claim: made again with the same `claimedAt` by the same worker (its
 * first answer was lost with the connection, though the claim was stored), it is the same
 * claim, and counts no second attempt. A worker's running trial claimed with another
 * `claimedAt` is a new attempt (its job was retried after the attempt ended without a state).
 */
export async function claimTrial(prisma: PrismaClient, trialId: string, worker: string, staleMs = STALE_MS, claimedAt = new Date()): Promise<Claim> {
  const rows = await prisma.trial.updateManyAndReturn({
    where: {
      id: trialId,
      OR: [
        { status: 'queued' },
        {
          status: 'running',
          OR: [
            { worker, OR: [{ startedAt: null }, { startedAt: { not: claimedAt } }] },
            { heartbeatAt: null },
            { heartbeatAt: { lt: new Date(claimedAt.getTime() - staleMs) } },
          ],
        },
      ],
    },
    data: { status: 'running', worker, attempts: { increment: 1 }, startedAt: claimedAt, heartbeatAt: claimedAt, finishedAt: null },
    select: CLAIMED_FIELDS,
  });
  let row = rows[0];
  if (!row) {
    const t = await prisma.trial.findUnique({ where: { id: trialId }, select: { ...CLAIMED_FIELDS, status: true, worker: true, startedAt: true } });
    if (!t) return { outcome: 'missing' };
    const sameClaim = t.status === 'running' && t.worker === worker && t.startedAt?.getTime() === claimedAt.getTime();
    if (!sameClaim) return t.status === 'running' ? { outcome: 'busy', worker: t.worker } : { outcome: 'ended', status: t.status };
    row = t;
  }
  const sweep = await prisma.sweep.findUniqueOrThrow({ where: { id: row.sweepId }, select: { id: true, name: true, spec: true } });
  const spec = sweep.spec as unknown as SweepSpec;
  return {
    outcome: 'claimed',
    trial: {
      id: row.id,
      index: row.index,
      params: row.params as Record<string, unknown>,
      seed: row.seed,
      attempts: row.attempts,
      bestMetric: row.bestMetric,
      sweep: { id: sweep.id, name: sweep.name, spec, metric: sweepMetric(spec) },
    },
  };
}

const CLAIMED_FIELDS = { id: true, index: true, params: true, seed: true, attempts: true, bestMetric: true, sweepId: true } as const;

/**
 * Writes the heartbeat (and the best metric so far) of a trial this worker owns. Returns the
 * trial's status, or null when this worker no longer owns it.
 */
export async function heartbeat(prisma: PrismaClient, trialId: string, worker: string, bestMetric?: number | null): Promise<TrialStatus | null> {
  const rows = await prisma.trial.updateManyAndReturn({
    where: { id: trialId, worker },
    data: { heartbeatAt: new Date(), ...(bestMetric !== undefined && bestMetric !== null ? { bestMetric } : {}) },
    select: { status: true },
  });
  return rows[0]?.status ?? null;
}

/**
 * Metric points, idempotently: one row per (trial, phase, epoch, key); a replayed epoch
 * overwrites its values, never adds rows (see ingest.ts).
 */
export async function recordMetrics(prisma: PrismaClient, rows: readonly MetricRow[], owner?: string): Promise<number> {
  return upsertMetrics(prisma, rows, { owner });
}

export interface ArtifactRecord {
  kind: 'checkpoint' | 'model' | 'predictions';
  path: string;
  phase?: string | null;
  epoch?: number | null;
}

/** Size of a file, or of a directory's files, in bytes; null when unknown or beyond an Int. */
function sizeOf(path: string): number | null {
  try {
    const s = statSync(path);
    let total = s.size;
    if (s.isDirectory()) {
      total = 0;
      for (const e of readdirSync(path)) total += sizeOf(join(path, e)) ?? 0;
    }
    return total <= 2 ** 31 - 1 ? total : null;
  } catch {
    return null;
  }
}

export interface FinishedTrial {
  trialId: string;
  worker: string;
  result: TrialResult;
  bestMetric: number | null;
  /** Every epoch of the trial (also those of earlier attempts); rows already stored are kept. */
  metrics: readonly MetricRow[];
  artifacts: readonly ArtifactRecord[];
  /** Its validation and test predictions, stored with it for the ensemble builder. */
  predictions?: readonly PredictionSet[];
}

/**
 * Stores a trial's result, metrics and artifacts, and marks it finished if this worker still
 * owns it running. Returns the status the trial has afterwards (`cancelled` when it was
 * cancelled while it ran: its result is kept, its status too).
 */
export async function finishTrial(prisma: PrismaClient, f: FinishedTrial): Promise<TrialStatus | null> {
  await recordMetrics(prisma, f.metrics, f.worker);
  // Stored before, not inside, the short transaction below: megabytes of probabilities would
  // hold it open. Predictions of a trial another worker now owns are the same (same seed).
  await savePredictions(prisma, f.trialId, f.predictions ?? []);
  const artifacts = f.artifacts.map((a) => ({ trialId: f.trialId, kind: a.kind, path: a.path, phase: a.phase ?? null, epoch: a.epoch ?? null, bytes: sizeOf(a.path) }));
  return prisma.$transaction(async (tx) => {
    const data = { summary: json(f.result), bestMetric: f.bestMetric, backend: f.result.backend, finishedAt: new Date(), error: null };
    const done = await tx.trial.updateMany({ where: { id: f.trialId, worker: f.worker, status: 'running' }, data: { ...data, status: 'finished' } });
    let status: TrialStatus | null = 'finished';
    if (done.count === 0) {
      const kept = await tx.trial.updateManyAndReturn({ where: { id: f.trialId, worker: f.worker }, data, select: { status: true } });
      status = kept[0]?.status ?? null;
      if (status === null) return null; // another worker owns it now; it stores its own result
    }
    await tx.artifact.deleteMany({ where: { trialId: f.trialId } });
    await tx.artifact.createMany({ data: artifacts });
    return status;
  });
}

/**
 * Ends an attempt that did not finish: `failed` or `diverged` (with the reason), or back to
 * `queued` (a retry comes, or the trial was given back). Only while this worker owns it running.
 */
export async function endAttempt(
  prisma: PrismaClient,
  a: { trialId: string; worker: string; status: 'failed' | 'diverged' | 'queued'; error?: string | null; backend?: string | null },
): Promise<boolean> {
  const ended = a.status !== 'queued';
  const r = await prisma.trial.updateMany({
    where: { id: a.trialId, worker: a.worker, status: 'running' },
    data: {
      status: a.status,
      ...(a.error !== undefined ? { error: a.error } : {}),
      ...(a.backend ? { backend: a.backend } : {}),
      ...(ended ? { finishedAt: new Date() } : { worker: null, heartbeatAt: null }),
    },
  });
  return r.count > 0;
}

/**
 * A trial the queue gave up on without any worker running it to the end: its job stalled
 * (its worker died) more often than the queue allows. Marks it failed unless it has ended.
 */
export async function failAbandoned(prisma: PrismaClient, trialId: string, error: string): Promise<boolean> {
  const r = await prisma.trial.updateMany({
    where: { id: trialId, status: { in: ['queued', 'running'] } },
    data: { status: 'failed', error, finishedAt: new Date(), heartbeatAt: null },
  });
  return r.count > 0;
}

/**
 * A trial stopped by early termination: `stopped`, with the rule's reason in `error`. Its
 * metrics and checkpoint stay (the checkpoint is recorded as an artifact). Only while this
 * worker owns it running; returns whether it did.
 */
export async function stopTrial(
  prisma: PrismaClient,
  a: { trialId: string; worker: string; reason: string; bestMetric: number | null; backend?: string | null; checkpoint?: string },
): Promise<boolean> {
  return prisma.$transaction(async (tx) => {
    const r = await tx.trial.updateMany({
      where: { id: a.trialId, worker: a.worker, status: 'running' },
      data: {
        status: 'stopped',
        error: a.reason,
        finishedAt: new Date(),
        heartbeatAt: null,
        ...(a.bestMetric !== null ? { bestMetric: a.bestMetric } : {}),
        ...(a.backend ? { backend: a.backend } : {}),
      },
    });
    if (r.count === 0) return false;
    if (a.checkpoint) {
      await tx.artifact.deleteMany({ where: { trialId: a.trialId, kind: 'checkpoint' } });
      await tx.artifact.create({ data: { trialId: a.trialId, kind: 'checkpoint', path: a.checkpoint, bytes: sizeOf(a.checkpoint) } });
    }
    return true;
  });
}

/** A cancelled trial whose owner has stopped it: record when. */
export async function stoppedCancelled(prisma: PrismaClient, trialId: string, worker: string): Promise<void> {
  await prisma.trial.updateMany({ where: { id: trialId, worker, status: 'cancelled' }, data: { finishedAt: new Date(), heartbeatAt: null } });
}

// ---------------------------------------------------------------------------------------------
// Cancelling

export interface CancelResult {
  sweep: { id: string; name: string };
  /** Trials that had not started; their jobs can be removed. */
  queued: string[];
  /** Trials that were running; their workers stop them after the running epoch. */
  running: number;
}

export async function cancelSweep(prisma: PrismaClient, sweep: { id: string; name: string }): Promise<CancelResult> {
  const now = new Date();
  const queued = await prisma.trial.updateManyAndReturn({
    where: { sweepId: sweep.id, status: 'queued' },
    data: { status: 'cancelled', finishedAt: now, worker: null },
    select: { id: true },
  });
  const running = await prisma.trial.updateMany({ where: { sweepId: sweep.id, status: 'running' }, data: { status: 'cancelled' } });
  await prisma.sweep.update({ where: { id: sweep.id }, data: { status: 'cancelled' } });
  return { sweep, queued: queued.map((r) => r.id), running: running.count };
}

// ---------------------------------------------------------------------------------------------
// Reading: where a sweep stands

export type StatusCounts = Record<(typeof TRIAL_STATUSES)[number], number>;

export interface BestTrial extends ValAccuracy {
  trialId: string;
  index: number;
  value: number;
  params: Record<string, unknown>;
  seed: number;
  status: TrialStatus;
}

export interface SweepStatus {
  id: string;
  name: string;
  method: string;
  status: string;
  metric: SweepMetric;
  /** Names of the swept parameters (the ones that differ between trials). */
  swept: string[];
  createdAt: string;
  total: number;
  counts: StatusCounts;
  /** Best finished trial by the sweep metric, else the best running one so far; null if none. */
  best: BestTrial | null;
  throughput: {
    /** Trials ended per hour since the first one started. */
    trialsPerHour: number | null;
    /** Training images per second summed over running trials (their last epoch). */
    imagesPerSecond: number | null;
    /** Mean training images per second of one finished trial. */
    imagesPerSecondPerTrial: number | null;
  };
  /** Seconds until every queued and running trial has ended, at the current rate. */
  etaSeconds: number | null;
  firstStartedAt: string | null;
  lastFinishedAt: string | null;
}

export function emptyCounts(): StatusCounts {
  return Object.fromEntries(TRIAL_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

/** Finds a sweep by name, else by id. */
export async function findSweep(prisma: PrismaClient, nameOrId: string): Promise<{ id: string; name: string } | null> {
  return (
    (await prisma.sweep.findUnique({ where: { name: nameOrId }, select: { id: true, name: true } })) ??
    (await prisma.sweep.findUnique({ where: { id: nameOrId }, select: { id: true, name: true } }))
  );
}

export async function trialCounts(prisma: PrismaClient, sweepId: string): Promise<StatusCounts> {
  const groups = await prisma.trial.groupBy({ by: ['status'], where: { sweepId }, _count: { _all: true } });
  const counts = emptyCounts();
  for (const g of groups) counts[g.status] = g._count._all;
  return counts;
}

/** The latest epoch's value of `key` for the trial aliased `t` (ties: the GRU phase, the later epoch). */
function latestPoint(key: string): Prisma.Sql {
  return Prisma.sql`(SELECT m."value" FROM "MetricPoint" m WHERE m."trialId" = t."id" AND m."key" = ${key}
    ORDER BY m."createdAt" DESC, (m."phase" = 'gru') DESC, m."epoch" DESC LIMIT 1)`;
}

/** ValAccuracy (a finished trial's from its result, any other's from its latest epoch) of the trials matching `where` (over `"Trial" t`), queued ones left out. */
async function valAccuracies(prisma: PrismaClient, where: Prisma.Sql): Promise<Map<string, ValAccuracy>> {
  const rows = await prisma.$queryRaw<{ id: string; char: number | null; seq: number | null }[]>`
    SELECT t."id",
      COALESCE((t."summary"->>'val_char_acc')::float8, ${latestPoint('val_char_acc')}) AS char,
      COALESCE((t."summary"->>'val_seq_acc')::float8, ${latestPoint('val_seq_acc')}) AS seq
    FROM "Trial" t WHERE ${where} AND t."status" <> 'queued'`;
  return new Map(rows.map((r) => [r.id, { valCharAcc: r.char, valSeqAcc: r.seq }]));
}

const NO_ACCURACY: ValAccuracy = { valCharAcc: null, valSeqAcc: null };

async function bestTrial(prisma: PrismaClient, sweepId: string, metric: SweepMetric): Promise<BestTrial | null> {
  const order = metric.goal === 'maximize' ? 'desc' : 'asc';
  for (const status of ['finished', 'running'] as const) {
    const t = await prisma.trial.findFirst({
      where: { sweepId, status, bestMetric: { not: null } },
      orderBy: [{ bestMetric: order }, { index: 'asc' }],
      select: { id: true, index: true, bestMetric: true, params: true, seed: true, status: true },
    });
    if (t && t.bestMetric !== null) {
      const acc = (await valAccuracies(prisma, Prisma.sql`t."id" = ${t.id}`)).get(t.id) ?? NO_ACCURACY;
      return { trialId: t.id, index: t.index, value: t.bestMetric, params: t.params as Record<string, unknown>, seed: t.seed, status: t.status, ...acc };
    }
  }
  return null;
}

export async function sweepStatus(prisma: PrismaClient, sweepId: string, now = new Date()): Promise<SweepStatus> {
  const sweep = await prisma.sweep.findUniqueOrThrow({ where: { id: sweepId } });
  const spec = sweep.spec as unknown as SweepSpec;
  const metric: SweepMetric = { name: sweep.metricName, goal: sweep.metricGoal };
  const counts = await trialCounts(prisma, sweepId);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const best = await bestTrial(prisma, sweepId, metric);
  const times = await prisma.trial.aggregate({ where: { sweepId }, _min: { startedAt: true }, _max: { finishedAt: true } });
  const [speed] = await prisma.$queryRaw<{ per_trial: number | null }[]>`
    SELECT avg(("summary"->>'images_per_s')::float8) AS per_trial
    FROM "Trial" WHERE "sweepId" = ${sweepId} AND "status" = 'finished' AND "summary" IS NOT NULL`;
  const [live] = await prisma.$queryRaw<{ total: number | null }[]>`
    SELECT sum(v) AS total FROM (
      SELECT DISTINCT ON (m."trialId") m."value" AS v
      FROM "MetricPoint" m JOIN "Trial" t ON t."id" = m."trialId"
      WHERE t."sweepId" = ${sweepId} AND t."status" = 'running' AND m."key" = 'images_per_s'
      ORDER BY m."trialId", m."createdAt" DESC
    ) latest`;

  const ended = endedCount(counts);
  const first = times._min.startedAt;
  const last = times._max.finishedAt;
  // The rate is measured over the time trials have been running: up to now while some run,
  // up to the last end once none does.
  const until = counts.running > 0 || counts.queued > 0 ? now : (last ?? now);
  const hours = first ? Math.max(0, until.getTime() - first.getTime()) / 3_600_000 : 0;
  const trialsPerHour = ended > 0 && hours > 0 ? ended / hours : null;
  const remaining = counts.queued + counts.running;
  const etaSeconds = remaining === 0 ? 0 : trialsPerHour ? (remaining / trialsPerHour) * 3600 : null;
  const swept = sweptKeys(spec?.parameters);
  return {
    id: sweep.id,
    name: sweep.name,
    method: sweep.method,
    status: sweep.status,
    metric,
    swept,
    createdAt: sweep.createdAt.toISOString(),
    total,
    counts,
    best,
    throughput: {
      trialsPerHour,
      imagesPerSecond: live?.total ?? null,
      imagesPerSecondPerTrial: speed?.per_trial ?? null,
    },
    etaSeconds,
    firstStartedAt: first?.toISOString() ?? null,
    lastFinishedAt: last?.toISOString() ?? null,
  };
}

/** Every sweep, newest first. */
export async function listSweeps(prisma: PrismaClient): Promise<Array<{ id: string; name: string }>> {
  return prisma.sweep.findMany({ select: { id: true, name: true }, orderBy: { createdAt: 'desc' } });
}

/** Per-trial rows for a progress display. */
export interface TrialRow extends ValAccuracy {
  id: string;
  index: number;
  status: TrialStatus;
  params: Record<string, unknown>;
  bestMetric: number | null;
  worker: string | null;
  error: string | null;
  attempts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export async function trialRows(prisma: PrismaClient, sweepId: string): Promise<TrialRow[]> {
  const rows = await prisma.trial.findMany({
    where: { sweepId },
    orderBy: { index: 'asc' },
    select: { id: true, index: true, status: true, params: true, bestMetric: true, worker: true, error: true, attempts: true, startedAt: true, finishedAt: true },
  });
  const acc = await valAccuracies(prisma, Prisma.sql`t."sweepId" = ${sweepId}`);
  return rows.map((r) => ({ ...r, params: r.params as Record<string, unknown>, ...(acc.get(r.id) ?? NO_ACCURACY) }));
}

