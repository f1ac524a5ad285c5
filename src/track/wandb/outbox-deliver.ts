/**
 * Delivering the W&B outbox (a loop in each online worker, or `sweep wandb sync`): per run, in
 * order: the run upsert, then history lines by step, then a preemption notice or the summary
 * and the exit. A row that failed for now holds back the rows after it: failures back off
 * exponentially with jitter up to `maxAttempts`, then the row is undeliverable (with the
 * reason) until `sweep wandb sync` retries it. A file-stream chunk W&B refuses for good (400,
 * 403, 404, 409) is dropped instead, as the SDK drops it: logged, kept as undeliverable, and
 * the run goes on to its summary and exit.
 *
 * Every history line goes to its fixed offset (its step), so sending it again after an
 * ambiguous failure (a timeout after W&B stored it) overwrites that line instead of adding one:
 * each line arrives once. A run upserted again (a resumed trial) goes on at the run's
 * `historyLineCount`, as the SDK resumes: lines W&B already has are not sent again.
 *
 * Who delivers a run: whoever holds its lease (WandbRun.leaseOwner until leaseUntil, taken
 * atomically), so two workers never send the same run's rows at once; a loop that dies loses
 * its leases when they expire. Sweep registrations are leased the same way (WandbSweep).
 */
import { hostname } from 'node:os';
import YAML from 'yaml';
import { Prisma, type PrismaClient } from '../../infra/db.ts';
import { WandbClient, WandbRequestError, type FileStreamBody } from './client.ts';
import { redact, redactError, wandbRunId, wandbRunUrl, wandbSweepUrl, type WandbSettings } from './config.ts';
import { wandbJson } from './json.ts';
import { outboxKey, type OutboxKind } from './outbox-write.ts';

// Rows of one run, in the order they must arrive.
const KIND_ORDER = Prisma.sql`(CASE o."kind" WHEN 'run' THEN 0 WHEN 'history' THEN 1 WHEN 'preempt' THEN 2 WHEN 'summary' THEN 3 ELSE 4 END)`;

/** The first undelivered row of each run (a failed one included: it holds the run back; a dropped one does not). */
const HEADS = (filter: Prisma.Sql) => Prisma.sql`
  SELECT DISTINCT ON (o."trialId") o."trialId", o."sweepId", o."kind", o."step", o."nextAttemptAt", o."failedAt"
  FROM "WandbOutbox" o
  WHERE o."trialId" IS NOT NULL AND o."deliveredAt" IS NULL AND o."droppedAt" IS NULL ${filter}
  ORDER BY o."trialId", ${KIND_ORDER}, o."step" NULLS FIRST, o."id"`;

/** A head (h) that is a run upsert whose sweep's registration is still to be sent waits for it. */
const WAITS_FOR_SWEEP = Prisma.sql`(h."kind" = 'run' AND EXISTS (
  SELECT 1 FROM "WandbOutbox" sw
  WHERE sw."key" = 'sweep/' || h."sweepId" AND sw."deliveredAt" IS NULL AND sw."failedAt" IS NULL))`;

/** A row (alias `a`) that is a history line whose previous line is not in the outbox yet waits for it. */
const waitsForLine = (a: 'h' | 'o') => Prisma.sql`(${Prisma.raw(a)}."kind" = 'history' AND ${Prisma.raw(a)}."step" > 0 AND NOT EXISTS (
  SELECT 1 FROM "WandbOutbox" pl
  WHERE pl."trialId" = ${Prisma.raw(a)}."trialId" AND pl."kind" = 'history' AND pl."step" = ${Prisma.raw(a)}."step" - 1))`;
const WAITS_FOR_LINE = waitsForLine('h');

export interface DeliveryOptions {
  settings: WandbSettings & { apiKey: string };
  /** Who holds leases; default hostname:pid:random. */
  owner?: string;
  /** Per request; default 20 s. */
  timeoutMs?: number;
  /** First retry after about this long, doubling per attempt (plus up to 25% jitter); default 2 s. */
  backoffBaseMs?: number;
  /** Longest wait between two attempts of a row; default 5 min. */
  backoffMaxMs?: number;
  /** Attempts before a row is undeliverable; default 12 (about half an hour of outage). */
  maxAttempts?: number;
  /** How long a run stays with the loop that took it; default max(60 s, 3 x timeout). */
  leaseMs?: number;
  /** History lines per file-stream request; default 200. */
  batchLines?: number;
  /** Runs delivered at once; default 4. */
  parallel?: number;
  /** Only rows of this sweep. */
  sweepId?: string;
  fetch?: typeof fetch;
  /** Jitter source, [0, 1). */
  random?: () => number;
  log?: (line: string) => void;
}

export interface PassResult {
  /** Rows W&B accepted. */
  delivered: number;
  /** Rows that became undeliverable. */
  failed: number;
  /** Requests made for outbox rows. */
  attempted: number;
}

/** Thrown when W&B refuses the key (a 401, or Viewer refused): nothing will get through until it changes. */
export class WandbAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WandbAuthError';
  }
}

interface Row {
  id: string;
  kind: OutboxKind;
  key: string;
  step: number | null;
  payload: Record<string, unknown>;
  revision: number;
  attempts: number;
  due: boolean;
  failed: boolean;
  /** A history line whose previous line is not in the outbox yet. */
  waits: boolean;
}

interface RunTarget {
  trialId: string;
  sweepId: string;
  runId: string;
  entity: string | null;
  project: string | null;
  /** The last history step W&B has (or that was dropped); a line must come after it. */
  lastStep: number;
}

export class OutboxDelivery {
  readonly client: WandbClient;
  readonly owner: string;
  private readonly settings: WandbSettings & { apiKey: string };
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxAttempts: number;
  private readonly leaseMs: number;
  private readonly batchLines: number;
  private readonly parallel: number;
  private readonly random: () => number;
  private readonly log: (line: string) => void;
  private viewerEntity: string | null | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly opts: DeliveryOptions,
  ) {
    this.settings = opts.settings;
    const timeoutMs = opts.timeoutMs ?? 20_000;
    this.client = new WandbClient({ baseUrl: opts.settings.baseUrl, apiKey: opts.settings.apiKey, timeoutMs, fetch: opts.fetch });
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.backoffBaseMs = opts.backoffBaseMs ?? 2_000;
    this.backoffMaxMs = opts.backoffMaxMs ?? 300_000;
    this.maxAttempts = opts.maxAttempts ?? 12;
    this.leaseMs = opts.leaseMs ?? Math.max(60_000, 3 * timeoutMs);
    this.batchLines = opts.batchLines ?? 200;
    this.parallel = opts.parallel ?? 4;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => {});
  }

  private get sweepFilter(): Prisma.Sql {
    return this.opts.sweepId ? Prisma.sql`AND o."sweepId" = ${this.opts.sweepId}` : Prisma.empty;
  }

  /**
   * Sends what is due: sweep registrations, then up to `parallel` runs at a time, each as far
   * as it goes. Throws WandbAuthError on a refused key; never for a failed row.
   */
  async pass(signal?: AbortSignal): Promise<PassResult> {
    const total: PassResult = { delivered: 0, failed: 0, attempted: 0 };
    const add = (r: PassResult) => {
      total.delivered += r.delivered;
      total.failed += r.failed;
      total.attempted += r.attempted;
    };
    const sweeps = await this.prisma.$queryRaw<{ sweepId: string }[]>`
      SELECT o."sweepId" FROM "WandbOutbox" o LEFT JOIN "WandbSweep" s ON s."sweepId" = o."sweepId"
      WHERE o."kind" = 'sweep' AND o."deliveredAt" IS NULL AND o."failedAt" IS NULL AND o."nextAttemptAt" <= now()
        AND (s."leaseUntil" IS NULL OR s."leaseUntil" < now() OR s."leaseOwner" = ${this.owner}) ${this.sweepFilter}`;
    for (const s of sweeps) {
      if (signal?.aborted) return total;
      add(await this.deliverSweep(s.sweepId, signal));
    }
    const heads = await this.prisma.$queryRaw<{ trialId: string }[]>`
      SELECT h."trialId" FROM (${HEADS(this.sweepFilter)}) h
      LEFT JOIN "WandbRun" r ON r."trialId" = h."trialId"
      WHERE h."failedAt" IS NULL AND h."nextAttemptAt" <= now() AND NOT ${WAITS_FOR_SWEEP} AND NOT ${WAITS_FOR_LINE}
        AND (r."leaseUntil" IS NULL OR r."leaseUntil" < now() OR r."leaseOwner" = ${this.owner})
      ORDER BY h."nextAttemptAt"
      LIMIT 100`;
    let next = 0;
    // A refused key (or the database gone) ends the pass for every run, not just one.
    let fatal: unknown = null;
    const worker = async () => {
      while (next < heads.length && !signal?.aborted && !fatal) {
        const { trialId } = heads[next++];
        try {
          add(await this.deliverRun(trialId, signal));
        } catch (err) {
          fatal = err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, heads.length) }, worker));
    if (fatal) throw fatal;
    return total;
  }

  /**
   * Milliseconds until a run or sweep this delivery could send becomes due (0: now), or null
   * when nothing is left but rows that are delivered, undeliverable, or held back by one.
   */
  async nextDueMs(): Promise<number | null> {
    const [r] = await this.prisma.$queryRaw<{ ms: number | null }[]>`
      SELECT (EXTRACT(EPOCH FROM (MIN(x.at) - now())) * 1000)::float8 AS ms FROM (
        SELECT GREATEST(h."nextAttemptAt", COALESCE(r."leaseUntil", h."nextAttemptAt")) AS at
        FROM (${HEADS(this.sweepFilter)}) h
        LEFT JOIN "WandbRun" r ON r."trialId" = h."trialId" AND r."leaseOwner" IS DISTINCT FROM ${this.owner}
        WHERE h."failedAt" IS NULL AND NOT ${WAITS_FOR_SWEEP} AND NOT ${WAITS_FOR_LINE}
        UNION ALL
        SELECT GREATEST(o."nextAttemptAt", COALESCE(s."leaseUntil", o."nextAttemptAt"))
        FROM "WandbOutbox" o LEFT JOIN "WandbSweep" s ON s."sweepId" = o."sweepId" AND s."leaseOwner" IS DISTINCT FROM ${this.owner}
        WHERE o."kind" = 'sweep' AND o."deliveredAt" IS NULL AND o."failedAt" IS NULL ${this.sweepFilter}
      ) x`;
    // Postgres' GREATEST skips nulls, so the clamp is done here: null means nothing left.
    return r?.ms === null || r?.ms === undefined ? null : Math.max(0, r.ms);
  }

  /** File-stream heartbeats (`complete: false`) for runs W&B knows, so it does not mark them crashed. */
  async heartbeat(trialIds: readonly string[], signal?: AbortSignal): Promise<void> {
    if (trialIds.length === 0) return;
    const runs = await this.prisma.wandbRun.findMany({
      where: { trialId: { in: [...trialIds] }, entity: { not: null }, project: { not: null } },
      select: { runId: true, entity: true, project: true },
    });
    for (const r of runs) {
      try {
        // FileStreamApi._thread_body: the heartbeat it posts every heartbeat_seconds.
        await this.client.fileStream({ entity: r.entity!, project: r.project!, runId: r.runId }, { complete: false, failed: false, dropped: 0, uploaded: [] }, signal);
      } catch (err) {
        if (err instanceof WandbRequestError && err.kind === 'auth') throw new WandbAuthError(this.authMessage(err));
        // A missed heartbeat costs nothing the next one does not make up for.
      }
    }
  }

  // -- sweeps ---------------------------------------------------------------------------------

  private async deliverSweep(sweepId: string, signal?: AbortSignal): Promise<PassResult> {
    const result: PassResult = { delivered: 0, failed: 0, attempted: 0 };
    const claimed = await this.prisma.$queryRaw<{ sweepId: string }[]>`
      INSERT INTO "WandbSweep" ("sweepId", "leaseOwner", "leaseUntil", "updatedAt")
      VALUES (${sweepId}, ${this.owner}, now() + make_interval(secs => ${this.leaseMs / 1000}), now())
      ON CONFLICT ("sweepId") DO UPDATE SET "leaseOwner" = EXCLUDED."leaseOwner", "leaseUntil" = EXCLUDED."leaseUntil", "updatedAt" = now()
      WHERE "WandbSweep"."leaseUntil" IS NULL OR "WandbSweep"."leaseUntil" < now() OR "WandbSweep"."leaseOwner" = ${this.owner}
      RETURNING "sweepId"`;
    if (claimed.length === 0) return result;
    try {
      const [row] = await this.rows(Prisma.sql`o."key" = ${outboxKey.sweep(sweepId)} AND o."deliveredAt" IS NULL`);
      if (!row || row.failed || !row.due) return result;
      result.attempted++;
      try {
        const entity = this.settings.entity ?? (await this.defaultEntity(signal));
        const config = row.payload.config as Record<string, unknown>;
        const res = await this.client.upsertSweep(
          {
            // Api.upsert_sweep sends the configuration as YAML.
            config: YAML.stringify(config),
            description: (config.description as string | undefined) ?? null,
            entityName: entity,
            projectName: this.settings.project,
          },
          signal,
        );
        const e = res.entity ?? entity;
        const p = res.project ?? this.settings.project;
        await this.prisma.wandbSweep.update({
          where: { sweepId },
          data: {
            wandbSweepId: res.name,
            entity: e,
            project: p,
            url: e ? wandbSweepUrl({ baseUrl: this.settings.baseUrl, entity: e, project: p, sweepId: res.name }) : null,
          },
        });
        if (await this.markDelivered([row])) result.delivered++;
        // Runs upserted while the sweep could not be registered are upserted again, under it.
        await this.prisma.$executeRaw`
          UPDATE "WandbOutbox" o SET "deliveredAt" = NULL, "attempts" = 0, "nextAttemptAt" = now(), "updatedAt" = now()
          FROM "WandbRun" r
          WHERE o."sweepId" = ${sweepId} AND o."kind" = 'run' AND o."deliveredAt" IS NOT NULL
            AND r."trialId" = o."trialId" AND r."sweepName" IS NULL`;
        if (res.warnings.length > 0) this.log(`W&B: sweep ${String(row.payload.name)}: ${res.warnings.join('; ')}`);
      } catch (err) {
        result.failed += await this.recordFailure([row], err);
      }
      return result;
    } finally {
      await this.prisma.$executeRaw`
        UPDATE "WandbSweep" SET "leaseUntil" = NULL, "leaseOwner" = NULL WHERE "sweepId" = ${sweepId} AND "leaseOwner" = ${this.owner}`;
    }
  }

  private async defaultEntity(signal?: AbortSignal): Promise<string | null> {
    if (this.viewerEntity === undefined) this.viewerEntity = (await this.client.viewer(signal)).entity;
    return this.viewerEntity;
  }

  // -- runs -----------------------------------------------------------------------------------

  private async deliverRun(trialId: string, signal?: AbortSignal): Promise<PassResult> {
    const result: PassResult = { delivered: 0, failed: 0, attempted: 0 };
    const target = await this.claimRun(trialId);
    if (!target) return result;
    try {
      for (;;) {
        if (signal?.aborted) break;
        const rows = await this.rows(Prisma.sql`o."trialId" = ${trialId} AND o."deliveredAt" IS NULL AND o."droppedAt" IS NULL`, this.batchLines + 1);
        const head = rows[0];
        if (!head || head.failed || !head.due) break;
        // A line goes only after the one before it: W&B's file stream gets no gaps.
        if (head.waits) break;
        if (head.kind === 'history' && head.step! <= target.lastStep) {
          // W&B has later lines already (this one was refused, then retried by sync): its
          // history only grows, so the line cannot go any more.
          result.failed += await this.drop([head], 'W&B has later history lines of this run already; a line cannot go after them');
          continue;
        }
        const upsert = head.kind === 'run' || !target.entity || !target.project;
        // A run joins its sweep on W&B: while the sweep's registration is still to be sent,
        // the run waits for it.
        if (upsert && (await this.sweepPending(target.sweepId))) break;
        let batch: Row[] = [head];
        let ok = false;
        result.attempted++;
        try {
          if (head.kind === 'run') {
            await this.upsertRun(target, head, signal);
          } else {
            if (upsert) {
              // The run upsert was never written (the trial's start did not reach the outbox):
              // create the run from the trial's own record, then look again at what to send
              // (W&B may have some of these lines already).
              await this.upsertRun(target, null, signal);
              continue;
            }
            const request = await this.fileStreamRequest(target, rows);
            batch = request.batch;
            await this.client.fileStream({ entity: target.entity!, project: target.project!, runId: target.runId }, request.body, signal);
          }
          ok = true;
        } catch (err) {
          if (head.kind !== 'run' && !upsert && err instanceof WandbRequestError && err.kind === 'permanent') {
            // W&B refused the chunk for good: drop it, as the SDK does, and go on with the rest.
            result.failed += await this.drop(batch, redact(err.message, this.settings.apiKey));
            if (head.kind === 'history') target.lastStep = Math.max(target.lastStep, batch[batch.length - 1].step!);
            continue;
          }
          result.failed += await this.recordFailure(batch, err);
        }
        if (!ok) break;
        if (head.kind === 'history') target.lastStep = Math.max(target.lastStep, batch[batch.length - 1].step!);
        result.delivered += await this.markDelivered(batch);
        if (!(await this.renewRun(trialId))) break;
      }
      return result;
    } finally {
      await this.prisma.$executeRaw`
        UPDATE "WandbRun" SET "leaseUntil" = NULL, "leaseOwner" = NULL WHERE "trialId" = ${trialId} AND "leaseOwner" = ${this.owner}`;
    }
  }

  private async claimRun(trialId: string): Promise<RunTarget | null> {
    const rows = await this.prisma.$queryRaw<Array<{ entity: string | null; project: string | null; runId: string }>>`
      INSERT INTO "WandbRun" ("trialId", "runId", "leaseOwner", "leaseUntil", "updatedAt")
      VALUES (${trialId}, ${wandbRunId(trialId)}, ${this.owner}, now() + make_interval(secs => ${this.leaseMs / 1000}), now())
      ON CONFLICT ("trialId") DO UPDATE SET "leaseOwner" = EXCLUDED."leaseOwner", "leaseUntil" = EXCLUDED."leaseUntil", "updatedAt" = now()
      WHERE "WandbRun"."leaseUntil" IS NULL OR "WandbRun"."leaseUntil" < now() OR "WandbRun"."leaseOwner" = ${this.owner}
      RETURNING "entity", "project", "runId"`;
    if (rows.length === 0) return null;
    const trial = await this.prisma.trial.findUnique({ where: { id: trialId }, select: { sweepId: true } });
    if (!trial) return null;
    const [last] = await this.prisma.$queryRaw<{ step: number | null }[]>`
      SELECT MAX(o."step") AS step FROM "WandbOutbox" o
      WHERE o."trialId" = ${trialId} AND o."kind" = 'history' AND (o."deliveredAt" IS NOT NULL OR o."droppedAt" IS NOT NULL)`;
    return { trialId, sweepId: trial.sweepId, runId: rows[0].runId, entity: rows[0].entity, project: rows[0].project, lastStep: last?.step ?? -1 };
  }

  private async renewRun(trialId: string): Promise<boolean> {
    const n = await this.prisma.$executeRaw`
      UPDATE "WandbRun" SET "leaseUntil" = now() + make_interval(secs => ${this.leaseMs / 1000})
      WHERE "trialId" = ${trialId} AND "leaseOwner" = ${this.owner}`;
    return n > 0;
  }

  /** True while the sweep's registration is neither sent nor given up on. */
  private async sweepPending(sweepId: string): Promise<boolean> {
    const row = await this.prisma.wandbOutbox.findUnique({ where: { key: outboxKey.sweep(sweepId) }, select: { deliveredAt: true, failedAt: true } });
    return Boolean(row && !row.deliveredAt && !row.failedAt);
  }

  /**
   * Api.upsert_run for a run row (or, with none, from the trial's record), under the W&B sweep
   * when it was registered; a sweep W&B would not register leaves the run in its group only.
   */
  private async upsertRun(target: RunTarget, row: Row | null, signal?: AbortSignal): Promise<void> {
    const registered = await this.prisma.wandbSweep.findUnique({ where: { sweepId: target.sweepId }, select: { wandbSweepId: true } });
    let p = row?.payload;
    if (!p) {
      const t = await this.prisma.trial.findUniqueOrThrow({ where: { id: target.trialId }, select: { params: true, seed: true, attempts: true, sweep: { select: { name: true } } } });
      p = { sweepName: t.sweep.name, params: { ...(t.params as Record<string, unknown>), seed: t.seed }, attempt: t.attempts };
    }
    const sweepName = String(p.sweepName);
    const params = (p.params ?? {}) as Record<string, unknown>;
    const phases = await this.prisma.$queryRaw<{ phase: string }[]>`
      SELECT o."payload"->>'phase' AS phase FROM "WandbOutbox" o
      WHERE o."trialId" = ${target.trialId} AND o."kind" = 'history'
      GROUP BY 1 ORDER BY MIN(o."step")`;
    const tags = [sweepName, ...phases.map((x) => x.phase).filter(Boolean), ...(p.status ? [String(p.status)] : [])]
      // W&B refuses tags longer than 64 characters.
      .map((tag) => tag.slice(0, 64));
    const input = {
      name: target.runId,
      project: this.settings.project,
      entity: this.settings.entity ?? null,
      groupName: sweepName,
      displayName: `${sweepName} ${target.runId.slice(0, 8)}`,
      notes: `sweep trial ${target.trialId}, attempt ${String(p.attempt ?? '?')}`,
      jobType: 'train',
      host: typeof p.host === 'string' ? p.host : null,
      tags: [...new Set(tags)],
      // The backend's config form (sender_config.ConfigState.to_backend_dict).
      config: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, { desc: null, value: v }])),
      sweep: registered?.wandbSweepId ?? null,
    };
    let res;
    let sweep = input.sweep;
    try {
      res = await this.client.upsertRun(input, signal);
    } catch (err) {
      if (!(err instanceof WandbRequestError && err.kind === 'permanent' && input.sweep)) throw err;
      // W&B would not put the run in that sweep (deleted there, say): the run still goes, in its group.
      this.log(`W&B: run ${target.runId} not added to sweep ${input.sweep}: ${redact(err.message, this.settings.apiKey)}`);
      sweep = null;
      res = await this.client.upsertRun({ ...input, sweep }, signal);
    }
    const url = wandbRunUrl({ baseUrl: this.settings.baseUrl, entity: res.entity, project: res.project, runId: target.runId });
    await this.prisma.wandbRun.update({
      where: { trialId: target.trialId },
      data: { entity: res.entity, project: res.project, sweepName: res.sweepName ?? sweep, url },
    });
    target.entity = res.entity;
    target.project = res.project;
    if (res.historyLineCount > 0) {
      // A resumed run: W&B has its first historyLineCount lines, and the SDK goes on after
      // them; those lines are not sent again (a line written late there stays W&B's). Lines
      // W&B refused stay dropped.
      const h = res.historyLineCount;
      await this.prisma.$executeRaw`
        UPDATE "WandbOutbox" SET "deliveredAt" = now(), "failedAt" = NULL, "droppedAt" = NULL, "lastError" = NULL, "updatedAt" = now()
        WHERE "trialId" = ${target.trialId} AND "kind" = 'history' AND "step" < ${h} AND "deliveredAt" IS NULL AND "droppedAt" IS NULL`;
      target.lastStep = Math.max(target.lastStep, h - 1);
    }
  }

  /**
   * The file-stream request for a run's head row other than its upsert, and the rows it
   * delivers: history lines (with those right after it), a preemption notice, the summary or
   * the exit.
   */
  private async fileStreamRequest(target: RunTarget, rows: readonly Row[]): Promise<{ batch: Row[]; body: FileStreamBody }> {
    const head = rows[0];
    if (head.kind === 'history') {
      const batch = consecutive(rows, this.batchLines);
      // Python's json.dumps(allow_nan=True): NaN and infinities go as tokens, not null.
      const lines = batch.map((r) => wandbJson({ ...r.payload, _step: r.step }));
      const body: FileStreamBody = {
        files: {
          // FileStreamApi._send with JsonlFilePolicy: lines at their offset...
          'wandb-history.jsonl': { offset: head.step!, content: lines },
          // ...and SummaryFilePolicy: the latest values as the run's summary meanwhile.
          'wandb-summary.json': { offset: 0, content: [lines[lines.length - 1]] },
        },
        dropped: 0,
      };
      return { batch, body };
    }
    if (head.kind === 'preempt') return { batch: [head], body: { preempting: true, dropped: 0 } };
    if (head.kind === 'summary') {
      const summary = await this.finalSummary(target.trialId, head.payload);
      return { batch: [head], body: { files: { 'wandb-summary.json': { offset: 0, content: [wandbJson(summary)] } }, dropped: 0 } };
    }
    // FileStreamApi._thread_body's final message.
    return { batch: [head], body: { complete: true, exitcode: Number(head.payload.exitcode ?? 1), dropped: 0, uploaded: [] } };
  }

  /**
   * The run's summary as the SDK keeps it: the last value of every history key (and the last
   * `_step`, `_timestamp`), the final result on top, and the run time as `_runtime` and
   * `_wandb.runtime`.
   */
  private async finalSummary(trialId: string, result: Record<string, unknown>): Promise<Record<string, unknown>> {
    const lines = await this.prisma.$queryRaw<{ step: number; payload: Record<string, unknown> }[]>`
      SELECT o."step", o."payload" FROM "WandbOutbox" o
      WHERE o."trialId" = ${trialId} AND o."kind" = 'history' ORDER BY o."step"`;
    const summary: Record<string, unknown> = {};
    let runtime = 0;
    for (const l of lines) {
      Object.assign(summary, l.payload, { _step: l.step });
      if (typeof l.payload._runtime === 'number') runtime = Math.max(runtime, l.payload._runtime);
    }
    Object.assign(summary, result);
    if (typeof result._runtime === 'number') runtime = Math.max(runtime, result._runtime);
    summary._runtime = runtime;
    summary._wandb = { runtime: Math.round(runtime) };
    return summary;
  }

  // -- bookkeeping ----------------------------------------------------------------------------

  private async rows(where: Prisma.Sql, limit = 1): Promise<Row[]> {
    return this.prisma.$queryRaw<Row[]>`
      SELECT o."id"::text AS id, o."kind", o."key", o."step", o."payload", o."revision", o."attempts",
             (o."nextAttemptAt" <= now()) AS due, (o."failedAt" IS NOT NULL) AS failed, ${waitsForLine('o')} AS waits
      FROM "WandbOutbox" o WHERE ${where}
      ORDER BY ${KIND_ORDER}, o."step" NULLS FIRST, o."id"
      LIMIT ${limit}`;
  }

  /**
   * Marks rows sent, unless they were overwritten meanwhile (then the new payload goes next). A
   * history line is sent either way: W&B has a line at its offset now, and keeps it.
   */
  private async markDelivered(rows: readonly Row[]): Promise<number> {
    return this.prisma.$executeRaw`
      UPDATE "WandbOutbox" o SET "deliveredAt" = now(), "lastError" = NULL, "updatedAt" = now()
      FROM unnest(${rows.map((r) => r.id)}::text[], ${rows.map((r) => r.revision)}::int[]) AS d(id, rev)
      WHERE o."id" = d.id::bigint AND (o."revision" = d.rev OR o."kind" = 'history')`;
  }

  /** Drops file-stream rows W&B refused for good: undeliverable with the reason, no longer holding the run back. */
  private async drop(rows: readonly Row[], reason: string): Promise<number> {
    const n = await this.prisma.$executeRaw`
      UPDATE "WandbOutbox" o SET "attempts" = o."attempts" + 1, "lastError" = ${reason}, "updatedAt" = now(),
        "failedAt" = now(), "droppedAt" = now()
      FROM unnest(${rows.map((r) => r.id)}::text[]) AS d(id) WHERE o."id" = d.id::bigint`;
    const what = rows.length > 1 ? `${rows[0].key} (and ${rows.length - 1} more)` : rows[0].key;
    this.log(`W&B: dropped ${what}: ${reason}; the run's later rows go on`);
    return n;
  }

  /** Records a failed attempt; returns how many rows became undeliverable. */
  private async recordFailure(rows: readonly Row[], err: unknown): Promise<number> {
    const kind = err instanceof WandbRequestError ? err.kind : 'retry';
    const message = err instanceof WandbRequestError ? redact(err.message, this.settings.apiKey) : redactError(err, this.settings.apiKey);
    if (kind === 'aborted') return 0;
    const ids = rows.map((r) => r.id);
    const revs = rows.map((r) => r.revision);
    if (kind === 'auth') {
      // Not the row's fault: it keeps its attempts and waits for a good key.
      await this.prisma.$executeRaw`
        UPDATE "WandbOutbox" o SET "lastError" = ${message}, "updatedAt" = now()
        FROM unnest(${ids}::text[], ${revs}::int[]) AS d(id, rev) WHERE o."id" = d.id::bigint AND o."revision" = d.rev`;
      throw new WandbAuthError(this.authMessage(err as WandbRequestError));
    }
    const attempts = rows[0].attempts + 1;
    const giveUp = kind === 'permanent' || attempts >= this.maxAttempts;
    const delayMs = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempts - 1)) * (1 + 0.25 * this.random());
    const reason = kind === 'permanent' ? message : `${message} (attempt ${attempts} of ${this.maxAttempts})`;
    const n = await this.prisma.$executeRaw`
      UPDATE "WandbOutbox" o SET "attempts" = o."attempts" + 1, "lastError" = ${reason}, "updatedAt" = now(),
        "nextAttemptAt" = now() + make_interval(secs => ${delayMs / 1000}),
        "failedAt" = CASE WHEN ${giveUp} THEN now() ELSE NULL END
      FROM unnest(${ids}::text[], ${revs}::int[]) AS d(id, rev) WHERE o."id" = d.id::bigint AND o."revision" = d.rev`;
    if (giveUp) {
      const what = rows.length > 1 ? `${rows[0].key} (and ${rows.length - 1} more)` : rows[0].key;
      this.log(`W&B: gave up on ${what}: ${reason}; \`sweep wandb sync\` retries it`);
    }
    return giveUp ? n : 0;
  }

  private authMessage(err: WandbRequestError): string {
    return redact(
      `W&B refused the API key (${err.status ? `HTTP ${err.status}` : 'permission denied'}) at ${this.settings.baseUrl}; ` +
        'delivery stopped. Check WANDB_API_KEY (and WANDB_ENTITY, WANDB_BASE_URL), then run `sweep wandb sync`.',
      this.settings.apiKey,
    );
  }
}

/** The head history row and those right after it with consecutive steps (one file-stream chunk). */
function consecutive(rows: readonly Row[], max: number): Row[] {
  const out: Row[] = [rows[0]];
  for (let i = 1; i < rows.length && out.length < max; i++) {
    const r = rows[i];
    if (r.kind !== 'history' || r.failed || r.step !== out[out.length - 1].step! + 1) break;
    out.push(r);
  }
  return out;
}
