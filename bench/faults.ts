/**
 * Fault drills: a small sweep run by worker processes while something breaks, then counted.
 *
 *   kill      kill -9 of a worker in the middle of a trial; a replacement worker starts
 *   redis     the queue's Redis (append-only) stopped and started again mid-sweep
 *   postgres  the Postgres server stopped for --pg-down seconds mid-sweep, then started
 *   wandb     the W&B server answering 503 for --wandb-down seconds mid-sweep
 *
 *   npx tsx bench/faults.ts [--drills kill,redis,postgres,wandb] [--trials 4] [--workers 2]
 *                           [--pg-down 30] [--wandb-down 60]
 *
 * Every drill runs on servers of its own, so the ones other work uses are never touched: a
 * private Postgres cluster (initdb into bench/out/faults/pg, run as the `postgres` user when
 * this runs as root), a private redis-server with appendonly, and the fake W&B server the
 * tests use (support/fake-wandb.ts: no real W&B is reachable from here). Workers are
 * `sweep worker --exit-when-idle` processes with short heartbeat and lock timings.
 *
 * A drill passes when every trial finished, the metric points stored equal those in the
 * trials' history.json files (none missing, none extra: duplicates cannot exist under the
 * (trial, phase, epoch, key) key, so "extra" would mean a point no epoch produced), and
 * W&B received each history line at exactly one offset with the values of the final run. The
 * table goes to bench/results/faults.md and .json, after every drill (a run stopped midway
 * keeps the drills it finished).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openDatabase, type Database } from '../src/infra/db.ts';
import { launchSweep } from '../src/scheduler/launch.ts';
import { trialDir } from '../src/infra/artifacts.ts';
import { epochRows } from '../src/track/metrics.ts';
import type { EpochMetrics } from '../src/train/trainer.ts';
import { tinySweep } from '../support/tiny-sweep.ts';
import { waitFor } from '../support/wait.ts';
import { freePort } from '../support/ports.ts';
import { PrivatePostgres, PrivateRedis } from '../support/chaos/servers.ts';
import { startFakeWandb, type FakeWandb } from '../support/fake-wandb.ts';
import { runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    drills: { type: 'string', default: 'kill,redis,postgres,wandb' },
    trials: { type: 'string', default: '4' },
    workers: { type: 'string', default: '2' },
    'pg-down': { type: 'string', default: '30' },
    'wandb-down': { type: 'string', default: '60' },
    out: { type: 'string', default: 'bench/out/faults' },
  },
});
const ROOT = path.resolve(new URL('..', import.meta.url).pathname);
const BIN = path.join(ROOT, 'bin', 'sweep.mjs');
const OUT = path.resolve(a.out!);
const drills = a.drills!.split(',').map((s) => s.trim()).filter(Boolean);
const nTrials = Number(a.trials);
const nWorkers = Number(a.workers);
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------
// One drill

interface DrillResult {
  drill: string;
  trials: number;
  finished: number;
  other: string;
  attempts: number;
  pointsExpected: number;
  pointsStored: number;
  missing: number;
  extra: number;
  wandbExpected: number;
  wandbReceived: number;
  wandbWrong: number;
  /** Outbox rows the workers had not delivered when they exited, sent by `sweep wandb sync`. */
  wandbBySync: number;
  seconds: number;
}

function startWorker(env: Record<string, string>, label: string, logs: string[]): { proc: ChildProcess; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [BIN, 'worker', '--exit-when-idle'], { cwd: ROOT, env: { ...process.env, CI: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.on('data', (d) => logs.push(...String(d).split('\n').filter(Boolean).map((l) => `[${label}] ${l}`)));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, exited };
}

async function runDrill(drill: string, pgServer: PrivatePostgres, wandb: FakeWandb): Promise<DrillResult> {
  const t0 = Date.now();
  const dir = path.join(OUT, drill);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const dbName = `drill_${drill}_${process.pid}`;
  const admin = new pg.Client({ connectionString: pgServer.url });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const dbUrl = new URL(pgServer.url);
  dbUrl.pathname = `/${dbName}`;
  const redis = new PrivateRedis(path.join(dir, 'redis'), await freePort());
  await redis.start();
  const env: Record<string, string> = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: redis.url,
    SWEEP_HOME: path.join(dir, 'home'),
    SWEEP_HEARTBEAT_MS: '1000',
    SWEEP_STALE_MS: '5000',
    SWEEP_LOCK_MS: '4000',
    WANDB_MODE: 'online',
    WANDB_API_KEY: `drill-key-${'x'.repeat(30)}`,
    WANDB_BASE_URL: wandb.url,
    WANDB_PROJECT: `drill-${drill}`,
    WANDB_ENTITY: 'drills',
  };
  const file = path.join(dir, 'sweep.yaml');
  const dropouts = Array.from({ length: nTrials }, (_, i) => +(0.05 * (i + 1)).toFixed(2));
  writeFileSync(file, tinySweep({ name: `drill-${drill}`, dropout: dropouts, pretrain: 4, gru: 2, count: 64 }));
  const launched = await launchSweep({ file, env });
  let db: Database | null = await openDatabase({ env });
  const trialIds = (await db.prisma.trial.findMany({ where: { sweepId: launched.sweep.id }, select: { id: true } })).map((r) => r.id);
  log(`${drill}: ${trialIds.length} trials, ${nWorkers} workers`);

  const logs: string[] = [];
  const workers = Array.from({ length: nWorkers }, (_, i) => startWorker(env, `w${i}`, logs));
  const firstEpoch = async () => (await db!.prisma.metricPoint.count({ where: { trialId: { in: trialIds } } })) > 0;
  await waitFor(firstEpoch, 'the first stored epoch', 300_000);

  if (drill === 'kill') {
    log('kill: SIGKILL to worker 0 mid-trial; a replacement starts');
    workers[0].proc.kill('SIGKILL');
    await workers[0].exited;
    workers.push(startWorker(env, 'w-replacement', logs));
  } else if (drill === 'redis') {
    log('redis: stopping the queue\'s Redis');
    await redis.stop();
    await sleep(3_000);
    await redis.start();
    log('redis: started again');
  } else if (drill === 'postgres') {
    await db.close();
    db = null;
    log(`postgres: stopping the server for ${a['pg-down']} s`);
    pgServer.stop();
    await sleep(Number(a['pg-down']) * 1000);
    pgServer.start();
    log('postgres: started again');
    db = await openDatabase({ env });
  } else if (drill === 'wandb') {
    log(`wandb: the W&B server answers 503 for ${a['wandb-down']} s`);
    wandb.setMode('503');
    await sleep(Number(a['wandb-down']) * 1000);
    wandb.setMode('ok');
    log('wandb: answering again');
  }

  const codes = await Promise.all(workers.map((w) => w.exited));
  log(`${drill}: workers exited with ${codes.join(', ')}`);
  // Whatever the workers' delivery loops left behind is delivered here, as a user would.
  // (Not spawnSync: the fake W&B server lives in this process and must keep answering.)
  const sync = spawn(process.execPath, [BIN, 'wandb', 'sync', '--json'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let syncErr = '';
  let syncOut = '';
  sync.stderr!.on('data', (d) => (syncErr += String(d)));
  sync.stdout!.on('data', (d) => (syncOut += String(d)));
  const syncCode = await new Promise<number | null>((r) => sync.on('exit', r));
  if (syncCode !== 0) log(`wandb sync exited ${syncCode}: ${syncErr.trim().split('\n').at(-1)}`);
  let bySync = -1;
  try {
    bySync = (JSON.parse(syncOut) as { delivered: number }).delivered;
  } catch {
    /* reported as - */
  }

  // Count.
  const trials = await db!.prisma.trial.findMany({ where: { sweepId: launched.sweep.id }, select: { id: true, status: true, attempts: true } });
  const stored = await db!.prisma.metricPoint.findMany({ where: { trialId: { in: trialIds } }, select: { trialId: true, phase: true, epoch: true, key: true, value: true } });
  const storedKeys = new Map(stored.map((p) => [`${p.trialId}/${p.phase}/${p.epoch}/${p.key}`, p.value]));
  let expected = 0;
  let missing = 0;
  let wandbExpected = 0;
  let wandbReceived = 0;
  let wandbWrong = 0;
  const expectedKeys = new Set<string>();
  for (const id of trialIds) {
    const file = path.join(trialDir(id, env), 'history.json');
    const history = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as EpochMetrics[]) : [];
    // The points the worker stores for these epochs (epochRows), with the values on disk.
    for (const r of history.flatMap((m) => epochRows(id, m))) {
      const key = `${id}/${r.phase}/${r.epoch}/${r.key}`;
      expectedKeys.add(key);
      expected++;
      if (storedKeys.get(key) !== r.value) missing++;
    }
    // W&B: one history line per epoch, at offsets 0..n-1, each with the epoch's final values.
    const lines = wandb.history('drills', `drill-${drill}`, id.slice(0, 16));
    wandbExpected += history.length;
    wandbReceived += lines.filter((l) => l !== undefined).length;
    history.forEach((m, i) => {
      const line = lines[i] as Record<string, unknown> | undefined;
      if (!line || line.val_loss !== m.val_loss || line.phase !== m.phase) {
        wandbWrong++;
        log(`${drill}: trial ${id.slice(0, 10)} W&B line ${i}: ${line ? `${String(line.phase)} ${String(line.epoch)} val_loss ${String(line.val_loss)}` : 'missing'}, history has ${m.phase} ${m.epoch} val_loss ${m.val_loss}`);
      }
    });
    if (lines.length > history.length) {
      wandbWrong += lines.length - history.length;
      log(`${drill}: trial ${id.slice(0, 10)} W&B has ${lines.length} lines, history ${history.length}`);
    }
  }
  const extra = [...storedKeys.keys()].filter((k) => !expectedKeys.has(k)).length;
  const counts: Record<string, number> = {};
  for (const t of trials) counts[t.status] = (counts[t.status] ?? 0) + 1;
  writeFileSync(path.join(dir, 'workers.log'), `${logs.join('\n')}\n`);
  await db!.close();
  await redis.stop();
  return {
    drill,
    trials: trials.length,
    finished: counts.finished ?? 0,
    other: Object.entries(counts).filter(([k]) => k !== 'finished').map(([k, n]) => `${n} ${k}`).join(', ') || '-',
    attempts: trials.reduce((s, t) => s + t.attempts, 0),
    pointsExpected: expected,
    pointsStored: stored.length,
    missing,
    extra,
    wandbExpected,
    wandbReceived,
    wandbWrong,
    wandbBySync: bySync,
    seconds: (Date.now() - t0) / 1000,
  };
}

// ------------------------------------------------------------------------------------------

const started = runStart();
mkdirSync(OUT, { recursive: true });
const pgServer = new PrivatePostgres(path.join(OUT, 'pg'), await freePort());
pgServer.init();
pgServer.start();
const wandb = await startFakeWandb();
const machine = `${os.cpus()[0].model}, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
const results: DrillResult[] = [];
const title = `# fault drills: ${nTrials} trials (width 0.0625, 4 pretrain + 2 GRU epochs), ${nWorkers} workers; ${machine}`;
const table = () => [
  '| drill | trials finished | other states | attempts | metric points expected / stored | missing | extra | W&B lines expected / received | W&B wrong or duplicated | W&B rows left to sync | seconds |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.drill} | ${r.finished}/${r.trials} | ${r.other} | ${r.attempts} | ${r.pointsExpected} / ${r.pointsStored} | ${r.missing} | ${r.extra} | ${r.wandbExpected} / ${r.wandbReceived} | ${r.wandbWrong} | ${r.wandbBySync < 0 ? '-' : r.wandbBySync} | ${r.seconds.toFixed(0)} |`,
  ),
];
const passed = (r: DrillResult) => r.finished === r.trials && r.missing === 0 && r.extra === 0 && r.wandbWrong === 0 && r.wandbReceived === r.wandbExpected;
const verdict = () => (results.every(passed) ? 'every drill: all trials finished, zero points lost or duplicated' : 'SOME DRILL FAILED (see the table and bench/out/faults/<drill>/workers.log)');
const page = () =>
  writeResults({
    name: 'faults',
    title: 'Fault drills: a small sweep while something breaks',
    ...started,
    ...(results.length < drills.length ? { status: `partial: ${results.length} of ${drills.length} drills (${drills.join(', ')}) done` } : {}),
    markdown: [
      `${nTrials} trials (width 0.0625, 4 pretrain + 2 GRU epochs) run by ${nWorkers} \`sweep worker --exit-when-idle\` processes on a private Postgres cluster, a private redis-server (appendonly) and the fake W&B server. ` +
        `kill: kill -9 of a worker mid-trial, a replacement starts; redis: Redis stopped and started again; postgres: Postgres stopped for ${a['pg-down']} s; wandb: W&B answers 503 for ${a['wandb-down']} s. ` +
        'A drill passes when every trial finished, the stored metric points equal those in the trials\' history.json files, and W&B received each history line at exactly one offset with the final values.',
      '',
      ...table(),
      '',
      verdict(),
    ].join('\n'),
    data: { trials: nTrials, workers: nWorkers, pgDownS: Number(a['pg-down']), wandbDownS: Number(a['wandb-down']), drills, results, passed: results.every(passed) },
  });
try {
  for (const d of drills) {
    if (!['kill', 'redis', 'postgres', 'wandb'].includes(d)) throw new Error(`--drills: unknown drill ${JSON.stringify(d)}; expected kill, redis, postgres, wandb`);
    results.push(await runDrill(d, pgServer, wandb));
    log(`${d}: ${JSON.stringify(results.at(-1))}`);
    page();
  }
} finally {
  await wandb.close();
  try {
    pgServer.stop();
  } catch {
    /* already stopped */
  }
}
console.log(title);
for (const line of table()) console.log(line);
console.log(`# ${verdict()}`);
process.exitCode = results.every(passed) ? 0 : 1;
