/**
 * Orphans: trials the database says are queued or running that no queue job will ever
 * deliver. They appear when Redis loses jobs (restarted without its append-only file, flushed,
 * or replaced), or when a launch died between storing trials and enqueueing them. Without a
 * job no worker would ever look at them again, and the sweep would never end.
 *
 * Every worker looks for them now and then: a `running` trial whose heartbeat is older than
 * the stale limit and a `queued` trial created more than `minAgeMs` ago, either without a job
 * in the queue, gets one (the job id is the trial id, so two workers doing this at once add one
 * job). The running orphan is set back to `queued` first, conditionally on its heartbeat still
 * being stale, so a worker that was only slow to write keeps its trial.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../infra/db.ts';
import { enqueueTrials, type TrialJobData } from './queue.ts';

/** Trials looked at per pass; a pass runs every few minutes. */
const BATCH = 5_000;

export interface ReapResult {
  requeued: string[];
  enqueued: number;
}

export async function reapOrphans(
  prisma: PrismaClient,
  queue: Queue<TrialJobData>,
  redis: Redis,
  opts: { staleMs: number; minAgeMs: number; now?: Date },
): Promise<ReapResult> {
  const now = opts.now ?? new Date();
  const candidates = await prisma.trial.findMany({
    where: {
      OR: [
        { status: 'running', OR: [{ heartbeatAt: null }, { heartbeatAt: { lt: new Date(now.getTime() - opts.staleMs) } }] },
        { status: 'queued', createdAt: { lt: new Date(now.getTime() - opts.minAgeMs) } },
      ],
    },
    select: { id: true, status: true, sweep: { select: { name: true } } },
    take: BATCH,
  });
  if (candidates.length === 0) return { requeued: [], enqueued: 0 };
  const pipeline = redis.pipeline();
  for (const c of candidates) pipeline.exists(queue.toKey(c.id));
  const exists = (await pipeline.exec()) ?? [];
  const orphans = candidates.filter((_, i) => exists[i]?.[1] !== 1);
  if (orphans.length === 0) return { requeued: [], enqueued: 0 };

  const running = orphans.filter((o) => o.status === 'running').map((o) => o.id);
  let requeued: string[] = [];
  if (running.length > 0) {
    const rows = await prisma.trial.updateManyAndReturn({
      where: { id: { in: running }, status: 'running', OR: [{ heartbeatAt: null }, { heartbeatAt: { lt: new Date(now.getTime() - opts.staleMs) } }] },
      data: { status: 'queued', worker: null, heartbeatAt: null },
      select: { id: true },
    });
    requeued = rows.map((r) => r.id);
  }
  const toEnqueue = new Set([...requeued, ...orphans.filter((o) => o.status === 'queued').map((o) => o.id)]);
  let enqueued = 0;
  const bySweep = new Map<string, string[]>();
  for (const o of orphans) if (toEnqueue.has(o.id)) bySweep.set(o.sweep.name, [...(bySweep.get(o.sweep.name) ?? []), o.id]);
  for (const [name, ids] of bySweep) enqueued += await enqueueTrials(queue, redis, name, ids);
  return { requeued, enqueued };
}
