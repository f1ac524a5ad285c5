/**
 * Many workers against one Redis and one Postgres: N worker processes (default 50) drain a
 * sweep of tiny trials run by the NO-OP TRAINER STAND-IN (the `noop` TrainerKind: one epoch of
 * made-up metrics, so only the worker's own path runs), then the same sweep with one worker.
 *
 * Counted at the end: trials finished, trials run to a stored result more than once (from
 * what each worker reports it ran), trials claimed more than once (`attempts` > 1), trials
 * lost (not finished), metric
 * points per trial (exactly one epoch each). Sampled every 100 ms while the workers run: the
 * Postgres connections to the bench's database (pg_stat_activity), their high-water mark
 * against N x the per-process pool bound. Dispatch cost per trial: CPU of the worker processes
 * from the end of their first trial (which also starts the trial process) to their last stored
 * result, divided by the trials in between, against the single worker's figure (goal: within 2x); the
 * median pick-to-stored wall time is shown too (on 2 cores, 50 processes queue for the CPU).
 *
 *   npx tsx bench/workers.ts [--workers 50] [--trials 1000] [--single-trials 200]
 *
 * A database of its own on TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
 * and a queue prefix of its own on REDIS_URL; both are removed at the end. Results go to
 * bench/results/workers.md and .json.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DB_POOL_MAX } from '../src/infra/db.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    workers: { type: 'string', default: '50' },
    trials: { type: 'string', default: '1000' },
    'single-trials': { type: 'string', default: '200' },
    child: { type: 'boolean', default: false },
  },
});

interface ChildReport {
  /** Trials after the first (which starts the trial process). */
  trials: number;
  /** ms, pick to stored, per finished trial after the first. */
  latencies: number[];
  /** CPU seconds of this worker process from its first pick to its last stored result. */
  busyCpuS: number;
  outcomes: Record<string, number>;
  /** Every trial this worker ran to a stored result. */
  finishedIds: string[];
}

if (a.child) {
  // One worker process: drain the queue, then print what it did as one JSON line.
  const { startWorker } = await import('../src/worker/worker.ts');
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const finishedIds: string[] = [];
  // The first trial also starts the kept trial process: it, and the CPU before its end, are
  // start-up, left out; the rest is the worker's per-trial path.
  let firstCpu: NodeJS.CpuUsage | undefined;
  /** CPU from the end of the first trial to the end of the last. */
  let busyCpu: NodeJS.CpuUsage | undefined;
  let counted = 0;
  const worker = await startWorker({
    trainer: 'noop',
    exitWhenIdle: true,
    idlePollMs: 500,
    log: () => {},
    onTrial: (t) => {
      outcomes[t.outcome] = (outcomes[t.outcome] ?? 0) + 1;
      if (t.outcome === 'finished') finishedIds.push(t.trialId);
      if (!firstCpu) {
        firstCpu = process.cpuUsage();
        return;
      }
      if (t.outcome === 'finished') latencies.push(t.storedAt - t.pickedAt);
      counted++;
      busyCpu = process.cpuUsage(firstCpu);
    },
  });
  await worker.done;
  const busy = busyCpu ? (busyCpu.user + busyCpu.system) / 1e6 : 0;
  const report: ChildReport = { trials: counted, latencies, busyCpuS: busy, outcomes, finishedIds };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const started = runStart();

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};

interface RoundResult {
  workers: number;
  trials: number;
  finished: number;
  ranTwice: number;
  claimedTwice: number;
  lost: number;
  pointsPerTrial: { min: number; max: number };
  connectionsHigh: number;
  cpuPerTrialMs: number;
  latencyMedianMs: number;
  latencyP90Ms: number;
  wallS: number;
  childOutcomes: Record<string, number>;
}

/** Trials run to a stored result more than once, over every worker. */
function duplicates(ids: string[]): number {
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  return [...seen.values()].filter((n) => n > 1).length;
}

async function round(workers: number, trials: number): Promise<RoundResult> {
  const id = `bench_w${workers}_${process.pid}`;
  const dbName = `sweep_${id}`;
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sweep-workers-'));
  const env = { ...process.env, DATABASE_URL: dbUrl.toString(), REDIS_URL, SWEEP_HOME: path.join(dir, 'home'), SWEEP_QUEUE_PREFIX: `sweep-${id}`, SWEEP_QUEUE: 'trials' };
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  const file = path.join(dir, 'many.yaml');
  writeFileSync(
    file,
    ['name: many-workers', 'method: grid', 'train: {generate: {style: railway, count: 16, seed: 1}}', 'parameters:', `  seed: {values: [${Array.from({ length: trials }, (_, i) => i).join(', ')}]}`].join('\n'),
  );
  const { launchSweep } = await import('../src/scheduler/launch.ts');
  const { openDatabase } = await import('../src/infra/db.ts');
  try {
    await launchSweep({ file, env });
    let high = 0;
    let sampling = false;
    const sampler = setInterval(() => {
      if (sampling) return; // the previous sample is still out (a busy machine)
      sampling = true;
      admin
        .query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [dbName])
        .then((r) => (high = Math.max(high, r.rows[0].n as number)))
        .catch(() => {})
        .finally(() => (sampling = false));
    }, 100);
    const t0 = performance.now();
    const reports = await Promise.all(
      Array.from({ length: workers }, () =>
        new Promise<ChildReport>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'workers.ts'), '--child'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as ChildReport) : reject(new Error(`a worker exited with ${code}`))));
        }),
      ),
    );
    const wallS = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const db = await openDatabase({ env });
    try {
      const rows = await db.prisma.trial.findMany({ select: { status: true, attempts: true, _count: { select: { metrics: true } } } });
      const points = rows.map((r) => r._count.metrics);
      const outcomes: Record<string, number> = {};
      for (const r of reports) for (const [k, v] of Object.entries(r.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
      const done = reports.reduce((s, r) => s + r.trials, 0);
      return {
        workers,
        trials,
        finished: rows.filter((r) => r.status === 'finished').length,
        ranTwice: duplicates(reports.flatMap((r) => r.finishedIds)),
        claimedTwice: rows.filter((r) => r.attempts > 1).length,
        lost: rows.filter((r) => r.status !== 'finished').length,
        pointsPerTrial: { min: Math.min(...points), max: Math.max(...points) },
        connectionsHigh: high,
        cpuPerTrialMs: (reports.reduce((s, r) => s + r.busyCpuS, 0) / Math.max(1, done)) * 1000,
        latencyMedianMs: quantile(reports.flatMap((r) => r.latencies), 0.5),
        latencyP90Ms: quantile(reports.flatMap((r) => r.latencies), 0.9),
        wallS,
        childOutcomes: outcomes,
      };
    } finally {
      await db.close();
    }
  } finally {
    const { connectRedis } = await import('../src/infra/redis.ts');
    const redis = connectRedis({ url: REDIS_URL });
    const keys = await redis.keys(`sweep-${id}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

const n = Number(a.workers);
const many = await round(n, Number(a.trials));
console.error(`${n} workers: ${many.finished}/${many.trials} finished in ${many.wallS.toFixed(1)} s`);
const one = await round(1, Number(a['single-trials']));
console.error(`1 worker: ${one.finished}/${one.trials} finished in ${one.wallS.toFixed(1)} s`);

const ratio = many.cpuPerTrialMs / one.cpuPerTrialMs;
const bound = n * DB_POOL_MAX;
const table = markdownTable(
  ['workers', 'trials', 'finished', 'ran more than once', 'claimed more than once (attempts > 1)', 'lost', 'metric points per trial', 'Postgres connections (high-water)', 'dispatch CPU per trial', 'pick -> stored median (p90)', 'wall'],
  [many, one].map((r) => [
    String(r.workers),
    String(r.trials),
    String(r.finished),
    String(r.ranTwice),
    String(r.claimedTwice),
    String(r.lost),
    r.pointsPerTrial.min === r.pointsPerTrial.max ? String(r.pointsPerTrial.min) : `${r.pointsPerTrial.min}-${r.pointsPerTrial.max}`,
    `${r.connectionsHigh} (bound ${r.workers * DB_POOL_MAX})`,
    `${r.cpuPerTrialMs.toFixed(1)} ms`,
    `${r.latencyMedianMs.toFixed(0)} ms (${r.latencyP90Ms.toFixed(0)})`,
    `${r.wallS.toFixed(1)} s`,
  ]),
);
const goals = [
  `duplicate runs: ${many.ranTwice} (goal 0; a trial run to a stored result by two workers, or twice by one); lost trials: ${many.lost} (goal 0); trials claimed more than once: ${many.claimedTwice} (a claim retried after a slow answer, or a job the queue delivered again: counted in attempts, not run twice)`,
  `Postgres connections: high-water ${many.connectionsHigh}, bound ${bound} (${n} processes x a pool of at most ${DB_POOL_MAX}, SWEEP_DB_POOL_MAX)`,
  `dispatch CPU per trial: ${ratio.toFixed(2)}x the single worker's (goal <= 2x): ${ratio <= 2 ? 'met' : 'NOT met'}`,
];
writeResults({
  ...started,
  name: 'workers',
  title: `${n} workers against one Redis and one Postgres`,
  markdown: [
    `NO-OP TRAINER STAND-IN: each trial reports one epoch of made-up metrics, so what runs is the worker's own path (claim, trial process IPC, metric INSERT, heartbeat, result, queue acknowledgement). CPU per trial counts each worker process from the end of its first trial (which also starts its trial process) to its last stored result, over the trials in between; the latencies leave the first trial out too; wall times on 2 cores include ${n} processes queueing for the CPU.`,
    '',
    table,
    '',
    ...goals.map((g) => `- ${g}`),
  ].join('\n'),
  data: { many, one, ratio, bound, poolMax: DB_POOL_MAX },
});
for (const g of goals) console.log(g);
