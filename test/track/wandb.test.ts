/**
 * The W&B mirror against a fake W&B server (fake-wandb.ts) and a real Postgres: request shapes
 * as the Python SDK sends them, order per run, exactly-once history through 503s, hangs and
 * ambiguous failures, bounded retries and `sync`, the modes, and the key kept out of logs,
 * errors and rows.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import type { EpochMetrics } from '../../src/train/trainer.ts';
import { WandbClient, WandbRequestError } from '../../src/track/wandb/client.ts';
import { redact, redactError, wandbRunUrl, wandbSettings } from '../../src/track/wandb/config.ts';
import { openWandbMirror, outboxStatus, syncOutbox, type MirrorOptions, type WandbMirror } from '../../src/track/wandb/index.ts';
import { OutboxDelivery } from '../../src/track/wandb/outbox-deliver.ts';
import { UserError } from '../../src/util/errors.ts';
import { runCli } from '../e2e/helpers.ts';
import { waitFor } from '../../support/wait.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { startFakeWandb, type FakeWandb } from '../../support/fake-wandb.ts';

const KEY = 'k3y0123456789abcdef0123456789abcdef0123';
const FAST: MirrorOptions = { timeoutMs: 400, backoffBaseMs: 20, backoffMaxMs: 200, pollMs: 20, heartbeatMs: 60_000 };

let tdb: TestDatabase;
let db: Database;
let fake: FakeWandb;
let sweepSeq = 0;
const open: WandbMirror[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = await openDatabase({ env: { DATABASE_URL: tdb.url }, migrate: true });
  fake = await startFakeWandb({ apiKey: KEY, defaultEntity: 'team-x' });
});

afterAll(async () => {
  await fake?.close();
  await db?.close();
  await tdb?.drop();
});

afterEach(async () => {
  for (const m of open.splice(0)) await m.close(2_000);
  fake.setMode('ok');
  fake.failWhen(null);
  fake.storeBeforeFailing = false;
  // The fake checks every request as W&B's API would take it (support/fake-wandb.ts).
  expect(fake.violations.splice(0)).toEqual([]);
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url, WANDB_PROJECT: 'captcha', ...extra };
}

function mirror(e: Record<string, string>, log: (l: string) => void = () => {}, opts: MirrorOptions = {}): WandbMirror {
  const m = openWandbMirror(db.prisma, e, log, { ...FAST, ...opts });
  open.push(m);
  return m;
}

/** A sweep with `n` trials in the database (hex ids, as real trial ids are). */
async function makeSweep(n = 1): Promise<{ sweepId: string; name: string; trialIds: string[] }> {
  const name = `wb-sweep-${++sweepSeq}`;
  const spec = { name, method: 'grid', metric: { name: 'val_seq_acc', goal: 'maximize' }, parameters: { dropout: { values: [0.1, 0.2] } }, train: { width: 0.0625 } };
  const sweep = await db.prisma.sweep.create({ data: { name, method: 'grid', spec, metricName: 'val_seq_acc', metricGoal: 'maximize' } });
  const trialIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${(sweepSeq * 1000 + i).toString(16).padStart(8, '0')}${'ab'.repeat(16)}`;
    await db.prisma.trial.create({ data: { id, sweepId: sweep.id, index: i, params: { dropout: 0.1 * (i + 1), kernel_size: 3 }, seed: 0 } });
    trialIds.push(id);
  }
  return { sweepId: sweep.id, name, trialIds };
}

function epoch(phase: 'pretrain' | 'gru', e: number, loss = 20 - e): EpochMetrics {
  return {
    phase, epoch: e, loss, char_acc: 0.1, seq_acc: 0, val_loss: loss + 0.5, val_char_acc: 0.2, val_seq_acc: 0.01 * e,
    val_char_acc_by_position: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], lr: 0.001, images_per_s: 12.5, seconds: 30,
  };
}

async function start(m: WandbMirror, s: { sweepId: string; name: string }, trialId: string) {
  await m.runStarted({ trialId, sweepId: s.sweepId, sweepName: s.name, params: { dropout: 0.1, kernel_size: 3 }, attempt: 1, spec: { method: 'grid', metric: { name: 'val_seq_acc', goal: 'maximize' }, parameters: { dropout: { values: [0.1, 0.2] } }, train: { width: 1 } } });
}

/**
 * A sweep of one trial whose run has started on mirror `m` (`loop`: its delivery loop
 * running first): what most tests below begin with.
 */
async function startedRun(m: WandbMirror, opts: { loop?: boolean } = {}): Promise<{ s: Awaited<ReturnType<typeof makeSweep>>; trialId: string; runId: string }> {
  const s = await makeSweep();
  const trialId = s.trialIds[0];
  if (opts.loop) m.start();
  await start(m, s, trialId);
  return { s, trialId, runId: trialId.slice(0, 16) };
}

async function allDelivered(sweepId: string): Promise<boolean> {
  const left = await db.prisma.wandbOutbox.count({ where: { sweepId, deliveredAt: null } });
  return left === 0;
}

const fileStreamOf = (runId: string) => fake.requests.filter((r) => r.path.endsWith(`/${runId}/file_stream`));
const historyPosts = (runId: string) => fileStreamOf(runId).filter((r) => r.body?.files?.['wandb-history.jsonl']);

describe('settings and links', () => {
  it('reads the modes: online with a key, offline, disabled; online without a key is disabled and says why', () => {
    expect(wandbSettings({ WANDB_API_KEY: 'k' })).toMatchObject({ mode: 'online', baseUrl: 'https://api.wandb.ai', project: 'sweep' });
    expect(wandbSettings({ WANDB_API_KEY: 'k', WANDB_MODE: 'offline' }).mode).toBe('offline');
    expect(wandbSettings({ WANDB_API_KEY: 'k', WANDB_MODE: 'disabled' }).mode).toBe('disabled');
    const none = wandbSettings({});
    expect(none.mode).toBe('disabled');
    expect(none.notice).toMatch(/WANDB_API_KEY is not set/);
    expect(wandbSettings({ WANDB_MODE: 'online' }).notice).toMatch(/WANDB_MODE=online but WANDB_API_KEY is not set/);
    expect(() => wandbSettings({ WANDB_MODE: 'sometimes' })).toThrow(UserError);
    expect(() => wandbSettings({ WANDB_MODE: 'sometimes' })).toThrow(/WANDB_MODE must be one of online, offline, disabled \(got "sometimes"\)/);
    expect(() => wandbSettings({ WANDB_BASE_URL: 'ftp://x' })).toThrow(/WANDB_BASE_URL must be an http\(s\) URL/);
    expect(wandbSettings({ WANDB_BASE_URL: 'https://api.example.com/', WANDB_ENTITY: 'me', WANDB_PROJECT: 'p' })).toMatchObject({ baseUrl: 'https://api.example.com', entity: 'me', project: 'p' });
  });

  it('builds the dashboard link: wandb.ai for the default server, the base without `api.` otherwise', () => {
    expect(wandbRunUrl({ baseUrl: 'https://api.wandb.ai', entity: 'me', project: 'captcha', runId: '0123456789abcdef' })).toBe('https://wandb.ai/me/captcha/runs/0123456789abcdef');
    expect(wandbRunUrl({ baseUrl: 'https://api.wandb.example.com', entity: 'e', project: 'p', runId: 'r' })).toBe('https://wandb.example.com/e/p/runs/r');
    expect(wandbRunUrl({ baseUrl: 'http://localhost:8080', entity: 'e', project: 'p', runId: 'r' })).toBe('http://localhost:8080/e/p/runs/r');
  });
});

describe('key redaction', () => {
  const b64 = Buffer.from(`api:${KEY}`).toString('base64');

  it('takes the key out of text in every form it travels in', () => {
    const text = `POST https://api:${KEY}@api.wandb.ai/graphql failed; headers {"Authorization":"Basic ${b64}"}; key=${KEY}; enc=${encodeURIComponent(KEY)}`;
    const out = redact(text, KEY);
    expect(out).not.toContain(KEY);
    expect(out).not.toContain(b64);
    expect(out).toContain('api.wandb.ai/graphql');
    // An Authorization header is dropped even when the key is not known.
    expect(redact(`Authorization: Bearer abc.def`, undefined)).toBe('Authorization: Bearer ***');
    const err = new Error('fetch failed', { cause: new Error(`connect to https://api:${KEY}@host refused, Authorization: Basic ${b64}`) });
    expect(redactError(err, KEY)).not.toContain(KEY);
    expect(redactError(err, KEY)).not.toContain(b64);
    expect(redactError(err, KEY)).toMatch(/fetch failed: connect to/);
  });

  it('a fetch error carrying the Authorization header or the key reaches no log line, error or stored row', async () => {
    const leaky: typeof fetch = async (url, init) => {
      const auth = new Headers(init?.headers).get('authorization');
      throw new TypeError('fetch failed', { cause: new Error(`socket hang up on ${String(url)} with Authorization: ${auth}; key ${KEY}`) });
    };
    const client = new WandbClient({ baseUrl: fake.url, apiKey: KEY, fetch: leaky });
    const err = await client.viewer().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WandbRequestError);
    expect((err as Error).message).toMatch(/socket hang up/);
    expect((err as Error).message).not.toContain(KEY);
    expect((err as Error).message).not.toContain(b64);

    // The same through the outbox: the row's lastError and the log stay clean.
    const s = await makeSweep();
    const lines: string[] = [];
    const m = mirror(env({ WANDB_MODE: 'offline' }));
    await start(m, s, s.trialIds[0]);
    const delivery = new OutboxDelivery(db.prisma, { settings: { ...wandbSettings(env()), apiKey: KEY }, fetch: leaky, maxAttempts: 1, sweepId: s.sweepId, log: (l) => lines.push(l) });
    await delivery.pass();
    const rows = await db.prisma.wandbOutbox.findMany({ where: { sweepId: s.sweepId } });
    const stored = JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    expect(rows.some((r) => r.lastError?.includes('socket hang up'))).toBe(true);
    expect(stored).not.toContain(KEY);
    expect(stored).not.toContain(b64);
    expect(lines.join('\n')).toMatch(/gave up on/);
    expect(lines.join('\n')).not.toContain(KEY);
    expect(lines.join('\n')).not.toContain(b64);
  });

  it('an error body that echoes the key is stored without it', async () => {
    fake.failWhen((r) => r.operation === 'Viewer', 400, JSON.stringify({ error: `bad request from key ${KEY}` }));
    const client = new WandbClient({ baseUrl: fake.url, apiKey: KEY });
    const err = (await client.viewer().catch((e: unknown) => e)) as WandbRequestError;
    expect(err.kind).toBe('permanent');
    expect(err.message).toMatch(/HTTP 400/);
    expect(err.message).not.toContain(KEY);
  });
});

describe('delivery', () => {
  it('sends a full run in order, with the requests the SDK sends', async () => {
    const s = await makeSweep();
    const trialId = s.trialIds[0];
    const runId = trialId.slice(0, 16);
    const m = mirror(env());
    expect(m.mode).toBe('online');
    const from = fake.requests.length;
    // Written before the loop starts: one history chunk, whatever the timing.
    await start(m, s, trialId);
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await m.epoch(trialId, epoch('pretrain', 1), 1);
    await m.epoch(trialId, epoch('gru', 0), 2);
    m.start();
    await waitFor(async () => fake.history('team-x', 'captcha', runId).length === 3, 'the history on W&B', 20_000, 20);
    await m.runEnded(trialId, 'finished', { best_val_seq_acc: 0.5, test_seq_acc: 0.4 });
    await waitFor(() => allDelivered(s.sweepId), 'the outbox to be delivered', 20_000, 20);

    const mine = fake.requests.slice(from);
    const steps = mine.map((r) => r.operation ?? (r.body.complete !== undefined ? `complete:${r.body.complete}` : Object.keys(r.body.files).sort().join('+')));
    expect(steps).toEqual([
      'Viewer', // no WANDB_ENTITY: the key's default entity, for the sweep
      'UpsertSweep',
      'UpsertBucket',
      'wandb-history.jsonl+wandb-summary.json',
      'UpsertBucket', // again at the end: the final status in the tags
      'wandb-summary.json',
      'complete:true',
    ]);
    for (const r of mine) {
      expect(r.method).toBe('POST');
      expect(r.authorization).toBe(`Basic ${Buffer.from(`api:${KEY}`).toString('base64')}`);
    }

    // UpsertSweep: YAML config with the W&B keys of our sweep file and a local controller.
    const sweepReq = mine[1].body;
    expect(sweepReq.query).toMatch(/mutation UpsertSweep\(/);
    expect(sweepReq.variables).toMatchObject({ id: null, entityName: 'team-x', projectName: 'captcha', controller: null });
    const [wbSweep] = [...fake.sweeps.values()].filter((x) => x.config.name === s.name);
    expect(wbSweep.config).toEqual({ name: s.name, method: 'grid', metric: { name: 'val_seq_acc', goal: 'maximize' }, parameters: { dropout: { values: [0.1, 0.2] } }, controller: { type: 'local' } });

    // UpsertBucket: the SDK's variables; config in the backend's {desc, value} form.
    const up = mine[2].body;
    expect(up.query).toMatch(/mutation UpsertBucket\(/);
    expect(up.query).toMatch(/upsertBucket\(input: \{/);
    expect(Object.keys(up.variables).sort()).toEqual(
      ['commit', 'config', 'debug', 'description', 'displayName', 'entity', 'groupName', 'host', 'id', 'jobType', 'name', 'notes', 'program', 'project', 'repo', 'state', 'summaryMetrics', 'sweep', 'tags'].sort(),
    );
    expect(up.variables).toMatchObject({ name: runId, project: 'captcha', entity: null, groupName: s.name, tags: [s.name, 'pretrain', 'gru'], sweep: wbSweep.name, jobType: 'train' });
    expect(JSON.parse(up.variables.config)).toEqual({ dropout: { desc: null, value: 0.1 }, kernel_size: { desc: null, value: 3 } });

    // History: one chunk at offset 0, each line with its _step, the last also as the summary.
    const hist = mine[3].body;
    expect(hist.dropped).toBe(0);
    expect(hist.files['wandb-history.jsonl'].offset).toBe(0);
    const lines = hist.files['wandb-history.jsonl'].content.map((l: string) => JSON.parse(l));
    expect(lines.map((l: any) => [l.phase, l.epoch, l._step])).toEqual([['pretrain', 0, 0], ['pretrain', 1, 1], ['gru', 0, 2]]);
    expect(lines[0]).toMatchObject({ loss: 20, val_char_acc_by_position: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] });
    expect(typeof lines[0]._timestamp).toBe('number');
    expect(typeof lines[0]._runtime).toBe('number');
    expect(hist.files['wandb-summary.json']).toEqual({ offset: 0, content: [hist.files['wandb-history.jsonl'].content[2]] });

    expect(mine[4].body.variables.tags).toEqual([s.name, 'pretrain', 'gru', 'finished']);
    // The final summary as the SDK keeps it: the last value of every history key, the result on top, the run time.
    const summary = JSON.parse(mine[5].body.files['wandb-summary.json'].content[0]);
    expect(summary).toEqual({
      ...lines[2],
      best_val_seq_acc: 0.5,
      test_seq_acc: 0.4,
      status: 'finished',
      _runtime: expect.any(Number),
      _wandb: { runtime: Math.round(summary._runtime) },
    });
    expect(summary._runtime).toBeGreaterThanOrEqual(lines[2]._runtime);
    expect(mine[6].body).toEqual({ complete: true, exitcode: 0, dropped: 0, uploaded: [] });

    // What W&B ends up with, and what we recorded.
    const run = fake.run('team-x', 'captcha', runId)!;
    expect(run).toMatchObject({ groupName: s.name, sweep: wbSweep.name, complete: true, exitcode: 0, tags: [s.name, 'pretrain', 'gru', 'finished'] });
    expect(fake.history('team-x', 'captcha', runId).map((l) => l?.epoch)).toEqual([0, 1, 0]);
    const rec = await db.prisma.wandbRun.findUniqueOrThrow({ where: { trialId } });
    expect(rec).toMatchObject({ runId, entity: 'team-x', project: 'captcha', sweepName: wbSweep.name, url: `${fake.url}/team-x/captcha/runs/${runId}` });
    const ws = await db.prisma.wandbSweep.findUniqueOrThrow({ where: { sweepId: s.sweepId } });
    expect(ws).toMatchObject({ wandbSweepId: wbSweep.name, entity: 'team-x', url: `${fake.url}/team-x/captcha/sweeps/${wbSweep.name}` });
  });

  it('delivers while training goes: each epoch as it comes, a failed trial exits 1', async () => {
    const m = mirror(env({ WANDB_ENTITY: 'me' }), () => {}, { heartbeatMs: 30 });
    const { s, trialId, runId } = await startedRun(m, { loop: true });
    for (let e = 0; e < 4; e++) {
      await m.epoch(trialId, epoch('pretrain', e), e);
      await waitFor(async () => fake.history('me', 'captcha', runId).length === e + 1, `epoch ${e} on W&B`, 20_000, 20);
    }
    // Between epochs the run's file stream gets heartbeats, so W&B does not think it crashed.
    await waitFor(async () => (fake.run('me', 'captcha', runId)?.heartbeats ?? 0) > 0, 'a heartbeat', 20_000, 20);
    const beat = fileStreamOf(runId).find((r) => r.body.complete === false)!;
    expect(beat.body).toEqual({ complete: false, failed: false, dropped: 0, uploaded: [] });
    await m.runEnded(trialId, 'diverged', { error: 'loss NaN' });
    await waitFor(async () => fake.run('me', 'captcha', runId)?.complete, 'the exit', 20_000, 20);
    expect(fake.run('me', 'captcha', runId)!.exitcode).toBe(1);
    // WANDB_ENTITY set: no Viewer query needed.
    expect(fake.requests.filter((r) => r.operation === 'UpsertSweep').at(-1)!.body.variables.entityName).toBe('me');
    expect(historyPosts(runId).map((r) => r.body.files['wandb-history.jsonl'].offset)).toEqual([0, 1, 2, 3]);

    // Written again with the same values (a worker storing the whole history at the end):
    // nothing changes, nothing is sent again. Other values do not go either: W&B has the line
    // at that offset already and its history only grows (the SDK's steps only increase).
    const before = await db.prisma.wandbOutbox.findFirstOrThrow({ where: { trialId, kind: 'history', step: 1 } });
    await m.epoch(trialId, epoch('pretrain', 1), 1);
    const same = await db.prisma.wandbOutbox.findFirstOrThrow({ where: { trialId, kind: 'history', step: 1 } });
    expect(same).toMatchObject({ revision: before.revision, deliveredAt: before.deliveredAt, payload: before.payload });
    const posts = historyPosts(runId).length;
    await m.epoch(trialId, epoch('pretrain', 1, 5), 1);
    const changed = await db.prisma.wandbOutbox.findFirstOrThrow({ where: { trialId, kind: 'history', step: 1 } });
    expect(changed).toMatchObject({ revision: before.revision, deliveredAt: before.deliveredAt, payload: before.payload });
    await new Promise((r) => setTimeout(r, 200));
    expect(historyPosts(runId).length).toBe(posts);
    expect(fake.history('me', 'captcha', runId)[1]?.loss).toBe(19);
    expect(fake.history('me', 'captcha', runId).length).toBe(4);
    await expect(m.epoch('f'.repeat(32), epoch('pretrain', 0), 0)).rejects.toThrow(/trial f+ is not in the database/);
  });

  it('an epoch written late (its first attempt died before writing it) goes to its own step; the lines after it wait', async () => {
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m);
    await m.epoch(trialId, epoch('pretrain', 1), 1);
    await m.epoch(trialId, epoch('pretrain', 2), 2);
    const delivery = new OutboxDelivery(db.prisma, { settings: { ...wandbSettings(env({ WANDB_ENTITY: 'me' })), apiKey: KEY }, sweepId: s.sweepId, log: () => {} });
    await delivery.pass();
    expect(fake.run('me', 'captcha', runId)).toBeTruthy();
    expect(historyPosts(runId)).toEqual([]);
    expect(await delivery.nextDueMs()).toBeNull();
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await delivery.pass();
    expect(historyPosts(runId).map((r) => r.body.files['wandb-history.jsonl'].offset)).toEqual([0]);
    expect(fake.history('me', 'captcha', runId).map((l) => l?.epoch)).toEqual([0, 1, 2]);
    await expect(m.epoch(trialId, epoch('pretrain', 3), -1)).rejects.toThrow(/step -1 .* is not a whole number/);
  });

  it('a 503 phase (W&B storing, then failing) and recovery: every history line once, at its offset', async () => {
    const m = mirror(env({ WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m, { loop: true });
    await waitFor(async () => fake.run('me', 'captcha', runId), 'the run upsert', 20_000, 20);
    fake.storeBeforeFailing = true;
    fake.setMode('503');
    for (let e = 0; e < 5; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    // A replayed epoch (a resumed trial) overwrites its line: same step, new values.
    await m.epoch(trialId, epoch('pretrain', 2, 99), 2);
    await waitFor(async () => historyPosts(runId).filter((r) => r.answer === 503).length >= 3, 'failed history posts', 20_000, 20);
    const failing = await db.prisma.wandbOutbox.findFirstOrThrow({ where: { trialId, kind: 'history', step: 0 } });
    expect(failing.lastError).toMatch(/HTTP 503/);
    expect(failing.attempts).toBeGreaterThan(0);
    expect(failing.deliveredAt).toBeNull();
    fake.setMode('ok');
    await waitFor(() => allDelivered(s.sweepId), 'delivery after the outage', 20_000, 20);

    const lines = fake.history('me', 'captcha', runId);
    expect(lines.map((l) => [l?._step, l?.epoch, l?.loss])).toEqual([[0, 0, 20], [1, 1, 19], [2, 2, 99], [3, 3, 17], [4, 4, 16]]);
    // Sent more than once (the store-then-503 answers), stored once: sends overwrite.
    const sent = historyPosts(runId).reduce((n, r) => n + r.body.files['wandb-history.jsonl'].content.length, 0);
    expect(sent).toBeGreaterThan(5);
    const steps = await db.prisma.wandbOutbox.findMany({ where: { trialId, kind: 'history' }, select: { step: true }, orderBy: { step: 'asc' } });
    expect(steps.map((r) => r.step)).toEqual([0, 1, 2, 3, 4]);
  });

  it('a hanging W&B holds up no epoch() call and is recovered from through the timeout', async () => {
    const m = mirror(env({ WANDB_ENTITY: 'me' }), () => {}, { timeoutMs: 300 });
    const { s, trialId, runId } = await startedRun(m, { loop: true });
    await waitFor(async () => fake.run('me', 'captcha', runId), 'the run upsert', 20_000, 20);
    fake.storeBeforeFailing = true;
    fake.setMode('hang');
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await waitFor(async () => fake.hanging() > 0, 'a hanging request', 20_000, 20);
    // W&B is not answering; the writes still complete.
    for (let e = 1; e < 4; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    await waitFor(async () => (await db.prisma.wandbOutbox.findFirst({ where: { trialId, step: 0 } }))?.lastError?.includes('no answer within'), 'a timed-out attempt', 20_000, 20);
    fake.setMode('ok');
    await m.runEnded(trialId, 'finished', { best_val_seq_acc: 0.1 });
    await waitFor(() => allDelivered(s.sweepId), 'delivery after the hang', 20_000, 20);
    expect(fake.history('me', 'captcha', runId).map((l) => l?.epoch)).toEqual([0, 1, 2, 3]);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ complete: true, exitcode: 0 });
  });

  it('retries are bounded: the row becomes undeliverable with the reason, holds its run back, and sync sends it', async () => {
    const lines: string[] = [];
    fake.setMode('503');
    const m = mirror(env({ WANDB_ENTITY: 'me' }), (l) => lines.push(l), { maxAttempts: 3 });
    const { s, trialId, runId } = await startedRun(m, { loop: true });
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await waitFor(async () => (await db.prisma.wandbOutbox.findUnique({ where: { key: `sweep/${s.sweepId}` } }))?.failedAt, 'the sweep row to be given up', 20_000, 20);
    await waitFor(async () => (await db.prisma.wandbOutbox.findUnique({ where: { key: `${trialId}/run` } }))?.failedAt, 'the run row to be given up', 20_000, 20);
    const run = await db.prisma.wandbOutbox.findUniqueOrThrow({ where: { key: `${trialId}/run` } });
    expect(run.attempts).toBe(3);
    expect(run.lastError).toMatch(/HTTP 503 .*\(attempt 3 of 3\)/);
    const hist = await db.prisma.wandbOutbox.findFirstOrThrow({ where: { trialId, kind: 'history' } });
    expect(hist).toMatchObject({ attempts: 0, failedAt: null, deliveredAt: null });
    expect(lines.filter((l) => /gave up on/.test(l)).length).toBe(2);
    const [st] = await outboxStatus(db.prisma, s.sweepId);
    expect(st).toMatchObject({ delivered: 0, pending: 1, undeliverable: 2 });
    expect(st.lastError).toMatch(/HTTP 503/);
    await m.close();

    fake.setMode('ok');
    const progress: number[] = [];
    const r = await syncOutbox(db.prisma, env({ WANDB_ENTITY: 'me' }), { sweepId: s.sweepId, backoffBaseMs: 10, onProgress: (p) => progress.push(p.delivered) });
    expect(r).toEqual({ delivered: 3, failed: 0, pending: 0, errors: [] });
    expect(progress.at(-1)).toBe(3);
    // The run was registered under the sweep once the sweep was.
    const [wb] = [...fake.sweeps.values()].filter((x) => x.config.name === s.name);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ sweep: wb.name });
    expect(fake.history('me', 'captcha', runId).length).toBe(1);
  });

  it('a sweep W&B will not register leaves runs in their group; a permanent refusal gives up at once', async () => {
    const s = await makeSweep();
    const trialId = s.trialIds[0];
    const runId = trialId.slice(0, 16);
    fake.failWhen((r) => r.operation === 'UpsertSweep' || (r.path.endsWith(`${runId}/file_stream`) && r.body?.complete === true), 400, '{"error":"invalid"}');
    const m = mirror(env({ WANDB_ENTITY: 'me' }));
    await start(m, s, trialId);
    await m.epoch(trialId, epoch('gru', 0), 0);
    await m.runEnded(trialId, 'stopped', {});
    m.start();
    await waitFor(async () => (await db.prisma.wandbOutbox.findUnique({ where: { key: `${trialId}/finish` } }))?.failedAt, 'the finish to be refused', 20_000, 20);
    const sweepRow = await db.prisma.wandbOutbox.findUniqueOrThrow({ where: { key: `sweep/${s.sweepId}` } });
    expect(sweepRow).toMatchObject({ attempts: 1 });
    expect(sweepRow.lastError).toMatch(/HTTP 400/);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ groupName: s.name, sweep: null, tags: [s.name, 'gru', 'stopped'] });
    const finish = await db.prisma.wandbOutbox.findUniqueOrThrow({ where: { key: `${trialId}/finish` } });
    expect(finish.attempts).toBe(1);
  });

  it('a run W&B will not add to its sweep (deleted there) still goes, in its group', async () => {
    const e = env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' });
    const m = mirror(e);
    const { s, trialId, runId } = await startedRun(m);
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    expect(await syncOutbox(db.prisma, e, { sweepId: s.sweepId })).toMatchObject({ delivered: 3, failed: 0, pending: 0 });
    const wbSweep = fake.run('me', 'captcha', runId)!.sweep!;
    fake.sweeps.delete(wbSweep);
    await m.runEnded(trialId, 'finished', {});
    const lines: string[] = [];
    expect(await syncOutbox(db.prisma, e, { sweepId: s.sweepId, log: (l) => lines.push(l) })).toMatchObject({ delivered: 3, failed: 0, pending: 0 });
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^W&B: run ${runId} not added to sweep ${wbSweep}: W&B GraphQL error: sweep ${wbSweep} not found`))]);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ complete: true, tags: [s.name, 'pretrain', 'finished'] });
  });

  it('a refused key stops delivery with one clear message; rows wait for sync with a good key', async () => {
    const lines: string[] = [];
    const bad = env({ WANDB_API_KEY: 'wrong-key-0000000000000000000000000000000', WANDB_ENTITY: 'me' });
    const m = mirror(bad, (l) => lines.push(l));
    const { s, trialId } = await startedRun(m);
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    const before = fake.requests.length;
    m.start();
    await waitFor(async () => lines.some((l) => /refused the API key/.test(l)), 'the bad-key message', 20_000, 20);
    await m.epoch(trialId, epoch('pretrain', 1), 1);
    await m.close();
    expect(lines.filter((l) => /refused the API key/.test(l))).toEqual([
      `W&B refused the API key (HTTP 401) at ${fake.url}; delivery stopped. Check WANDB_API_KEY (and WANDB_ENTITY, WANDB_BASE_URL), then run \`sweep wandb sync\`.`,
    ]);
    // One request told it all; nothing was given up on.
    expect(fake.requests.length - before).toBe(1);
    const rows = await db.prisma.wandbOutbox.findMany({ where: { sweepId: s.sweepId } });
    expect(rows.every((r) => r.failedAt === null && r.attempts === 0 && r.deliveredAt === null)).toBe(true);
    expect(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain('wrong-key');

    const refused = await syncOutbox(db.prisma, bad, { sweepId: s.sweepId });
    expect(refused.errors[0]).toMatch(/refused the API key/);
    expect(refused.pending).toBe(4);
    const good = await syncOutbox(db.prisma, env({ WANDB_ENTITY: 'me' }), { sweepId: s.sweepId });
    expect(good).toMatchObject({ delivered: 4, pending: 0, failed: 0 });
  });

  it('two delivery loops on one outbox send each line once (leases)', async () => {
    const s = await makeSweep(3);
    const m1 = mirror(env({ WANDB_ENTITY: 'me' }));
    const m2 = mirror(env({ WANDB_ENTITY: 'me' }));
    for (const id of s.trialIds) {
      await start(m1, s, id);
      for (let e = 0; e < 6; e++) await m1.epoch(id, epoch('pretrain', e), e);
      await m1.runEnded(id, 'finished', {});
    }
    m1.start();
    m2.start();
    await waitFor(() => allDelivered(s.sweepId), 'delivery by two loops', 20_000, 20);
    expect(fake.requests.filter((r) => r.operation === 'UpsertSweep' && r.body.variables.config.includes(s.name)).length).toBe(1);
    for (const id of s.trialIds) {
      const runId = id.slice(0, 16);
      const sent = historyPosts(runId).reduce((n, r) => n + r.body.files['wandb-history.jsonl'].content.length, 0);
      expect(sent).toBe(6);
      expect(fileStreamOf(runId).filter((r) => r.body.complete === true).length).toBe(1);
      expect(fake.history('me', 'captcha', runId).map((l) => l?.epoch)).toEqual([0, 1, 2, 3, 4, 5]);
    }
  });
});

describe('as the SDK does', () => {
  const deliveryFor = (sweepId: string, log: (l: string) => void = () => {}, opts: Partial<ConstructorParameters<typeof OutboxDelivery>[1]> = {}) =>
    new OutboxDelivery(db.prisma, { settings: { ...wandbSettings(env({ WANDB_ENTITY: 'me' })), apiKey: KEY }, sweepId, log, backoffBaseMs: 1, backoffMaxMs: 1, ...opts });

  it('a history chunk W&B refuses for good is dropped and logged; the later lines, the summary and the exit go', async () => {
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m);
    for (let e = 0; e < 2; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    const lines: string[] = [];
    const delivery = deliveryFor(s.sweepId, (l) => lines.push(l));
    await delivery.pass();
    fake.failWhen((r) => r.path.endsWith(`${runId}/file_stream`) && r.body?.files?.['wandb-history.jsonl']?.offset === 2, 400, '{"error":"invalid history line"}');
    for (let e = 2; e < 4; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    await delivery.pass();
    fake.failWhen(null);
    await m.epoch(trialId, epoch('gru', 0), 4);
    await m.runEnded(trialId, 'finished', { best_val_seq_acc: 0.3 });
    await delivery.pass();

    expect(lines).toEqual([expect.stringMatching(new RegExp(`^W&B: dropped ${trialId}/history/pretrain/2 \\(and 1 more\\): POST .*/file_stream: HTTP 400 .*invalid history line.*; the run's later rows go on$`))]);
    expect(fake.history('me', 'captcha', runId).map((l) => l?._step)).toEqual([0, 1, undefined, undefined, 4]);
    const run = fake.run('me', 'captcha', runId)!;
    expect(run).toMatchObject({ complete: true, exitcode: 0 });
    expect(JSON.parse(run.summary!)).toMatchObject({ best_val_seq_acc: 0.3, phase: 'gru', _step: 4 });
    const [st] = await outboxStatus(db.prisma, s.sweepId);
    expect(st).toMatchObject({ pending: 0, undeliverable: 2 });
    // sync cannot send them any more (W&B has later lines): they stay undeliverable, with why.
    const r = await syncOutbox(db.prisma, env({ WANDB_ENTITY: 'me' }), { sweepId: s.sweepId });
    expect(r).toMatchObject({ delivered: 0, failed: 2, pending: 0 });
    expect(r.errors[0]).toMatch(/W&B has later history lines of this run already/);
  });

  it("a 403 on one run's file stream is that run's problem, not a bad key: delivery goes on", async () => {
    const s = await makeSweep(2);
    const [a, b] = s.trialIds;
    const runA = a.slice(0, 16);
    const lines: string[] = [];
    const m = mirror(env({ WANDB_ENTITY: 'me' }), (l) => lines.push(l), { heartbeatMs: 30 });
    fake.failWhen((r) => r.path.endsWith(`${runA}/file_stream`), 403, '{"error":"forbidden"}');
    for (const id of [a, b]) {
      await start(m, s, id);
      await m.epoch(id, epoch('pretrain', 0), 0);
    }
    m.start();
    await waitFor(async () => fake.history('me', 'captcha', b.slice(0, 16)).length === 1, 'the other run delivered', 20_000, 20);
    await waitFor(async () => fileStreamOf(runA).some((r) => r.body.complete === false), 'a refused heartbeat', 20_000, 20);
    for (const id of [a, b]) await m.runEnded(id, 'finished', {});
    await waitFor(async () => fake.run('me', 'captcha', b.slice(0, 16))?.complete, 'the other run finished', 20_000, 20);
    await waitFor(async () => (await db.prisma.wandbOutbox.count({ where: { trialId: a, deliveredAt: null, droppedAt: null } })) === 0, "the refused run's rows dropped", 20_000, 20);
    expect(lines.some((l) => /refused the API key/.test(l))).toBe(false);
    expect(lines.filter((l) => l.startsWith(`W&B: dropped ${a}/`)).length).toBe(3);
    expect(lines.some((l) => /HTTP 403/.test(l))).toBe(true);
  });

  it('a resumed run goes on at its historyLineCount: lines W&B has are not sent again', async () => {
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m);
    for (let e = 0; e < 3; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    const delivery = deliveryFor(s.sweepId);
    await delivery.pass();
    // Line 3 reaches W&B but the answer does not (the first attempt dies waiting for it).
    fake.storeBeforeFailing = true;
    fake.setMode('503');
    await m.epoch(trialId, epoch('pretrain', 3), 3);
    await delivery.pass();
    fake.setMode('ok');
    fake.storeBeforeFailing = false;
    expect(fake.history('me', 'captcha', runId).length).toBe(4);
    // The next attempt: the same run again; it replays epoch 3 (other values) and goes on.
    await m.runStarted({ trialId, sweepId: s.sweepId, sweepName: s.name, params: { dropout: 0.1, kernel_size: 3 }, attempt: 2 });
    await m.epoch(trialId, epoch('pretrain', 3, 50), 3);
    await m.epoch(trialId, epoch('pretrain', 4), 4);
    const from = fake.requests.length;
    await new Promise((r) => setTimeout(r, 20));
    await delivery.pass();
    const after = fake.requests.slice(from).filter((r) => r.answer === 200);
    expect(after[0].operation).toBe('UpsertBucket');
    expect(after.filter((r) => r.body?.files?.['wandb-history.jsonl']).map((r) => r.body.files['wandb-history.jsonl'].offset)).toEqual([4]);
    const hist = fake.history('me', 'captcha', runId);
    expect(hist.map((l) => [l?._step, l?.loss])).toEqual([[0, 20], [1, 19], [2, 18], [3, 17], [4, 16]]);
    expect(fake.run('me', 'captcha', runId)!.upserts).toBe(2);
    expect(await db.prisma.wandbOutbox.count({ where: { trialId, deliveredAt: null } })).toBe(0);
  });

  it('a trial given back to the queue: its history goes, then a preempting notice; the next attempt resumes the same run', async () => {
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m);
    for (let e = 0; e < 2; e++) await m.epoch(trialId, epoch('pretrain', e), e);
    await m.runPreempted(trialId);
    const delivery = deliveryFor(s.sweepId);
    const from = fake.requests.length;
    await delivery.pass();
    const sent = fake.requests.slice(from).filter((r) => r.path.endsWith('/file_stream'));
    expect(sent.map((r) => (r.body.files ? 'history' : r.body))).toEqual(['history', { preempting: true, dropped: 0 }]);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ preempting: true, complete: false });
    expect(fake.history('me', 'captcha', runId).length).toBe(2);

    // The next attempt: the same W&B run, upserted again (no longer preempting), history on from step 2.
    await start(m, s, trialId);
    await m.epoch(trialId, epoch('pretrain', 2), 2);
    await m.runEnded(trialId, 'finished', {});
    await delivery.pass();
    expect(fake.runs.size).toBeGreaterThan(0);
    expect([...fake.runs.values()].filter((r) => r.name === runId).length).toBe(1);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ preempting: false, preemptings: 1, complete: true, exitcode: 0 });
    expect(fake.history('me', 'captcha', runId).map((l) => l?._step)).toEqual([0, 1, 2]);

    // A notice not yet sent when the next attempt starts is dropped: the run trains again.
    await m.runPreempted(trialId);
    await start(m, s, trialId);
    expect(await db.prisma.wandbOutbox.count({ where: { trialId, kind: 'preempt', deliveredAt: null } })).toBe(0);
  });

  it('NaN and infinities go as the JSON tokens the SDK writes, in history lines and the summary', async () => {
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    const { s, trialId, runId } = await startedRun(m);
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await m.epoch(trialId, { ...epoch('pretrain', 1), loss: NaN, val_loss: Infinity }, 1);
    await m.runEnded(trialId, 'diverged', { error: 'loss NaN', best_val_seq_acc: -Infinity });
    await deliveryFor(s.sweepId).pass();
    const post = historyPosts(runId).at(-1)!.body.files['wandb-history.jsonl'];
    expect(post.content[1]).toMatch(/"loss":NaN,/);
    expect(post.content[1]).toMatch(/"val_loss":Infinity,/);
    const lines = fake.history('me', 'captcha', runId);
    expect(lines[1]).toMatchObject({ loss: NaN, val_loss: Infinity, _step: 1 });
    const summaryText = fake.run('me', 'captcha', runId)!.summary!;
    expect(summaryText).toMatch(/"best_val_seq_acc":-Infinity/);
    expect(summaryText).toMatch(/"loss":NaN/);
    expect(fake.run('me', 'captcha', runId)).toMatchObject({ complete: true, exitcode: 1 });
  });
});

describe('the strict fake W&B server', () => {
  it('refuses what W&B would not take: unknown fields or variables, wrong types, config without value, offset gaps and rewrites, a final request without exitcode', async () => {
    const post = async (path: string, body: unknown) => (await fetch(`${fake.url}${path}`, { method: 'POST', headers: { Authorization: `Basic ${Buffer.from(`api:${KEY}`).toString('base64')}` }, body: JSON.stringify(body) })).status;
    const bucket = (vars: Record<string, unknown>, extra = '') => ({
      query: `mutation UpsertBucket($name: String, $project: String, $entity: String, $config: JSONString, $tags: [String!]) { upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, config: $config, tags: $tags}) { bucket { id historyLineCount ${extra} } inserted } }`,
      variables: vars,
    });
    expect(await post('/graphql', bucket({ name: 'strict1', project: 'captcha', entity: 'me' }))).toBe(200);
    expect(await post('/graphql', bucket({ name: 'strict1', project: 'captcha', entity: 'me' }, 'nonsense'))).toBe(400);
    expect(await post('/graphql', bucket({ name: 'strict1', project: 'captcha', entity: 'me', state: 'running' }))).toBe(400);
    expect(await post('/graphql', bucket({ name: 'strict1', project: 'captcha', tags: [1, null] }))).toBe(400);
    expect(await post('/graphql', bucket({ name: 'strict1', project: 'captcha', config: JSON.stringify({ lr: 0.1 }) }))).toBe(400);
    expect(await post('/graphql', { query: 'query Other { viewer { id } }', variables: {} })).toBe(400);
    const fs = '/files/me/captcha/strict1/file_stream';
    const line = (step: number) => JSON.stringify({ loss: 1, _step: step });
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 1, content: [line(1)] } } })).toBe(400);
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 0, content: [line(0), line(1)] } } })).toBe(200);
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 1, content: [line(1)] } } })).toBe(200); // the same line again
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 1, content: [JSON.stringify({ loss: 2, _step: 1 })] } } })).toBe(400);
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 2, content: [line(1)] } } })).toBe(400);
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 2, content: ['{"loss": nan, "_step": 2}'] } } })).toBe(400);
    expect(await post(fs, { files: { 'wandb-history.jsonl': { offset: 2, content: ['{"loss": NaN, "_step": 2}'] } } })).toBe(200);
    expect(await post(fs, { complete: true })).toBe(400);
    expect(fake.violations.splice(0).length).toBe(10);
  });
});

describe('modes', () => {
  it('disabled writes nothing; online without a key is disabled and says so once', async () => {
    const s = await makeSweep();
    const m = mirror(env({ WANDB_MODE: 'disabled' }));
    expect(m.mode).toBe('disabled');
    await start(m, s, s.trialIds[0]);
    await m.epoch(s.trialIds[0], epoch('pretrain', 0), 0);
    await m.runEnded(s.trialIds[0], 'finished', {});
    m.start();
    const lines: string[] = [];
    const keyless = mirror({ WANDB_BASE_URL: fake.url }, (l) => lines.push(l));
    expect(keyless.mode).toBe('disabled');
    await start(keyless, s, s.trialIds[0]);
    await keyless.epoch(s.trialIds[0], epoch('pretrain', 0), 0);
    expect(lines).toEqual(['W&B: WANDB_API_KEY is not set; runs are not mirrored to W&B']);
    expect(await db.prisma.wandbOutbox.count({ where: { sweepId: s.sweepId } })).toBe(0);
  });

  it('offline writes the outbox and sends nothing until sync', async () => {
    const s = await makeSweep();
    const trialId = s.trialIds[0];
    const before = fake.requests.length;
    const m = mirror(env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }));
    expect(m.mode).toBe('offline');
    m.start();
    await start(m, s, trialId);
    await m.epoch(trialId, epoch('pretrain', 0), 0);
    await m.runEnded(trialId, 'finished', {});
    await m.close();
    expect(fake.requests.length).toBe(before);
    expect(await db.prisma.wandbOutbox.count({ where: { sweepId: s.sweepId, deliveredAt: null } })).toBe(5);
    const r = await syncOutbox(db.prisma, env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }), { sweepId: s.sweepId });
    expect(r).toMatchObject({ delivered: 5, failed: 0, pending: 0 });
    expect(fake.run('me', 'captcha', trialId.slice(0, 16))).toMatchObject({ complete: true, exitcode: 0 });
  });
});

describe('sweep wandb', () => {
  it('sync sends a sweep\'s outbox (--json counts), exits 1 naming what stayed undelivered; status shows it', async () => {
    const cliEnv = { DATABASE_URL: tdb.url, ...env({ WANDB_MODE: 'offline', WANDB_ENTITY: 'me' }) };
    const m = mirror(cliEnv);
    const { s, trialId } = await startedRun(m);
    await m.epoch(trialId, epoch('pretrain', 0), 0);

    fake.failWhen((r) => r.path.endsWith('/file_stream'), 400, '{"error":"line too long"}');
    const failed = await runCli(['wandb', 'sync', s.name], cliEnv, { timeoutMs: 60_000 });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`${trialId}/history/pretrain/0: POST .*/file_stream: HTTP 400 \\{"error":"line too long"\\}`));
    expect(failed.stderr).toMatch(/2 row\(s\) sent; 0 pending, 1 undeliverable/);
    expect(failed.stderr + failed.stdout).not.toContain(KEY);

    const status = await runCli(['wandb', 'status', s.name, '--json'], cliEnv, { timeoutMs: 60_000 });
    expect(status.code).toBe(0);
    const st = JSON.parse(status.stdout).sweeps[0];
    expect(st).toMatchObject({ sweep: s.name, delivered: 2, pending: 0, undeliverable: 1, runs: 1 });
    expect(st.lastError).toMatch(/HTTP 400/);
    const text = await runCli(['wandb', 'status', s.name], cliEnv, { timeoutMs: 60_000 });
    expect(text.stdout).toMatch(new RegExp(`${s.name}: 2 sent, 0 pending, 1 undeliverable; 1 run\\(s\\) on W&B`));

    fake.failWhen(null);
    const ok = await runCli(['wandb', 'sync', s.name, '--json'], cliEnv, { timeoutMs: 60_000 });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ delivered: 1, failed: 0, pending: 0, errors: [] });
    expect(fake.history('me', 'captcha', trialId.slice(0, 16)).length).toBe(1);

    const unknown = await runCli(['wandb', 'sync', 'no-such-sweep'], cliEnv, { timeoutMs: 60_000 });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no sweep named "no-such-sweep"/);
    const keyless = await runCli(['wandb', 'sync'], { DATABASE_URL: tdb.url, WANDB_API_KEY: '' }, { timeoutMs: 60_000 });
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toMatch(/WANDB_API_KEY is not set/);
  });
});
