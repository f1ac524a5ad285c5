/**
 * The live dashboard's reads: one poll of the database (and of the queue in Redis) per call,
 * cheap when nothing changed. A poll reads every trial's row (without its params) and, for the
 * running trials alone, the number, newest time and sum of their metric points (an index
 * range per trial); only the trials that changed have their curves read again. Read-only.
 */
import type { Queue } from 'bullmq';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import type { TrialJobData } from '../worker/queue.ts';
import { curveKeys, loadExtras, loadReportInput, loadTrialCurves } from './data.ts';
import { applyChange, changedTrials, fullState, readingsStale, withParams, type LivePatch, type LiveState, type MetricMark, type TrialRow } from './live.ts';

/** What the queue view shows. */
export interface QueueData {
  /** Server time of the reading (ms), to age heartbeats on the page. */
  at: number;
  /** BullMQ job counts, or null when Redis did not answer. */
  jobs: { waiting: number; active: number; delayed: number; failed: number } | null;
  error: string | null;
  /** Workers running a trial (of any sweep), by their latest heartbeat. */
  workers: Array<{ worker: string; running: number; heartbeatAt: number | null }>;
}

export type PollResult = { kind: 'none' } | { kind: 'patch'; patch: LivePatch } | { kind: 'reload'; version: number };

function ensembleMark(rows: Array<{ n: bigint | number; last: Date | null }>): string {
  return `${Number(rows[0]?.n ?? 0)}/${rows[0]?.last?.getTime() ?? 0}`;
}

/** One sweep, kept up to date by poll(). */
export class LiveSweep {
  private marks = new Map<string, MetricMark>();
  private ensembles = '';

  private constructor(
    private readonly prisma: PrismaClient,
    private readonly env: Env,
    private readonly secrets: readonly string[],
    public state: LiveState,
  ) {}

  static async open(prisma: PrismaClient, nameOrId: string, opts: { env: Env; secrets: readonly string[] }): Promise<LiveSweep> {
    const input = await loadReportInput(prisma, nameOrId, { env: opts.env });
    const live = new LiveSweep(prisma, opts.env, opts.secrets, fullState(input, opts.secrets, 1));
    live.ensembles = await live.ensembleMark();
    live.marks = await live.metricMarks(input.trials.filter((t) => t.status === 'running').map((t) => t.id));
    return live;
  }

  private async ensembleMark(): Promise<string> {
    const id = this.state.input.sweep.id;
    return ensembleMark(await this.prisma.$queryRaw`SELECT count(*) AS n, max("createdAt") AS last FROM "Ensemble" WHERE "sweepId" = ${id}`);
  }

  private async metricMarks(ids: readonly string[]): Promise<Map<string, MetricMark>> {
    if (ids.length === 0) return new Map();
    const rows = await this.prisma.$queryRaw<Array<{ trialId: string; n: number; last: Date | null; sum: number | null }>>`
      SELECT "trialId", count(*)::int AS n, max("createdAt") AS last, sum("value") AS sum
      FROM "MetricPoint" WHERE "trialId" = ANY(${[...ids]}::text[]) GROUP BY "trialId"`;
    return new Map(rows.map((r) => [r.trialId, { n: Number(r.n), last: r.last?.getTime() ?? 0, sum: Number(r.sum ?? 0) }]));
  }

  /** One round of queries; the patch it makes, if anything changed. */
  async poll(now = new Date()): Promise<PollResult> {
    const { input } = this.state;
    const id = input.sweep.id;
    // One round of parallel queries. The metric marks are of the trials running at the last
    // poll: one that started since is a changed row anyway, and is marked from the next poll.
    // Raw statements: a thousand rows a second through the query builder cost twice the time.
    const [rows, sweeps, marks] = await Promise.all([
      this.prisma.$queryRaw<TrialRow[]>`
        SELECT "id", "index", "seed", "status"::text AS "status", "worker", "attempts", "error", "startedAt", "finishedAt", "bestMetric"
        FROM "Trial" WHERE "sweepId" = ${id} ORDER BY "index"`,
      this.prisma.$queryRaw<Array<{ status: string; n: bigint | number; last: Date | null }>>`
        SELECT s."status", (SELECT count(*) FROM "Ensemble" e WHERE e."sweepId" = s."id") AS n,
               (SELECT max(e."createdAt") FROM "Ensemble" e WHERE e."sweepId" = s."id") AS last
        FROM "Sweep" s WHERE s."id" = ${id}`,
      this.metricMarks(input.trials.filter((t) => t.status === 'running').map((t) => t.id)),
    ]);
    const sweep = sweeps[0];
    if (!sweep) return this.rebuild(now); // deleted: loadReportInput says so
    const ensembles = ensembleMark(sweeps);
    const changed = changedTrials(input.trials, rows, this.marks, marks);
    if (changed === null) return this.rebuild(now);
    this.marks = marks;
    const extrasChanged = ensembles !== this.ensembles;
    // Time passing alone (a running trial's duration) waits for the trial's next change.
    if (changed.size === 0 && !extrasChanged && sweep.status === input.sweep.status) return { kind: 'none' };
    const trials = withParams(input.trials, rows);
    const extras = extrasChanged || readingsStale(input, trials) ? await loadExtras(this.prisma, input.sweep, trials, this.env) : undefined;
    this.ensembles = ensembles;
    const curves = await loadTrialCurves(this.prisma, [...changed], curveKeys(input.sweep.metricName));
    const next = applyChange(this.state, { trials, changed, curves, sweepStatus: sweep.status, now, extras }, this.secrets);
    if (!next) return this.rebuild(now);
    this.state = next.state;
    return { kind: 'patch', patch: next.patch };
  }

  private async rebuild(now: Date): Promise<PollResult> {
    const input = await loadReportInput(this.prisma, this.state.input.sweep.id, { env: this.env, now });
    this.state = fullState(input, this.secrets, this.state.version + 1);
    this.marks = await this.metricMarks(input.trials.filter((t) => t.status === 'running').map((t) => t.id));
    this.ensembles = await this.ensembleMark();
    return { kind: 'reload', version: this.state.version };
  }
}

/** The queue's job counts and the workers' heartbeats. Redis failing is shown, not thrown. */
export async function readQueue(prisma: PrismaClient, queue: Queue<TrialJobData> | null, now = new Date(), redisLabel = 'Redis'): Promise<QueueData> {
  const rows = await prisma.$queryRaw<Array<{ worker: string; running: number; last: Date | null }>>`
    SELECT "worker", count(*)::int AS running, max("heartbeatAt") AS last
    FROM "Trial" WHERE "status" = 'running' AND "worker" IS NOT NULL GROUP BY "worker" ORDER BY "worker"`;
  const workers = rows.map((r) => ({ worker: r.worker, running: Number(r.running), heartbeatAt: r.last?.getTime() ?? null }));
  if (!queue) return { at: now.getTime(), jobs: null, error: `${redisLabel} did not answer when the dashboard started (restart it to see the queue)`, workers };
  try {
    const c = await withTimeout(queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized'), 1500);
    return {
      at: now.getTime(),
      jobs: { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 },
      error: null,
      workers,
    };
  } catch (err) {
    return { at: now.getTime(), jobs: null, error: `${redisLabel} did not answer (${(err as Error).message.split('\n')[0]})`, workers };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** Two queue readings show the same thing (the reading time aside). */
export function sameQueue(a: QueueData | null, b: QueueData): boolean {
  return !!a && JSON.stringify({ ...a, at: 0 }) === JSON.stringify({ ...b, at: 0 });
}
