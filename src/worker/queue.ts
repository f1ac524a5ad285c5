/**
 * The trial queue: one BullMQ queue shared by every sweep. Jobs carry ids only ({ trialId });
 * the job id is the trial id, so adding a trial that already has a job is a no-op and a trial
 * can never be queued twice. Everything else about a trial lives in the database.
 *
 *   SWEEP_QUEUE         queue name (default `trials`)
 *   SWEEP_QUEUE_PREFIX  Redis key prefix (default `sweep`); tests use their own
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Env } from '../infra/env.ts';

export interface TrialJobData {
  trialId: string;
}

/** What a trial's progress looks like in its job (`job.progress`), for displays. */
export interface JobProgress {
  trialId: string;
  worker: string;
  phase?: string;
  epoch?: number;
  epochs?: number;
  batch?: number;
  batches?: number;
  loss?: number;
  metric?: number | null;
}

export interface QueueName {
  name: string;
  prefix: string;
}

export function queueName(env: Env = process.env): QueueName {
  return {
    name: env.SWEEP_QUEUE?.trim() || 'trials',
    prefix: env.SWEEP_QUEUE_PREFIX?.trim() || 'sweep',
  };
}

/**
 * A failure other than divergence or bad input is retried this many times in all, waiting
 * 10 s, 20 s, ... in between: long enough for a database or disk hiccup to pass, short enough
 * that a sweep does not idle. Finished and failed jobs are removed: the database keeps the
 * outcome, and a removed job lets a trial that is set back to `queued` be enqueued again.
 */
export const TRIAL_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 10_000 },
  removeOnComplete: true,
  removeOnFail: true,
};

/** The queue, on a connection made with `maxRetriesPerRequest: null` (see infra/redis.ts). */
export function openTrialQueue(connection: Redis, env: Env = process.env): Queue<TrialJobData> {
  const { name, prefix } = queueName(env);
  return new Queue<TrialJobData>(name, { connection, prefix, defaultJobOptions: TRIAL_JOB_OPTIONS });
}

/** Jobs added per round trip; one addBulk of 10,000 jobs would hold Redis for too long. */
const ADD_CHUNK = 1000;

/**
 * Adds a job for each trial id that has none (in any state). Returns how many were added.
 * `redis` is a connection to the queue's Redis (the queue's own client is not typed as ioredis).
 * Existing jobs are found with one pipelined EXISTS per chunk and are left untouched: a
 * trial that is waiting, running or backing off before a retry keeps its place.
 */
export async function enqueueTrials(queue: Queue<TrialJobData>, redis: Redis, sweepName: string, trialIds: readonly string[]): Promise<number> {
  let added = 0;
  for (let i = 0; i < trialIds.length; i += ADD_CHUNK) {
    const chunk = trialIds.slice(i, i + ADD_CHUNK);
    const pipeline = redis.pipeline();
    for (const id of chunk) pipeline.exists(queue.toKey(id));
    const exists = (await pipeline.exec()) ?? [];
    const missing = chunk.filter((_, k) => exists[k]?.[1] !== 1);
    if (missing.length === 0) continue;
    await queue.addBulk(missing.map((trialId) => ({ name: sweepName, data: { trialId }, opts: { jobId: trialId } })));
    added += missing.length;
  }
  return added;
}

/** Removes the jobs of these trials unless a worker holds them. Returns how many were removed. */
export async function removeTrialJobs(queue: Queue<TrialJobData>, trialIds: readonly string[]): Promise<number> {
  let removed = 0;
  for (let i = 0; i < trialIds.length; i += 200) {
    // 0 when there is no such job or a worker holds its lock (the worker then sees the
    // trial's status at pickup or between epochs).
    const r = await Promise.all(trialIds.slice(i, i + 200).map((id) => queue.remove(id).catch(() => 0)));
    removed += r.reduce((a, b) => a + b, 0);
  }
  return removed;
}

/** Jobs that still have to run or are running: waiting, prioritized, active, delayed. */
export async function pendingJobs(queue: Queue<TrialJobData>): Promise<number> {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'waiting-children');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
