/**
 * The sweep report at scale: a synthetic sweep of 1,000 trials x 50 epochs (10 pretrain + 40
 * GRU) x 9 keys (450,000 metric points), stored validation predictions of the 5 best (2,000
 * examples each) and an ensemble, inserted straight into a scratch Postgres database; then
 * `sweep report`'s work (writeSweepReport) timed, and the page opened in headless Chromium.
 *
 *   npx tsx bench/report.ts [--trials 1000] [--epochs 50] [--loads 3] [--out FILE]
 *
 * Goals: the page at most 10 MB, and at most 2 s from navigation start to the last chart drawn
 * (the page's own mark after its last setOption and one animation frame; median of --loads
 * fresh pages). Uses a database of its own on the Postgres at SWEEP_TEST_PG_URL (default
 * postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end. Chromium: CHROMIUM_PATH
 * or /usr/bin/chromium. Results go to bench/results/report.md and .json; --out keeps the page.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { openDatabase, type PrismaClient } from '../src/infra/db.ts';
import { writeSweepReport } from '../src/report/write.ts';
import { createTestDatabase } from '../support/pg.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';
import { KEYS, seedSyntheticSweep, VAL, WORKERS } from './lib/synthetic-sweep.ts';

const { values: a } = parseArgs({
  options: {
    trials: { type: 'string', default: '1000' },
    epochs: { type: 'string', default: '50' },
    loads: { type: 'string', default: '3' },
    out: { type: 'string' },
  },
});
const TRIALS = Number(a.trials);
const EPOCHS = Number(a.epochs);
const LOADS = Number(a.loads);
const NAME = 'bench-report';
const GOAL_BYTES = 10 * 1024 ** 2;
const GOAL_MS = 2000;

async function main(): Promise<void> {
  const started = runStart();
  const db0 = await createTestDatabase('sweep_bench_report');
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-report-'));
  const db = await openDatabase({ env: { DATABASE_URL: db0.url, SWEEP_HOME: dir }, migrate: true });
  try {
    const s0 = performance.now();
    const { points, pretrain: PRETRAIN, gru: GRU } = await seedSyntheticSweep(db.prisma, { name: NAME, trials: TRIALS, epochs: EPOCHS });
    const seedSeconds = (performance.now() - s0) / 1000;
    console.log(`seeded ${TRIALS} trials, ${points} metric points in ${seedSeconds.toFixed(1)} s`);

    const out = path.join(dir, 'report.html');
    const w0 = performance.now();
    const c0 = process.cpuUsage();
    const written = await writeSweepReport(db.prisma, NAME, { out, env: { SWEEP_HOME: dir } });
    const cpu = process.cpuUsage(c0);
    const writeSeconds = (performance.now() - w0) / 1000;
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    if (a.out) copyFileSync(out, a.out);
    console.log(`report: ${(written.bytes / 1024 ** 2).toFixed(2)} MB in ${writeSeconds.toFixed(2)} s (${cpuSeconds.toFixed(2)} CPU s)`);

    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' });
    const loads: Array<{ readyMs: number; firstMs: number; drawMs: number; taskMs: number; charts: Record<string, number> }> = [];
    try {
      for (let i = 0; i < LOADS; i++) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
        // The renderer's main-thread task time (CDP Performance.TaskDuration) beside the wall
        // clock: how much of the load was the page's own work rather than waiting to start.
        const cdp = await page.context().newCDPSession(page);
        await cdp.send('Performance.enable');
        const busy = async () => (await cdp.send('Performance.getMetrics')).metrics.find((x) => x.name === 'TaskDuration')?.value ?? 0;
        const before = await busy();
        await page.goto(`file://${out}`);
        await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
        const taskMs = ((await busy()) - before) * 1000;
        const m = await page.evaluate(() => {
          const r = (window as unknown as { __report: { readyAt: number; firstViewAt: number; drawMs: number; timings: Record<string, number> } }).__report;
          return { readyMs: r.readyAt, firstMs: r.firstViewAt, drawMs: r.drawMs, charts: r.timings };
        });
        loads.push({ ...m, taskMs });
        console.log(`load ${i + 1}: last chart drawn ${m.readyMs.toFixed(0)} ms after navigation start (page script ${m.drawMs.toFixed(0)} ms, main-thread tasks ${taskMs.toFixed(0)} ms)`);
        await page.close();
      }
    } finally {
      await browser.close();
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const readyMs = median(loads.map((l) => l.readyMs));
    const drawMs = median(loads.map((l) => l.drawMs));
    const firstMs = median(loads.map((l) => l.firstMs));
    const taskMs = median(loads.map((l) => l.taskMs));
    const rows = [
      ['page size', `${(written.bytes / 1024 ** 2).toFixed(2)} MB`, '<= 10 MB', written.bytes <= GOAL_BYTES ? 'met' : 'missed'],
      ['navigation start to last chart (median)', `${(readyMs / 1000).toFixed(2)} s`, '<= 2 s', readyMs <= GOAL_MS ? 'met' : 'missed'],
      ['of which the page script (start to last chart drawn)', `${(drawMs / 1000).toFixed(2)} s`, '', ''],
      ['navigation start to the charts in view drawn (1200x900; median)', `${(firstMs / 1000).toFixed(2)} s`, '', ''],
      ['renderer main-thread task time until then (median)', `${(taskMs / 1000).toFixed(2)} s`, '', ''],
      ['writing the report (queries, shaping, HTML)', `${writeSeconds.toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU`, '', ''],
    ];
    const markdown = [
      `A synthetic sweep of ${TRIALS.toLocaleString('en-US')} trials x ${EPOCHS} epochs (${PRETRAIN} pretrain + ${GRU} GRU) x ${KEYS.length} keys: ${points.toLocaleString('en-US')} metric points, about 85% finished, 8% stopped, 4% failed, 2% running, 1% queued, on ${WORKERS} workers; the 5 best store ${VAL.toLocaleString('en-US')} validation predictions each; one ensemble. The validation images are not on disk (the page says so).`,
      '',
      markdownTable(['measure', 'value', 'goal', ''], rows),
      '',
      `Load: headless Chromium (${LOADS} fresh pages), from navigation start to the page's mark after its last chart's setOption and one animation frame. Every load: ${loads.map((l) => `${(l.readyMs / 1000).toFixed(2)} s`).join(', ')}. The main thread's task time (CDP TaskDuration, navigation to the mark) is the time the renderer spent running the page's tasks (parsing, the chart library, the page script, layout); it is wall time too, so a loaded machine inflates it. Per chart (ms, first load): ${Object.entries(loads[0]?.charts ?? {}).map(([k, v]) => `${k.replace('chart-', '')} ${v}`).join(', ')}.`,
    ].join('\n');
    const files = writeResults({
      name: 'report',
      title: 'Sweep report: page size and time to draw, 1,000 trials',
      markdown,
      data: { trials: TRIALS, epochs: EPOCHS, keys: KEYS.length, points, bytes: written.bytes, write_s: writeSeconds, write_cpu_s: cpuSeconds, ready_ms: readyMs, first_view_ms: firstMs, draw_ms: drawMs, task_ms: taskMs, loads, goals: { bytes: GOAL_BYTES, ready_ms: GOAL_MS } },
      ...started,
    });
    console.log(`wrote ${files.md} and ${files.json}`);
  } finally {
    await db.close();
    await db0.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
