/**
 * Writing the W&B outbox (the worker): what the mirror has to send, kept in Postgres next to
 * the metrics. One statement per call, no network. A row's key names what it says
 * (`<trial>/history/<phase>/<epoch>`, ...); writing a key again overwrites the row and sends it
 * again. A history row's step (its line offset in the run's wandb-history.jsonl) is the epoch's
 * place in the trial's history (0-based over both phases), the same on every attempt, so an
 * epoch written late (its first attempt died before writing it) still lands in its place; a
 * line waits until the one before it is in the outbox, so W&B never gets a gap.
 *
 * Sending the rows is outbox-deliver.ts; counting them, outbox-status.ts.
 */
import { hostname } from 'node:os';
import { Prisma, type PrismaClient } from '../../infra/db.ts';
import type { EpochMetrics } from '../../train/trainer.ts';
import { jsonText } from './json.ts';

export { jsonText } from './json.ts';

export type OutboxKind = 'sweep' | 'run' | 'history' | 'preempt' | 'summary' | 'finish';

/** Final trial states and the exit code the run reports to W&B (0 = finished, else failed). */
export const EXIT_CODES: Readonly<Record<string, number>> = { finished: 0, stopped: 0, failed: 1, diverged: 1, cancelled: 1 };

export const outboxKey = {
  sweep: (sweepId: string) => `sweep/${sweepId}`,
  run: (trialId: string) => `${trialId}/run`,
  history: (trialId: string, phase: string, epoch: number) => `${trialId}/history/${phase}/${epoch}`,
  preempt: (trialId: string) => `${trialId}/preempt`,
  summary: (trialId: string) => `${trialId}/summary`,
  finish: (trialId: string) => `${trialId}/finish`,
};

/** Overwrite on a repeated key: the new payload is sent again, from scratch. */
const OVERWRITE = Prisma.sql`
  "payload" = EXCLUDED."payload", "revision" = "WandbOutbox"."revision" + 1, "deliveredAt" = NULL,
  "failedAt" = NULL, "droppedAt" = NULL, "attempts" = 0, "nextAttemptAt" = now(), "lastError" = NULL, "updatedAt" = now()`;

export interface RunStart {
  trialId: string;
  sweepId: string;
  sweepName: string;
  params: Record<string, unknown>;
  attempt: number;
  /** The sweep file as validated (SweepSpec); without it the sweep is not registered on W&B. */
  spec?: unknown;
}

/** The parts of our sweep file W&B's sweep configuration has, and a local controller. */
export function wandbSweepConfig(sweepName: string, spec: unknown): Record<string, unknown> {
  const s = (spec && typeof spec === 'object' ? spec : {}) as Record<string, unknown>;
  const config: Record<string, unknown> = { name: sweepName };
  for (const k of ['method', 'metric', 'parameters', 'early_terminate', 'run_cap', 'description'] as const) {
    if (s[k] !== undefined) config[k] = s[k];
  }
  // Our scheduler proposes the runs; W&B's must not.
  config.controller = { type: 'local' };
  return config;
}

/**
 * Rows for a run's start: its upsert (config = params, group and tags = the sweep) and, once
 * per sweep, the sweep's registration. A new attempt drops the previous attempt's unsent
 * summary, exit and preemption notice, so they cannot end the run while it trains again. The
 * run keeps its id, so W&B resumes the same run (its history goes on after the lines it has).
 */
export async function writeRunStarted(prisma: PrismaClient, t: RunStart, now = Date.now()): Promise<void> {
  const run = { sweepName: t.sweepName, params: t.params, attempt: t.attempt, startedAt: now, host: hostname() };
  const rows = [Prisma.sql`(${outboxKey.run(t.trialId)}, ${t.sweepId}, ${t.trialId}, 'run', ${jsonText(run)}::jsonb, now())`];
  if (t.spec !== undefined) {
    const sweep = { name: t.sweepName, config: wandbSweepConfig(t.sweepName, t.spec) };
    rows.push(Prisma.sql`(${outboxKey.sweep(t.sweepId)}, ${t.sweepId}, NULL, 'sweep', ${jsonText(sweep)}::jsonb, now())`);
  }
  await prisma.$executeRaw`
    WITH dropped AS (
      DELETE FROM "WandbOutbox"
      WHERE "trialId" = ${t.trialId} AND "kind" IN ('summary', 'finish', 'preempt') AND "deliveredAt" IS NULL
    )
    INSERT INTO "WandbOutbox" ("key", "sweepId", "trialId", "kind", "payload", "updatedAt")
    VALUES ${Prisma.join(rows)}
    ON CONFLICT ("key") DO UPDATE SET ${OVERWRITE}
    WHERE "WandbOutbox"."kind" <> 'sweep'`;
}

/** A history line's content: the epoch's metrics, when it was measured, how long into the run. */
export function historyPayload(m: EpochMetrics, now = Date.now(), startedAt?: number): Record<string, unknown> & { phase: string; epoch: number } {
  return {
    ...m,
    _timestamp: now / 1000,
    ...(startedAt !== undefined ? { _runtime: Math.max(0, (now - startedAt) / 1000) } : {}),
  };
}

/**
 * One history line per (phase, epoch), at `step`: the epoch's place in the trial's history. A
 * line written again with other values keeps its step and replaces the unsent one; once W&B
 * has the line it keeps it (its history only grows, as with the SDK, whose steps only
 * increase). Throws when the trial is not in the database.
 */
export async function writeEpoch(prisma: PrismaClient, trialId: string, payload: Record<string, unknown> & { phase: string; epoch: number }, step: number): Promise<void> {
  if (!Number.isInteger(step) || step < 0) throw new Error(`W&B outbox: step ${step} of ${trialId} ${payload.phase} epoch ${payload.epoch} is not a whole number >= 0`);
  const n = await prisma.$executeRaw`
    INSERT INTO "WandbOutbox" ("key", "sweepId", "trialId", "kind", "step", "payload", "updatedAt")
    SELECT ${outboxKey.history(trialId, payload.phase, payload.epoch)}, t."sweepId", t."id", 'history',
           ${step}::int,
           ${jsonText(payload)}::jsonb, now()
    FROM "Trial" t WHERE t."id" = ${trialId}
    ON CONFLICT ("key") DO UPDATE SET ${OVERWRITE}
    -- The same epoch written again with the same values (a worker storing a trial's whole
    -- history at its end) changes nothing and sends nothing; only when it was measured does.
    WHERE "WandbOutbox"."deliveredAt" IS NULL
      AND ("WandbOutbox"."payload" - '_timestamp' - '_runtime') IS DISTINCT FROM (EXCLUDED."payload" - '_timestamp' - '_runtime')`;
  if (n === 0 && !(await prisma.trial.findUnique({ where: { id: trialId }, select: { id: true } }))) {
    throw new Error(`W&B outbox: trial ${trialId} is not in the database`);
  }
}

/**
 * The run's end: its summary, its exit (last), and its upsert again, now with the phases it
 * went through and its final status in its tags.
 */
export async function writeRunEnded(prisma: PrismaClient, trialId: string, status: string, summary: Record<string, unknown>): Promise<void> {
  const exitcode = EXIT_CODES[status];
  if (exitcode === undefined) throw new Error(`W&B outbox: ${JSON.stringify(status)} is not a final trial status (${Object.keys(EXIT_CODES).join(', ')})`);
  const n = await prisma.$executeRaw`
    WITH t AS (SELECT "id", "sweepId" FROM "Trial" WHERE "id" = ${trialId}),
    run AS (
      UPDATE "WandbOutbox" SET "payload" = "payload" || jsonb_build_object('status', ${status}::text),
        "revision" = "revision" + 1, "deliveredAt" = NULL, "failedAt" = NULL, "attempts" = 0,
        "nextAttemptAt" = now(), "lastError" = NULL, "updatedAt" = now()
      WHERE "key" = ${outboxKey.run(trialId)}
    )
    INSERT INTO "WandbOutbox" ("key", "sweepId", "trialId", "kind", "payload", "updatedAt")
    SELECT ${outboxKey.summary(trialId)}, t."sweepId", t."id", 'summary', ${jsonText({ ...summary, status })}::jsonb, now() FROM t
    UNION ALL
    SELECT ${outboxKey.finish(trialId)}, t."sweepId", t."id", 'finish', ${jsonText({ status, exitcode })}::jsonb, now() FROM t
    ON CONFLICT ("key") DO UPDATE SET ${OVERWRITE}`;
  if (n === 0) throw new Error(`W&B outbox: trial ${trialId} is not in the database`);
}

/**
 * The attempt stops without finishing and the trial goes back to the queue: W&B is told the
 * run is preempting (what the SDK sends for `run.mark_preempting()`), so it shows the run as
 * preempted instead of crashed until an attempt resumes it.
 */
export async function writeRunPreempted(prisma: PrismaClient, trialId: string): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO "WandbOutbox" ("key", "sweepId", "trialId", "kind", "payload", "updatedAt")
    SELECT ${outboxKey.preempt(trialId)}, t."sweepId", t."id", 'preempt', '{"preempting":true}'::jsonb, now()
    FROM "Trial" t WHERE t."id" = ${trialId}
    ON CONFLICT ("key") DO UPDATE SET ${OVERWRITE}`;
}
