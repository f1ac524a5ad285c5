/**
 * Claiming a trial (track/store.ts claimTrial, worker/attempt.ts claimAttempt): a claim made
 * again after its answer was lost is the same claim and counts one attempt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { openDatabase, type Database, type PrismaClient } from '../../src/infra/db.ts';
import { claimTrial } from '../../src/track/store.ts';
import { claimAttempt, pruneUnanswered, type AttemptContext } from '../../src/worker/attempt.ts';
import type { TrialJobData } from '../../src/worker/queue.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { setTrial, storeSweep } from '../cli/view-fixtures.ts';

let pgdb: TestDatabase;
let db: Database;
let seq = 0;

beforeAll(async () => {
  pgdb = await createTestDatabase();
  db = await openDatabase({ env: { DATABASE_URL: pgdb.url }, migrate: true });
});
afterAll(async () => {
  await db?.close();
  await pgdb?.drop();
});

async function queuedTrial(): Promise<string> {
  return (await storeSweep(db.prisma, `claims-${++seq}`, [0.1])).ids[0];
}

const attempts = async (id: string) => (await db.prisma.trial.findUniqueOrThrow({ where: { id } })).attempts;

describe('claimTrial', () => {
  it('the same claim made again (same worker, same claimedAt) counts one attempt; another claim by the owner counts', async () => {
    const id = await queuedTrial();
    const at = new Date('2026-12-04T10:00:00.123Z');
    const first = await claimTrial(db.prisma, id, 'w1', 90_000, at);
    expect(first).toMatchObject({ outcome: 'claimed', trial: { id, attempts: 1 } });
    const again = await claimTrial(db.prisma, id, 'w1', 90_000, at);
    expect(again).toEqual(first);
    expect(await attempts(id)).toBe(1);
    // Another worker: the owner is alive (a fresh heartbeat), so the trial is busy.
    await db.prisma.trial.update({ where: { id }, data: { heartbeatAt: new Date() } });
    expect(await claimTrial(db.prisma, id, 'w2', 90_000, at)).toEqual({ outcome: 'busy', worker: 'w1' });
    // The owner's job retried (another claim): a new attempt.
    expect(await claimTrial(db.prisma, id, 'w1', 90_000, new Date())).toMatchObject({ outcome: 'claimed', trial: { attempts: 2 } });
    await setTrial(db.prisma, id, { status: 'finished' });
    expect(await claimTrial(db.prisma, id, 'w1', 90_000, at)).toEqual({ outcome: 'ended', status: 'finished' });
  });
});

describe('claimAttempt', () => {
  /** A client whose trial claims are stored, but whose answer is lost `lose` times. */
  function losingAnswers(prisma: PrismaClient, lose: number): PrismaClient {
    const trial = new Proxy(prisma.trial, {
      get(target, key) {
        if (key !== 'updateManyAndReturn') return Reflect.get(target, key, target);
        return async (args: unknown) => {
          const rows = await (target.updateManyAndReturn as (a: unknown) => Promise<unknown>)(args);
          if (lose-- > 0) throw new Error('Connection terminated unexpectedly');
          return rows;
        };
      },
    });
    return new Proxy(prisma, { get: (target, key) => (key === 'trial' ? trial : Reflect.get(target, key, target)) });
  }

  function context(prisma: PrismaClient): AttemptContext {
    const ctx: Partial<AttemptContext> = {
      id: 'host:1',
      prisma,
      timings: { heartbeatMs: 10_000, staleMs: 90_000, lockMs: 60_000, stalledMs: 60_000, dbOutageMs: 600_000, connectWaitMs: 0 },
      busyRetryMs: 30_000,
      say: () => {},
      count: () => {},
      onOutage: () => {},
      unanswered: new Map(),
    };
    return ctx as AttemptContext;
  }

  const job = (trialId: string, attemptsMade = 0) =>
    ({ data: { trialId }, attemptsMade, moveToDelayed: async () => {} }) as unknown as Job<TrialJobData>;

  it('a claim whose answer was lost, made again on the next delivery, counts one attempt', async () => {
    const id = await queuedTrial();
    const ctx = context(losingAnswers(db.prisma, 1));
    await expect(claimAttempt(ctx, job(id), 'token')).rejects.toThrow(); // DelayedError: look again later
    expect(await attempts(id)).toBe(1); // stored, though the answer was lost
    const claim = await claimAttempt(ctx, job(id), 'token');
    expect(claim).toMatchObject({ trial: { id, attempts: 1 } });
    expect(await attempts(id)).toBe(1);
    expect(ctx.unanswered.size).toBe(0);
    // The job's next attempt (the first one failed): a new claim, a new attempt.
    await expect(claimAttempt(ctx, job(id, 1), 'token')).resolves.toMatchObject({ trial: { attempts: 2 } });
  });

  it('forgets lost claims older than the outage and staleness windows together', async () => {
    const ctx = context(losingAnswers(db.prisma, 1));
    // A lost claim of a trial whose job went to another worker an hour ago.
    ctx.unanswered.set('gone', { jobAttempt: 0, claimedAt: new Date(Date.now() - 3_600_000) });
    ctx.unanswered.set('recent', { jobAttempt: 0, claimedAt: new Date(Date.now() - 60_000) });
    const id = await queuedTrial();
    await expect(claimAttempt(ctx, job(id), 'token')).rejects.toThrow();
    expect([...ctx.unanswered.keys()].sort()).toEqual(['recent', id].sort());
    const m = new Map([['a', { jobAttempt: 0, claimedAt: new Date(1_000) }]]);
    pruneUnanswered(m, 1_000 + 690_000, 690_000);
    expect(m.size).toBe(1);
    pruneUnanswered(m, 1_000 + 690_001, 690_000);
    expect(m.size).toBe(0);
  });
});
