/**
 * The worker mirrors its trials to W&B through the outbox: a real worker process, real
 * Redis and Postgres, and the fake W&B server (no real W&B is reachable from here).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/infra/db.ts';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { runCli, startCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';
import { waitFor } from '../../support/wait.ts';
import { startFakeWandb, type FakeWandb } from '../../support/fake-wandb.ts';

let t: TestEnv;
let db: Database;
let fake: FakeWandb;
const KEY = 'k'.repeat(40);

beforeAll(async () => {
  t = await testEnv('wandbworker');
  db = await t.db();
  fake = await startFakeWandb({ apiKey: KEY });
});
afterEach(() => {
  // The fake checks every request as W&B's API would take it (support/fake-wandb.ts).
  expect(fake.violations.splice(0)).toEqual([]);
});
afterAll(async () => {
  await fake?.close();
  await db?.close();
  await t?.cleanup();
});

describe('worker -> W&B', () => {
  it('each trial becomes a run: params as config, sweep as group, one history line per epoch, summary, exit code; show links it', async () => {
    const launched = await launchSweep({ file: writeFile(t.dir, 'wb.yaml', tinySweep({ name: 'wb', dropout: [0.1], pretrain: 2, gru: 1 })), env: t.env });
    const trial = await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } });
    const env = { ...t.env, WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url, WANDB_PROJECT: 'captcha', WANDB_ENTITY: 'team' };
    const w = await runCli(['worker', '--exit-when-idle'], env);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr + w.stdout).not.toContain(KEY);
    // The worker's own loop delivered while it ran (the run at least); what it left when it
    // stopped is delivered by sync.
    expect(fake.requests.some((r) => r.operation === 'UpsertBucket' && r.answer === 200)).toBe(true);
    const sync = await runCli(['wandb', 'sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);

    const run = fake.run('team', 'captcha', trial.id.slice(0, 16));
    expect(run).toBeDefined();
    expect(run!.groupName).toBe('wb');
    expect(run!.config).toMatchObject({ dropout: { value: 0.1 }, seed: { value: trial.seed } });
    expect(run!.complete).toBe(true);
    expect(run!.exitcode).toBe(0);
    const lines = fake.history('team', 'captcha', trial.id.slice(0, 16));
    expect(lines.map((l) => `${l?.phase}/${l?.epoch}`)).toEqual(['pretrain/0', 'pretrain/1', 'gru/0']);
    const stored = await db.prisma.metricPoint.findMany({ where: { trialId: trial.id, key: 'val_loss' } });
    for (const l of lines) expect(stored.find((p) => p.phase === l!.phase && p.epoch === l!.epoch)?.value).toBe(l!.val_loss);
    expect(JSON.parse(run!.summary!)).toMatchObject({ status: 'finished' });

    const show = await runCli(['show', trial.id, '--json'], env);
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout).wandb).toBe(`${fake.url}/team/captcha/runs/${trial.id.slice(0, 16)}`);
  });

  it('a resumed trial whose first attempt sent nothing to W&B: its earlier epochs go first, each line at its own step', async () => {
    const launched = await launchSweep({ file: writeFile(t.dir, 'wb-resumed.yaml', tinySweep({ name: 'wb-resumed', dropout: [0.1], pretrain: 4, gru: 1 })), env: t.env });
    const trial = await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } });
    const fast = { SWEEP_HEARTBEAT_MS: '1000', SWEEP_STALE_MS: '5000', SWEEP_LOCK_MS: '4000' };
    // The first attempt runs without W&B (as a worker killed before its outbox writes would
    // leave it): its epochs are checkpointed but have no outbox rows.
    const first = startCli(['worker'], { ...t.env, ...fast });
    await waitFor(async () => (await db.prisma.metricPoint.count({ where: { trialId: trial.id } })) > 0, 'the first epoch');
    first.child.kill('SIGKILL');
    await first.result;
    const env = { ...t.env, ...fast, WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url, WANDB_PROJECT: 'captcha', WANDB_ENTITY: 'team' };
    const second = await runCli(['worker', '--exit-when-idle'], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resuming from pretrain epoch/);
    const sync = await runCli(['wandb', 'sync', '--json'], env);
    expect(sync.code, sync.stderr).toBe(0);
    const lines = fake.history('team', 'captcha', trial.id.slice(0, 16));
    expect(lines.map((l) => `${l?.phase}/${l?.epoch}`)).toEqual(['pretrain/0', 'pretrain/1', 'pretrain/2', 'pretrain/3', 'gru/0']);
    const stored = await db.prisma.metricPoint.findMany({ where: { trialId: trial.id, key: 'val_loss' } });
    for (const l of lines) expect(stored.find((p) => p.phase === l!.phase && p.epoch === l!.epoch)?.value).toBe(l!.val_loss);
  });

  it('a trial given back to the queue (the worker stopping) shows preempted on W&B, not crashed; the next attempt resumes the same run', async () => {
    const launched = await launchSweep({ file: writeFile(t.dir, 'wb-given-back.yaml', tinySweep({ name: 'wb-given-back', dropout: [0.1], pretrain: 6, gru: 1 })), env: t.env });
    const trial = await db.prisma.trial.findFirstOrThrow({ where: { sweepId: launched.sweep.id } });
    const runId = trial.id.slice(0, 16);
    const env = { ...t.env, WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url, WANDB_PROJECT: 'captcha', WANDB_ENTITY: 'team' };
    const first = startCli(['worker'], env);
    await waitFor(async () => (await db.prisma.metricPoint.count({ where: { trialId: trial.id } })) > 0, 'the first epoch');
    first.child.kill('SIGTERM');
    const stopped = await first.result;
    expect(stopped.stderr).toMatch(/given back to the queue/);
    expect((await runCli(['wandb', 'sync', '--json'], env)).code).toBe(0);
    const given = fake.run('team', 'captcha', runId)!;
    expect(given).toMatchObject({ preempting: true, preemptings: 1, complete: false });
    const before = fake.history('team', 'captcha', runId).length;
    expect(before).toBeGreaterThan(0);

    const second = await runCli(['worker', '--exit-when-idle'], env);
    expect(second.code, second.stderr).toBe(0);
    expect((await runCli(['wandb', 'sync', '--json'], env)).code).toBe(0);
    expect([...fake.runs.values()].filter((r) => r.name === runId).length).toBe(1);
    expect(fake.run('team', 'captcha', runId)).toMatchObject({ preempting: false, preemptings: 1, complete: true, exitcode: 0 });
    const lines = fake.history('team', 'captcha', runId);
    expect(lines.map((l) => `${l?.phase}/${l?.epoch}`)).toEqual(['pretrain/0', 'pretrain/1', 'pretrain/2', 'pretrain/3', 'pretrain/4', 'pretrain/5', 'gru/0']);
    expect(lines.map((l) => l?._step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});
