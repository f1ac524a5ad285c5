import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusText } from '../../src/cli/status.ts';
import { openDatabase, type Database } from '../../src/infra/db.ts';
import { sweepStatus, trialRows } from '../../src/track/store.ts';
import { failedTrials, runningTrials, sweepStatusView } from '../../src/track/trial-view.ts';
import { runCli } from '../e2e/helpers.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { addEpochs, epochValues, setTrial, storeSweep, type StoredSweep } from './view-fixtures.ts';

const NOW = new Date('2026-11-27T12:00:00Z');
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000);
const LONG = `RangeError: ${'x'.repeat(200)}\n    at somewhere (file.ts:1)`;

let pgdb: TestDatabase;
let db: Database;
let dir: string;
let env: Record<string, string>;
let busy: StoredSweep;
let quiet: StoredSweep;

beforeAll(async () => {
  pgdb = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'sweep-status-'));
  env = { DATABASE_URL: pgdb.url, SWEEP_HOME: path.join(dir, 'home') };
  db = await openDatabase({ env, migrate: true });
  const p = db.prisma;
  busy = await storeSweep(p, 'busy', Array.from({ length: 26 }, (_, i) => (i + 1) / 100));
  quiet = await storeSweep(p, 'quiet', [0.1, 0.2]);
  const ids = busy.ids;

  // #0..#11 running. #0: epochs stored one by one, the latest in the GRU phase.
  await setTrial(p, ids[0], { status: 'running', worker: 'box-a:1', attempts: 1, startedAt: secondsAgo(600), heartbeatAt: secondsAgo(4), bestMetric: 0.3 });
  await addEpochs(p, ids[0], [
    { phase: 'pretrain', epoch: 0, values: epochValues(0.05), createdAt: secondsAgo(400) },
    { phase: 'pretrain', epoch: 1, values: epochValues(0.1), createdAt: secondsAgo(300) },
    { phase: 'pretrain', epoch: 2, values: epochValues(0.2), createdAt: secondsAgo(200) },
    { phase: 'gru', epoch: 0, values: epochValues(0.3), createdAt: secondsAgo(100) },
  ]);
  // #1: every epoch stored in one statement (same timestamp); its heartbeat is stale.
  await setTrial(p, ids[1], { status: 'running', worker: 'box-b:2', attempts: 2, startedAt: secondsAgo(900), heartbeatAt: secondsAgo(120), bestMetric: 0.4 });
  await addEpochs(p, ids[1], [
    { phase: 'pretrain', epoch: 0, values: epochValues(0.1) },
    { phase: 'pretrain', epoch: 2, values: epochValues(0.2) },
    { phase: 'pretrain', epoch: 1, values: epochValues(0.15) },
    { phase: 'gru', epoch: 1, values: epochValues(0.35) },
    { phase: 'gru', epoch: 0, values: epochValues(0.4) },
  ]);
  // #2: claimed, no epoch yet, no heartbeat written.
  await setTrial(p, ids[2], { status: 'running', worker: 'box-c:3', attempts: 1, startedAt: secondsAgo(5) });
  for (let i = 3; i < 12; i++) {
    await setTrial(p, ids[i], { status: 'running', worker: `box-d:${i}`, attempts: 1, startedAt: secondsAgo(60), heartbeatAt: secondsAgo(1) });
    await addEpochs(p, ids[i], [{ phase: 'pretrain', epoch: 0, values: epochValues(i / 100) }]);
  }
  // #12..#23 failed or diverged, #23 the latest to end.
  for (let i = 12; i < 24; i++) {
    const diverged = i % 2 === 1;
    await setTrial(p, ids[i], {
      status: diverged ? 'diverged' : 'failed',
      worker: 'box-a:1',
      attempts: diverged ? 1 : 3,
      startedAt: secondsAgo(3000),
      finishedAt: secondsAgo(2000 - i * 10),
      error: i === 20 ? LONG : i === 14 ? null : diverged ? `training diverged: loss NaN in gru epoch ${i}` : `Error: worker crashed (trial ${i})\n    at run (runner.ts:10)`,
    });
  }
  await setTrial(p, ids[24], { status: 'stopped', error: 'hyperband: below the top 1/3 at epoch 3', startedAt: secondsAgo(5000), finishedAt: secondsAgo(4000), bestMetric: 0.01 });
  await setTrial(p, ids[25], {
    status: 'finished', worker: 'box-a:1', startedAt: secondsAgo(5000), finishedAt: secondsAgo(4000), bestMetric: 0.5,
    summary: { images_per_s: 20, val_seq_acc: 0.5, val_char_acc: 0.8 },
  });
  // A sweep with nothing running or failed.
  await setTrial(p, quiet.ids[0], { status: 'finished', startedAt: secondsAgo(100), finishedAt: secondsAgo(50), bestMetric: 0.2 });
});

afterAll(async () => {
  await db?.close();
  await pgdb?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('runningTrials', () => {
  it('gives each running trial its latest phase and epoch, the sweep metric there and its heartbeat age', async () => {
    const rows = await runningTrials(db.prisma, busy.id, { now: NOW });
    expect(rows.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(rows[0]).toMatchObject({
      id: busy.ids[0], worker: 'box-a:1', attempts: 1, phase: 'gru', epoch: 1, epochs: 4, metric: 0.3, bestMetric: 0.3,
      heartbeatAt: secondsAgo(4).toISOString(), heartbeatAgeSeconds: 4, stale: false, startedAt: secondsAgo(600).toISOString(),
    });
    expect(rows[0].params).toMatchObject({ dropout: 0.01 });
    // Rows of equal timestamps: the GRU phase's highest epoch is the latest.
    expect(rows[1]).toMatchObject({ phase: 'gru', epoch: 2, metric: 0.35, heartbeatAgeSeconds: 120, stale: true });
    expect(rows[2]).toMatchObject({ phase: null, epoch: null, epochs: null, metric: null, heartbeatAt: null, heartbeatAgeSeconds: null, stale: false });
    expect(rows[5]).toMatchObject({ phase: 'pretrain', epoch: 1, epochs: 3, metric: 0.05 });
  });

  it('stops at the limit, and lists nothing for a sweep with no running trial', async () => {
    expect((await runningTrials(db.prisma, busy.id, { limit: 3 })).map((r) => r.index)).toEqual([0, 1, 2]);
    expect(await runningTrials(db.prisma, quiet.id)).toEqual([]);
  });
});

describe('failedTrials', () => {
  it('lists failed and diverged trials, the latest first, with the first line of the error, shortened', async () => {
    const rows = await failedTrials(db.prisma, busy.id);
    expect(rows.map((r) => r.index)).toEqual([23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12]);
    expect(rows[0]).toMatchObject({ id: busy.ids[23], status: 'diverged', attempts: 1, reason: 'training diverged: loss NaN in gru epoch 23' });
    expect(rows[1]).toMatchObject({ status: 'failed', attempts: 3, reason: 'Error: worker crashed (trial 22)' });
    expect(rows.find((r) => r.index === 14)!.reason).toBeNull();
    const long = rows.find((r) => r.index === 20)!.reason!;
    expect(long).toHaveLength(120);
    expect(long).toMatch(/^RangeError: x+…$/);
    expect((await failedTrials(db.prisma, busy.id, { limit: 2 })).map((r) => r.index)).toEqual([23, 22]);
  });
});

describe('validation accuracies beside the sweep metric', () => {
  it('gives a finished trial its result\'s, a running one its latest epoch\'s, a queued one none', async () => {
    const rows = new Map((await trialRows(db.prisma, busy.id)).map((r) => [r.index, r]));
    expect(rows.get(25)).toMatchObject({ valCharAcc: 0.8, valSeqAcc: 0.5 });
    // #0's latest epoch is GRU epoch 1 (val_seq_acc 0.3); #1's epochs share one timestamp.
    expect(rows.get(0)).toMatchObject({ valCharAcc: 0.05 + 0.3 / 2, valSeqAcc: 0.3 });
    expect(rows.get(1)).toMatchObject({ valCharAcc: 0.05 + 0.35 / 2, valSeqAcc: 0.35 });
    expect(rows.get(2)).toMatchObject({ valCharAcc: null, valSeqAcc: null });
    const q = await trialRows(db.prisma, quiet.id);
    expect(q.map((r) => [r.status, r.valCharAcc])).toEqual([['finished', null], ['queued', null]]);
  });

  it('shows the best trial\'s character accuracy next to the metric', async () => {
    const s = await sweepStatus(db.prisma, busy.id, NOW);
    expect(s.best).toMatchObject({ trialId: busy.ids[25], value: 0.5, valCharAcc: 0.8, valSeqAcc: 0.5 });
    expect(statusText(await sweepStatusView(db.prisma, busy.id, { now: NOW }))).toContain(`  best: #25 ${busy.ids[25]} val_seq_acc 0.5000 val_char_acc 0.8000\n`);
    // Nothing known, nothing shown.
    expect(statusText(await sweepStatusView(db.prisma, quiet.id, { now: NOW }))).toContain(`  best: #0 ${quiet.ids[0]} val_seq_acc 0.2000\n`);
  });
});

describe('statusText', () => {
  it('lists at most 10 running trials and 10 failures, says how many more, and counts stopped trials', async () => {
    const v = await sweepStatusView(db.prisma, busy.id, { limit: 10, now: NOW });
    expect(v.counts).toMatchObject({ running: 12, failed: 6, diverged: 6, stopped: 1, finished: 1 });
    const text = statusText(v);
    const lines = text.split('\n');
    expect(lines[1]).toBe('  queued 0  running 12  finished 1  failed 6  diverged 6  stopped 1');
    const running = lines.indexOf('  running:');
    expect(running).toBeGreaterThan(0);
    expect(lines[running + 1].split(/\s+/).filter(Boolean)).toEqual(['trial', 'worker', 'phase', 'epoch', 'val_seq_acc', 'best', 'heartbeat', 'params']);
    const row = (i: number) => lines.find((l) => l.startsWith(`    #${i} `))!.split(/\s{2,}/).filter(Boolean);
    expect(row(0)).toEqual(['#0', busy.ids[0].slice(0, 10), 'box-a:1', 'gru', '1/4', '0.3000', '0.3000', '4.0s ago', 'dropout=0.01']);
    expect(row(1)).toEqual(['#1', busy.ids[1].slice(0, 10), 'box-b:2', 'gru', '2/4', '0.3500', '0.4000', '2m00s ago (stale)', 'dropout=0.02']);
    expect(row(2)).toEqual(['#2', busy.ids[2].slice(0, 10), 'box-c:3', '-', '-', '-', '-', '-', 'dropout=0.03']);
    expect(lines.some((l) => l.startsWith('    #10 '))).toBe(false);
    expect(lines[running + 12]).toBe('    and 2 more');

    const failed = lines.findIndex((l) => l.startsWith('  failed and diverged'));
    expect(failed).toBeGreaterThan(running);
    expect(lines[failed + 1].split(/\s{2,}/).filter(Boolean)).toEqual(['#23', busy.ids[23].slice(0, 10), 'diverged', '1 attempt(s)', 'training diverged: loss NaN in gru epoch 23']);
    expect(text).toContain('(no reason stored)');
    expect(lines.some((l) => l.startsWith('    #13 '))).toBe(false);
    expect(lines[failed + 11]).toBe('    and 2 more');
    expect(text).not.toContain('hyperband'); // stopped trials are counted, not listed
  });

  it('cuts long reasons in the text, and has no lists when nothing runs or failed', async () => {
    const v = await sweepStatusView(db.prisma, busy.id, { now: NOW });
    const text = statusText(v);
    const line = text.split('\n').find((l) => l.startsWith('    #20 '))!;
    expect(line).toMatch(/RangeError: x+…$/);
    expect(line.split(/\s{2,}/).pop()).toHaveLength(72);

    const q = statusText(await sweepStatusView(db.prisma, quiet.id, { limit: 10, now: NOW }));
    expect(q.split('\n')[1]).toBe('  queued 1  running 0  finished 1  stopped 0');
    expect(q).not.toContain('running:');
    expect(q).not.toContain('failed and diverged');
  });
});

describe('sweep status (CLI)', () => {
  it('prints every running and failed trial in the JSON, keeping the existing fields', async () => {
    const r = await runCli(['status', 'busy', '--json'], env, { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const { sweeps } = JSON.parse(r.stdout);
    expect(sweeps).toHaveLength(1);
    const s = sweeps[0];
    for (const key of ['id', 'name', 'method', 'status', 'metric', 'swept', 'total', 'counts', 'best', 'throughput', 'etaSeconds']) expect(s, key).toHaveProperty(key);
    expect(s.best).toMatchObject({ trialId: busy.ids[25], value: 0.5, valCharAcc: 0.8, valSeqAcc: 0.5 });
    expect(s.runningTrials).toHaveLength(12);
    expect(s.runningTrials[0]).toMatchObject({ index: 0, phase: 'gru', epoch: 1, epochs: 4, metric: 0.3, worker: 'box-a:1' });
    expect(typeof s.runningTrials[0].heartbeatAgeSeconds).toBe('number');
    expect(s.failedTrials).toHaveLength(12);
    expect(s.failedTrials[0]).toMatchObject({ index: 23, status: 'diverged', reason: 'training diverged: loss NaN in gru epoch 23' });
  });

  it('prints the text with the lists, and exits 2 for an unknown sweep', async () => {
    const r = await runCli(['status', 'busy'], env, { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('  running:');
    expect(r.stdout).toMatch(/^ {4}#0 .* gru +1\/4 +0\.3000 /m);
    expect(r.stdout.match(/^ {4}and 2 more$/gm)).toHaveLength(2);
    const bad = await runCli(['status', 'nosuch'], env, { timeoutMs: 60_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no sweep named "nosuch"');
  });
});
