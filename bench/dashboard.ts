/**
 * The live dashboard at scale: the synthetic sweep of bench/report.ts (1,000 trials x 50
 * epochs x 9 keys) in a scratch Postgres database, `sweep dashboard`'s server started on it
 * (startDashboard, port 0), then:
 *
 *   - first view: the server's time to answer GET / (a poll, the page rendered), and headless
 *     Chromium's time from navigation start to the last chart drawn (median of --loads pages);
 *   - updates: with a page open, --updates rounds of one new epoch for every running trial
 *     (stored through the ingest path, the best metric through the heartbeat's column); the
 *     server's time per update (poll, queue, patch serialised), the page's time to apply it,
 *     and the time from the epoch stored to the page showing it.
 *
 *   npx tsx bench/dashboard.ts [--trials 1000] [--epochs 50] [--loads 3] [--updates 10]
 *
 * Goals: first view <= 1 s, each update <= 100 ms of server time. Results go to
 * bench/results/dashboard.md and .json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import { openDatabase } from '../src/infra/db.ts';
import { connectRedis } from '../src/infra/redis.ts';
import { startDashboard } from '../src/report/server.ts';
import { upsertMetrics } from '../src/track/ingest.ts';
import type { MetricRow } from '../src/track/metrics.ts';
import { Rng } from '../src/util/rng.ts';
import { openTrialQueue } from '../src/worker/queue.ts';
import { createTestDatabase } from '../support/pg.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';
import { epochValues, KEYS, seedSyntheticSweep } from './lib/synthetic-sweep.ts';

const { values: a } = parseArgs({
  options: {
    trials: { type: 'string', default: '1000' },
    epochs: { type: 'string', default: '50' },
    loads: { type: 'string', default: '3' },
    updates: { type: 'string', default: '10' },
  },
});
const TRIALS = Number(a.trials);
const EPOCHS = Number(a.epochs);
const LOADS = Number(a.loads);
const UPDATES = Number(a.updates);
const NAME = 'bench-dashboard';
const GOAL_FIRST_MS = 1000;
const GOAL_UPDATE_MS = 100;

const median = (xs: number[]) => (xs.length ? [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] : NaN);
const max = (xs: number[]) => Math.max(...xs);

/** Navigation start to the charts in view drawn (first view), and to the last chart drawn. */
async function loadTimes(page: Page): Promise<{ first: number; last: number }> {
  await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
  return page.evaluate(() => {
    const r = (window as unknown as { __report: { readyAt: number; firstViewAt: number } }).__report;
    return { first: r.firstViewAt, last: r.readyAt };
  });
}

async function main(): Promise<void> {
  const started = runStart();
  const db0 = await createTestDatabase('sweep_bench_dashboard');
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-dashboard-'));
  const db = await openDatabase({ env: { DATABASE_URL: db0.url, SWEEP_HOME: dir }, migrate: true });
  const redis = connectRedis({ env: {} });
  const queue = openTrialQueue(redis, { SWEEP_QUEUE_PREFIX: `bench-dashboard-${process.pid}` });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' });
  try {
    const seeded = await seedSyntheticSweep(db.prisma, { name: NAME, trials: TRIALS, epochs: EPOCHS });
    console.log(`seeded ${TRIALS} trials, ${seeded.points} metric points; ${seeded.running.length} running`);

    const s0 = performance.now();
    const dash = await startDashboard({ prisma: db.prisma, sweep: NAME, host: '127.0.0.1', port: 0, env: { SWEEP_HOME: dir }, queue });
    const startMs = performance.now() - s0;
    try {
      // First view: the server's answer to GET / (no page open: it polls first), then the browser.
      const serve: number[] = [];
      let bytes = 0;
      for (let i = 0; i < LOADS; i++) {
        await new Promise((r) => setTimeout(r, 1100));
        const t = performance.now();
        bytes = (await (await fetch(dash.url)).arrayBuffer()).byteLength;
        serve.push(performance.now() - t);
      }
      const loads: number[] = [];
      const lasts: number[] = [];
      for (let i = 0; i < LOADS; i++) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        await page.goto(dash.url);
        const l = await loadTimes(page);
        loads.push(l.first);
        lasts.push(l.last);
        await page.close();
      }
      console.log(`first view: server ${serve.map((x) => x.toFixed(0)).join(', ')} ms; page ${loads.map((x) => x.toFixed(0)).join(', ')} ms (last chart ${lasts.map((x) => x.toFixed(0)).join(', ')} ms)`);

      // Updates, with one page open.
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      await page.goto(dash.url);
      await loadTimes(page);
      const r = new Rng(11);
      const seen: number[] = [];
      const first = dash.updates.length;
      const ran = new Map(seeded.running.map((t) => [t.id, t.ran]));
      for (let u = 0; u < UPDATES; u++) {
        const version = await page.evaluate(() => Number(document.body.dataset.version));
        const rows: MetricRow[] = [];
        for (const t of seeded.running) {
          const i = ran.get(t.id)!;
          ran.set(t.id, i + 1);
          const values = epochValues(r, t.skill, t.lr, i);
          const phase = i < seeded.pretrain ? 'pretrain' : 'gru';
          const epoch = i < seeded.pretrain ? i : i - seeded.pretrain;
          for (const key of KEYS) rows.push({ trialId: t.id, phase, epoch, key, value: values[key] });
        }
        const t = performance.now();
        await upsertMetrics(db.prisma, rows);
        await page.waitForFunction((v) => Number(document.body.dataset.version) > v, version, { timeout: 10_000, polling: 20 });
        seen.push(performance.now() - t);
      }
      const server = dash.updates.slice(first).filter((x) => x.kind === 'patch');
      const applied = await page.evaluate(() => (window as unknown as { __report: { updates: Array<{ ms: number }> } }).__report.updates.map((x) => x.ms));
      await page.close();
      console.log(`updates: server ${server.map((x) => x.ms.toFixed(0)).join(', ')} ms; page ${applied.map((x) => x.toFixed(0)).join(', ')} ms; stored to shown ${seen.map((x) => x.toFixed(0)).join(', ')} ms`);

      const firstView = median(serve) + median(loads);
      const rows = [
        ['first view: server answers GET /', `${median(serve).toFixed(0)} ms (median of ${LOADS})`, '', ''],
        ['first view: navigation start to the charts in view drawn', `${median(loads).toFixed(0)} ms (median of ${LOADS})`, '', ''],
        ['first view: the two together', `${firstView.toFixed(0)} ms`, '<= 1 s', firstView <= GOAL_FIRST_MS ? 'met' : 'missed'],
        ['update: server time (poll, queue, patch), median / max', `${median(server.map((x) => x.ms)).toFixed(0)} / ${max(server.map((x) => x.ms)).toFixed(0)} ms`, '<= 100 ms', max(server.map((x) => x.ms)) <= GOAL_UPDATE_MS ? 'met' : 'missed'],
        ['update: patch size, median', `${(median(server.map((x) => x.bytes)) / 1024).toFixed(0)} KB`, '', ''],
        ['update: page applies it, median / max', `${median(applied).toFixed(0)} / ${max(applied).toFixed(0)} ms`, '', ''],
        ['update: epoch stored to page showing it, median / max', `${median(seen).toFixed(0)} / ${max(seen).toFixed(0)} ms`, '<= 2 s', max(seen) <= 2000 ? 'met' : 'missed'],
        ['navigation start to the last chart (below the first screen too)', `${median(lasts).toFixed(0)} ms (median of ${LOADS})`, '', ''],
        ['server start (first load of the sweep)', `${startMs.toFixed(0)} ms`, '', ''],
      ];
      const markdown = [
        `The synthetic sweep of bench/report.ts: ${TRIALS.toLocaleString('en-US')} trials x ${EPOCHS} epochs (${seeded.pretrain} pretrain + ${seeded.gru} GRU) x ${KEYS.length} keys, ${seeded.points.toLocaleString('en-US')} metric points, ${seeded.running.length} trials running. Page: ${(bytes / 1024 ** 2).toFixed(2)} MB.`,
        '',
        markdownTable(['measure', 'value', 'goal', ''], rows),
        '',
        `First view: GET / timed from this process (fetch, after more than one poll interval with no page open, so the server polls before answering), then ${LOADS} fresh headless Chromium pages (1200x900) from navigation start to the frame after the charts in view are drawn (the page draws those first, then the others in one more task). Updates: ${UPDATES} rounds, each one new epoch (${KEYS.length} keys) for each of the ${seeded.running.length} running trials, stored with upsertMetrics; the server polls once a second, so "stored to shown" includes up to a second of waiting for the next poll. Server times are wall time on a shared machine.`,
      ].join('\n');
      const files = writeResults({
        name: 'dashboard',
        title: `Sweep dashboard: first view and live updates, ${TRIALS.toLocaleString('en-US')} trials`,
        markdown,
        data: { trials: TRIALS, epochs: EPOCHS, points: seeded.points, running: seeded.running.length, page_bytes: bytes, start_ms: startMs, serve_ms: serve, load_ms: loads, last_chart_ms: lasts, update_server: server, update_page_ms: applied, stored_to_shown_ms: seen, goals: { first_view_ms: GOAL_FIRST_MS, update_ms: GOAL_UPDATE_MS } },
        ...started,
      });
      console.log(`wrote ${files.md} and ${files.json}`);
    } finally {
      await dash.close();
    }
  } finally {
    await browser.close();
    await queue.close();
    redis.disconnect();
    await db.close();
    await db0.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
