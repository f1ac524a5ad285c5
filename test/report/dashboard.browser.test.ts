/**
 * `sweep dashboard` end to end: a tiny real sweep (two trials, two epochs a phase) trained in a
 * throwaway database, the dashboard started by the CLI on a free port with a database password
 * and a W&B key in its environment, then opened in headless Chromium: every chart drawn with one
 * line per trial, the queue shown, and a new epoch stored through the ingest path showing on
 * the page within 2 s. Also: a taken port, methods other than GET, secrets, shutdown. Saves a
 * screenshot (docs/images/dashboard.png with SWEEP_UPDATE_SCREENSHOTS=1).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/infra/db.ts';
import { claimTrial, findSweep, recordMetrics, requeueTrials } from '../../src/track/store.ts';
import { freePort } from '../../support/ports.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';
import { ROOT, runCli, startCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SWEEP = 'tiny-dashboard';
const TRIALS = 2;
const DB_PASSWORD = 'db-password-marker-5c1e';
const WANDB_KEY = 'wandb-key-marker-fedcba9876543210fedcba98';

let t: TestEnv;
let db: Database;
let dashEnv: Record<string, string>;
let dash: ReturnType<typeof startCli>;
let url: string;
let browser: Browser;
let page: Page;
const foreign: string[] = [];

async function listening(run: ReturnType<typeof startCli>): Promise<{ url: string; port: number; sweep: string }> {
  for (let i = 0; i < 1200; i++) {
    const line = run.stdout().split('\n')[0];
    if (run.stdout().includes('\n')) return JSON.parse(line);
    if (run.child.exitCode !== null) throw new Error(`dashboard exited: ${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dashboard did not start: ${run.stderr()}`);
}

beforeAll(async () => {
  t = await testEnv('dashboard');
  const file = writeFile(t.dir, 'tiny.yaml', tinySweep({ name: SWEEP, dropout: [0.1, 0.3], pretrain: 2, gru: 2 }));
  const run = await runCli(['launch', file, '--workers', '2', '--json'], t.env, { timeoutMs: 400_000 });
  if (run.code !== 0) console.error(run.stderr);
  expect(run.code).toBe(0);
  db = await t.db();
  // The same database with a password (trust authentication ignores it) and a W&B key.
  const u = new URL(t.env.DATABASE_URL);
  u.password = DB_PASSWORD;
  dashEnv = { ...t.env, DATABASE_URL: u.toString(), WANDB_API_KEY: WANDB_KEY };
  dash = startCli(['dashboard', SWEEP, '--port', '0', '--json'], dashEnv, { timeoutMs: 600_000 });
  ({ url } = await listening(dash));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  if (dash && dash.child.exitCode === null) dash.child.kill('SIGKILL');
  await db?.close();
  await t?.cleanup();
});

describe('sweep dashboard', () => {
  it('listens on 127.0.0.1 and serves the page, read-only', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain('id="queue-workers"');
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await fetch(url, { method });
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
    }
    expect((await fetch(`${url}nothing-here`)).status).toBe(404);
  });

  it('no page, data or event contains the database password or the W&B key', async () => {
    const texts = [await (await fetch(url)).text(), await (await fetch(`${url}data.json`)).text()];
    // The first events of the stream (the queue, and a reload for an unknown version).
    const ctrl = new AbortController();
    const res = await fetch(`${url}events?since=0`, { signal: ctrl.signal });
    const reader = res.body!.getReader();
    let events = '';
    while (!events.includes('event: queue')) events += new TextDecoder().decode((await reader.read()).value);
    ctrl.abort();
    texts.push(events);
    expect(events).toMatch(/event: reload/);
    for (const text of texts) {
      expect(text).not.toContain(DB_PASSWORD);
      expect(text).not.toContain(WANDB_KEY);
    }
  });

  it('refuses a taken port with a clear error and exit code 2', async () => {
    const port = await freePort();
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    try {
      const r = await runCli(['dashboard', SWEEP, '--port', String(port)], t.env, { timeoutMs: 120_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*--port`));
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('an unknown sweep is bad input (exit 2)', async () => {
    const r = await runCli(['dashboard', 'no-such-sweep', '--port', '0'], t.env, { timeoutMs: 120_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no sweep named "no-such-sweep"/);
  });

  it('draws every chart with one line per trial, one row per trial, and the queue', async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const origin = new URL(url).origin;
    await page.route('**', (route) => {
      const u = route.request().url();
      if (!u.startsWith(origin) && !u.startsWith('data:')) foreign.push(u);
      return u.startsWith(origin) || u.startsWith('data:') ? route.continue() : route.abort();
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    await page.waitForSelector('#live-state:text-matches("^live")', { timeout: 10_000 });
    expect(errors).toEqual([]);
    const charts = await page.evaluate(() => {
      const w = window as unknown as { echarts: { getInstanceByDom(el: Element): { getOption(): any } | undefined } };
      return [...document.querySelectorAll('[data-chart]')].map((el) => {
        const c = w.echarts.getInstanceByDom(el);
        const series = (c?.getOption().series ?? []) as Array<{ id?: string; type: string; data?: unknown[] }>;
        return { kind: (el as HTMLElement).dataset.chart, rendered: !!c && !!el.querySelector('canvas'), series: series.map((s) => ({ id: s.id, type: s.type, n: s.data?.length ?? 0 })) };
      });
    });
    expect(charts.every((c) => c.rendered)).toBe(true);
    const byKind = (k: string) => charts.filter((c) => c.kind === k);
    expect(byKind('timeline')[0].series.reduce((n, s) => n + s.n, 0)).toBe(TRIALS);
    expect(byKind('parallel')[0].series[0]).toMatchObject({ type: 'parallel', n: TRIALS });
    expect(byKind('scatter')).toHaveLength(1);
    expect(byKind('scatter')[0].series[0].n).toBe(TRIALS);
    for (const c of byKind('curves')) {
      const lines = c.series.filter((s) => s.id?.startsWith('trial-')).length + c.series.filter((s) => s.id === 'others' || s.id === 'running').reduce((n, s) => n + s.n, 0);
      expect(lines).toBe(TRIALS);
    }
    expect(byKind('positions')[0].series).toHaveLength(TRIALS);
    expect(await page.locator('#trials tbody tr').count()).toBe(TRIALS);
    expect(await page.locator('#queue-jobs [data-key="waiting"] b').textContent()).toBe('0');
    expect(await page.locator('#queue-none').isVisible()).toBe(true);
  });

  it('shows a trial starting, its worker, and a new epoch within 2 s of it being stored', async () => {
    const sweep = (await findSweep(db.prisma, SWEEP))!;
    const first = await db.prisma.trial.findFirstOrThrow({ where: { sweepId: sweep.id, index: 0 }, select: { id: true } });
    // As `launch --retry` and a worker do: back to queued, then claimed by a worker.
    await requeueTrials(db.prisma, sweep.id, ['finished']);
    const claim = await claimTrial(db.prisma, first.id, 'test-box');
    expect(claim.outcome).toBe('claimed');
    const row = page.locator(`#trials tbody tr[data-id="${first.id}"]`);
    await page.waitForFunction((id) => document.querySelector(`#trials tbody tr[data-id="${id}"]`)?.getAttribute('data-status') === 'running', first.id, { timeout: 10_000 });
    await page.waitForSelector('#queue-workers tbody tr:has-text("test-box")', { timeout: 10_000 });
    expect(await row.locator('td').nth(4).textContent()).toBe('2+2');

    // A third GRU epoch (epoch 2 from 0), as the worker stores it.
    const rows = ['val_seq_acc', 'val_loss', 'val_char_acc'].map((key, i) => ({ trialId: first.id, phase: 'gru', epoch: 2, key, value: 0.3 + i * 0.1 }));
    const stored = Date.now();
    expect(await recordMetrics(db.prisma, rows, 'test-box')).toBe(3);
    await page.waitForFunction((id) => document.querySelector(`#trials tbody tr[data-id="${id}"] td:nth-child(5)`)?.textContent === '2+3', first.id, { timeout: 2000, polling: 50 });
    const shownAfter = Date.now() - stored;
    expect(shownAfter).toBeLessThanOrEqual(2000);
    // Its curve has the new point (with two trials, each is among the best five: a line of its own).
    const points = await page.evaluate(() => {
      const w = window as unknown as { echarts: { getInstanceByDom(el: Element): { getOption(): any } } };
      const s = (w.echarts.getInstanceByDom(document.getElementById('chart-acc')!).getOption().series as Array<{ id: string; data: unknown[] }>).find((x) => x.id === 'trial-0')!;
      return s.data.length;
    });
    expect(points).toBe(5);
  });

  it('made no request elsewhere and saves a screenshot (for the README with SWEEP_UPDATE_SCREENSHOTS=1)', async () => {
    expect(foreign).toEqual([]);
    const text = await page.content();
    expect(text).not.toContain(DB_PASSWORD);
    expect(text).not.toContain(WANDB_KEY);
    const png = process.env.SWEEP_UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'images', 'dashboard.png') : path.join(ROOT, 'bench', 'out', 'screenshots', 'dashboard.png');
    mkdirSync(path.dirname(png), { recursive: true });
    await page.screenshot({ path: png, fullPage: false });
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  });

  it('stops on SIGTERM, exit code 0', async () => {
    await page.close();
    dash.child.kill('SIGTERM');
    const r = await dash.result;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
