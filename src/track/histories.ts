/**
 * The database side of early termination: every trial's sweep-metric history, read in one
 * query, and the decision for one running trial (the rules themselves are pure, in
 * src/sweep/early-stop.ts).
 *
 * A trial's iterations are its epochs over its phases in order: the pretrain epochs, then the
 * gru epochs (MetricPoint.epoch counts from 0 within a phase). An epoch that did not report the
 * metric is left out, so the later ones move down a place, as W&B skips invalid values.
 */
import type { PrismaClient } from '../infra/db.ts';
import { stopRuns, type StopDecision, type TrialHistory, type TrialHistoryStatus } from '../sweep/early-stop.ts';
import type { EarlyTerminate } from '../sweep/schema.ts';
import type { SweepMetric } from './metrics.ts';

/**
 * Every trial of the sweep with its sweep-metric history: iteration = epoch index over the
 * trial's phases in order (pretrain epochs, then gru epochs). Trials come in expansion order;
 * one without any value of the metric has an empty history.
 */
export async function sweepHistories(prisma: PrismaClient, sweepId: string, metricName: string): Promise<TrialHistory[]> {
  // One statement for the whole sweep: it runs after every epoch of every trial. Each trial's
  // values come from the MetricPoint primary key (trialId, phase, epoch, key), so the cost
  // follows the sweep's own points, not the size of the table (a join over the key scanned
  // every sweep's points: about 2.5 times slower with five sweeps in the table).
  const rows = await prisma.$queryRaw<{ id: string; status: TrialHistoryStatus; values: number[] }[]>`
    SELECT t."id", t."status"::text AS "status",
           ARRAY(SELECT m."value" FROM "MetricPoint" m
                 WHERE m."trialId" = t."id" AND m."key" = ${metricName}
                 ORDER BY CASE m."phase" WHEN 'pretrain' THEN 0 WHEN 'gru' THEN 1 ELSE 2 END,
                          m."phase", m."epoch") AS "values"
    FROM "Trial" t
    WHERE t."sweepId" = ${sweepId}
    ORDER BY t."index", t."id"`;
  return rows.map((r) => ({
    trialId: r.id,
    status: r.status,
    // Postgres float8 can hold NaN and infinities; they are not measurements.
    values: r.values.map(Number).filter(Number.isFinite),
  }));
}

/**
 * The decision for one running trial, for the worker to call after each stored epoch: null to
 * go on (always, without a query, when the sweep has no `early_terminate`). The trial must be
 * `running` in the database to be stopped; the other trials of the sweep are the evidence.
 */
export async function earlyStopCheck(
  prisma: PrismaClient,
  args: { sweepId: string; trialId: string; config: EarlyTerminate | undefined; metric: SweepMetric },
): Promise<StopDecision | null> {
  if (!args.config) return null;
  const trials = await sweepHistories(prisma, args.sweepId, args.metric.name);
  return stopRuns(args.config, args.metric, trials, args.trialId)[0] ?? null;
}
