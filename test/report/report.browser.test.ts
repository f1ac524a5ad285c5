/**
 * `sweep report` end to end: a tiny real sweep (two trials, two epochs a phase) and an
 * ensemble in a throwaway database, the report written by the CLI, then opened in headless
 * Chromium from disk with every network request refused. Also saves a screenshot
 * (docs/images/report.png with SWEEP_UPDATE_SCREENSHOTS=1).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinySweep } from '../../support/tiny-sweep.ts';
import { ROOT, runCli, testEnv, writeFile, type TestEnv } from '../e2e/helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SWEEP = 'tiny-report';
const TRIALS = 2;
/** Marker strings: neither may appear in the page. */
const DB_PASSWORD = 'db-password-marker-7f3a';
const WANDB_KEY = 'wandb-key-marker-0123456789abcdef0123456789';

let t: TestEnv;
let out: string;
let reportEnv: Record<string, string>;
let browser: Browser;
let page: Page;
const refused: string[] = [];

beforeAll(async () => {
  t = await testEnv('report');
  const file = writeFile(t.dir, 'tiny.yaml', tinySweep({ name: SWEEP, dropout: [0.1, 0.3], pretrain: 2, gru: 2 }));
  const run = await runCli(['launch', file, '--workers', '2', '--json'], t.env, { timeoutMs: 400_000 });
  if (run.code !== 0) console.error(run.stderr);
  expect(run.code).toBe(0);
  const ens = await runCli(['ensemble', 'build', SWEEP, '--top-k', '2', '--json'], t.env);
  if (ens.code !== 0) console.error(ens.stderr);
  expect(ens.code).toBe(0);
  // The same database with a password (trust authentication ignores it) and a W&B key: the
  // report must show neither.
  const url = new URL(t.env.DATABASE_URL);
  url.password = DB_PASSWORD;
  reportEnv = { ...t.env, DATABASE_URL: url.toString(), WANDB_API_KEY: WANDB_KEY };
  out = path.join(t.dir, 'report.html');
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await t?.cleanup();
});

describe('sweep report', () => {
  it('writes one HTML file and says so as JSON', async () => {
    const r = await runCli(['report', SWEEP, '--out', out, '--json'], reportEnv);
    if (r.code !== 0) console.error(r.stderr);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { out: string; bytes: number; trials: number };
    expect(json).toEqual({ out, bytes: readFileSync(out).byteLength, trials: TRIALS });
    const html = readFileSync(out, 'utf8');
    expect(html).not.toContain(DB_PASSWORD);
    expect(html).not.toContain(WANDB_KEY);
    // Scripts and styles are inlined (the page itself is checked for requests below).
    expect(html).not.toMatch(/<link\b|<script\b[^>]*\bsrc=/i);
  });

  it('an unknown sweep is bad input (exit 2) and writes nothing', async () => {
    const other = path.join(t.dir, 'none.html');
    const r = await runCli(['report', 'no-such-sweep', '--out', other], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no sweep named "no-such-sweep"/);
    expect(existsSync(other)).toBe(false);
  });

  it('opens with no network and draws every chart, one line per trial', async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.route('**', (route) => {
      const u = route.request().url();
      if (u.startsWith('data:') || u.startsWith('file:')) return route.continue();
      refused.push(u);
      return route.abort();
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${out}`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    expect(errors).toEqual([]);

    const charts = await page.evaluate(() => {
      const w = window as unknown as { echarts: { getInstanceByDom(el: Element): { getOption(): any } | undefined } };
      return [...document.querySelectorAll('[data-chart]')].map((el) => {
        const c = w.echarts.getInstanceByDom(el);
        const series = (c?.getOption().series ?? []) as Array<{ id?: string; type: string; data?: unknown[] }>;
        return { id: el.id, kind: (el as HTMLElement).dataset.chart, rendered: !!c && !!el.querySelector('canvas'), series: series.map((s) => ({ id: s.id, type: s.type, n: s.data?.length ?? 0 })) };
      });
    });
    expect(charts.every((c) => c.rendered)).toBe(true);
    const byKind = (k: string) => charts.filter((c) => c.kind === k);
    // One swept parameter (dropout): one scatter.
    expect(byKind('timeline')[0].series.reduce((n, s) => n + s.n, 0)).toBe(TRIALS);
    expect(byKind('parallel')[0].series[0]).toMatchObject({ type: 'parallel', n: TRIALS });
    expect(byKind('scatter')).toHaveLength(1);
    expect(byKind('scatter')[0].series[0].n).toBe(TRIALS);
    const curves = byKind('curves');
    expect(curves).toHaveLength(2);
    for (const c of curves) {
      const lines = c.series.filter((s) => s.id?.startsWith('trial-')).length + c.series.filter((s) => s.id === 'others' || s.id === 'running').reduce((n, s) => n + s.n, 0);
      expect(lines).toBe(TRIALS);
    }
    expect(byKind('positions')[0].series).toHaveLength(TRIALS);
  });

  it('lists one table row per trial, sorts and filters them', async () => {
    expect(await page.locator('#trials tbody tr').count()).toBe(TRIALS);
    await page.locator('#trials th', { hasText: '#' }).first().click();
    expect(await page.locator('#trials tbody tr td:first-child').allTextContents()).toEqual(['0', '1']);
    await page.locator('#trials th', { hasText: '#' }).first().click();
    expect(await page.locator('#trials tbody tr td:first-child').allTextContents()).toEqual(['1', '0']);
    await page.fill('#filter', 'no row has this text');
    expect(await page.locator('#trials tbody tr').count()).toBe(0);
    await page.fill('#filter', '');
    expect(await page.locator('#trials tbody tr').count()).toBe(TRIALS);
  });

  it('shows the ensemble and validation CAPTCHAs read by the best trial', async () => {
    expect(await page.locator('#ensembles table tr').count()).toBe(2);
    const captchas = page.locator('.captcha');
    expect(await captchas.count()).toBeGreaterThan(0);
    expect(await page.locator('.captcha img').first().getAttribute('src')).toMatch(/^data:image\/png;base64,/);
  });

  it('made no network request and shows no secret', async () => {
    expect(refused).toEqual([]);
    const text = await page.content();
    expect(text).not.toContain(DB_PASSWORD);
    expect(text).not.toContain(WANDB_KEY);
  });

  it('saves a screenshot (for the README with SWEEP_UPDATE_SCREENSHOTS=1)', async () => {
    // Into the ignored bench/out/ unless asked: a test run leaves the tree as it was.
    const png = process.env.SWEEP_UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'images', 'report.png') : path.join(ROOT, 'bench', 'out', 'screenshots', 'report.png');
    mkdirSync(path.dirname(png), { recursive: true });
    await page.screenshot({ path: png, fullPage: true });
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  });
});
