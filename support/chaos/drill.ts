/**
 * The chaos drill: a sweep of real tiny trials run twice on private servers by `sweep worker`
 * processes, first undisturbed, then while a seeded schedule kills workers, restarts Redis,
 * stops Postgres, truncates checkpoints and fills the artifact disk; then the second run is
 * checked against the first (check.ts). Used by bench/chaos.ts and test/e2e/chaos.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { launchSweep } from '../../src/scheduler/launch.ts';
import { startFakeWandb, type FakeWandb } from '../fake-wandb.ts';
import { freePort } from '../ports.ts';
import { tinySweep } from '../tiny-sweep.ts';
import { collect, compare, passed, type Comparison, type OutboxRow } from './check.ts';
import { FaultInjector, type FaultOutcome } from './inject.ts';
import { faultCount, formatSchedule, makeSchedule, type Fault, type FaultKind } from './schedule.ts';
import { ArtifactDisk, PrivatePostgres, PrivateRedis } from './servers.ts';
import { BIN, ROOT, WorkerPool } from './workers.ts';

export interface DrillOptions {
  seed: number;
  trials: number;
  workers: number;
  /** A count (`12`) or a rate over the window (`2/min`). */
  faults: string;
  kinds?: readonly FaultKind[];
  pretrain: number;
  gru: number;
  /** Generated images per trial's dataset. */
  images: number;
  postgresDownS?: [number, number];
  diskFullS?: number;
  /** Size of the artifact tmpfs (default: room for every trial's artifacts, about 2.2 MiB each, twice over). */
  diskMiB?: number;
  /** Where servers, homes and logs go (emptied first). */
  outDir: string;
  /** The chaos run gives up after this many times the undisturbed run's wall time (plus 10 min). */
  timeoutFactor?: number;
  log?: (msg: string) => void;
}

export interface RunTiming {
  seconds: number;
  /** `sweep wandb sync` after the workers exited: rows it delivered. */
  syncDelivered: number | null;
  /** Workers that exited with an error on their own (and were started again). */
  workerFailures: Array<{ label: string; exit: number | string | null }>;
  workersStarted: number;
  /** Worker log lines about damaged checkpoints, fallbacks and a full disk. */
  recoveryLines: string[];
}

export interface DrillReport {
  options: Omit<DrillOptions, 'log'>;
  windowS: number;
  schedule: Fault[];
  scheduleLines: string[];
  outcomes: FaultOutcome[];
  diskNote: string | null;
  undisturbed: RunTiming & { finished: number; trials: number };
  chaos: RunTiming;
  comparison: Comparison;
  passed: boolean;
}

function sweepFile(o: DrillOptions): string {
  // Distinct dropouts make distinct trials; the sweep's seed fixes every trial's seed.
  const dropout = Array.from({ length: o.trials }, (_, i) => +(0.01 * (i + 1)).toFixed(2));
  return tinySweep({ name: 'chaos', dropout, pretrain: o.pretrain, gru: o.gru, count: o.images });
}

async function createDatabase(server: PrivatePostgres, name: string): Promise<string> {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  await c.query(`CREATE DATABASE "${name}"`);
  await c.end();
  return server.databaseUrl(name);
}

async function wandbSync(env: Record<string, string>, log: (m: string) => void): Promise<number | null> {
  // Not spawnSync: the fake W&B server lives in this process and must keep answering.
  const p = spawn(process.execPath, [BIN, 'wandb', 'sync', '--json'], { cwd: ROOT, env: { ...process.env, CI: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout!.on('data', (d) => (out += String(d)));
  p.stderr!.on('data', (d) => (err += String(d)));
  const code = await new Promise<number | null>((r) => p.on('exit', r));
  if (code !== 0) log(`wandb sync exited ${code}: ${err.trim().split('\n').at(-1)}`);
  try {
    return (JSON.parse(out) as { delivered: number }).delivered;
  } catch {
    return null;
  }
}

/** What the workers said about damaged checkpoints, resuming elsewhere and a full disk. */
const RECOVERY = /damaged|latest intact|starts again|ENOSPC|no space|cannot write/i;

/** Those lines of every worker's log; a write retried with backoff is one line with its count. */
export function recoveryLines(logDir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(logDir).sort()) {
    const retries = new Map<string, { at: number; n: number }>();
    for (const line of readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
      if (!RECOVERY.test(line)) continue;
      const retry = /^(?:\S+ )?(.*); retrying in [\d.]+ s/.exec(line.trim());
      const r = retry ? retries.get(retry[1]!) : undefined;
      if (r) {
        r.n++;
        continue;
      }
      if (retry) retries.set(retry[1]!, { at: out.length, n: 1 });
      out.push(`${f.replace(/\.log$/, '')}: ${line.trim()}`);
    }
    for (const r of retries.values()) if (r.n > 1) out[r.at] += ` [${r.n} tries in all]`;
  }
  return out;
}

async function outboxNow(url: string): Promise<OutboxRow[]> {
  return (await collect(url)).outbox;
}

export async function runChaosDrill(o: DrillOptions): Promise<DrillReport> {
  const log = o.log ?? (() => {});
  rmSync(o.outDir, { recursive: true, force: true });
  mkdirSync(o.outDir, { recursive: true });
  const file = path.join(o.outDir, 'sweep.yaml');
  writeFileSync(file, sweepFile(o));

  const postgres = new PrivatePostgres(path.join(o.outDir, 'pg'), await freePort());
  const redis = new PrivateRedis(path.join(o.outDir, 'redis'), await freePort());
  let wandb: FakeWandb | null = null;
  let disk: ArtifactDisk | null = null;
  const pools: WorkerPool[] = [];
  const cleanup = async () => {
    for (const p of pools) await p.killAll();
    disk?.unmount();
    await redis.stop();
    postgres.stopQuietly();
    await wandb?.close();
  };
  const onSignal = () => {
    log('interrupted: stopping workers and servers');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    postgres.init();
    postgres.start();
    await redis.start();
    wandb = await startFakeWandb();
    const entity = 'drills';
    const envFor = (name: string, dbUrl: string): Record<string, string> => ({
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url,
      SWEEP_QUEUE_PREFIX: `chaos-${name}`,
      SWEEP_HOME: path.join(o.outDir, name, 'home'),
      SWEEP_HEARTBEAT_MS: '1000',
      SWEEP_STALE_MS: '5000',
      SWEEP_LOCK_MS: '4000',
      WANDB_MODE: 'online',
      WANDB_API_KEY: `drill-key-${'x'.repeat(30)}`,
      WANDB_BASE_URL: wandb!.url,
      WANDB_PROJECT: name,
      WANDB_ENTITY: entity,
    });

    // 1. The undisturbed run.
    const baseUrl = await createDatabase(postgres, 'undisturbed');
    const baseEnv = envFor('undisturbed', baseUrl);
    log(`undisturbed run: ${o.trials} trials, ${o.workers} workers`);
    const base = await runSweep(file, baseEnv, o, pools, log, null);
    const baseData = await collect(baseUrl);
    const baseFinished = baseData.trials.filter((t) => t.status === 'finished').length;
    log(`undisturbed run: ${baseFinished}/${baseData.trials.length} finished in ${base.seconds.toFixed(0)} s`);
    if (baseFinished !== o.trials) throw new Error(`the undisturbed run finished ${baseFinished} of ${o.trials} trials; see ${path.join(o.outDir, 'undisturbed', 'workers')}`);

    // 2. The schedule, over the undisturbed run's wall time.
    const windowS = base.seconds;
    const schedule = makeSchedule({ seed: o.seed, count: faultCount(o.faults, windowS), kinds: o.kinds, postgresDownS: o.postgresDownS, diskFullS: o.diskFullS });
    const scheduleLines = formatSchedule(schedule, windowS);
    log(`fault schedule (seed ${o.seed}, window ${windowS.toFixed(0)} s):\n${scheduleLines.join('\n')}`);

    // 3. The chaos run, its trials directory on a tmpfs when a disk fault is scheduled.
    const chaosUrl = await createDatabase(postgres, 'chaos');
    const chaosEnv = envFor('chaos', chaosUrl);
    let diskNote: string | null = null;
    if (schedule.some((f) => f.kind === 'disk')) {
      disk = new ArtifactDisk(path.join(chaosEnv.SWEEP_HOME!, 'trials'), o.diskMiB ?? Math.max(64, 4 * o.trials + 32));
      diskNote = disk.mount();
      if (diskNote) {
        log(`artifact disk faults will be skipped: ${diskNote}`);
        disk = null;
      }
    }
    const chaos = await runSweep(file, chaosEnv, o, pools, log, {
      schedule,
      windowS,
      redis,
      postgres,
      disk: disk ?? diskNote ?? 'no disk fault scheduled',
      deadlineS: windowS * (o.timeoutFactor ?? 4) + 600,
      dbUrl: chaosUrl,
    });
    const chaosData = await collect(chaosUrl);
    const comparison = compare({
      base: baseData,
      chaos: chaosData,
      chaosOutboxBeforeSync: chaos.outboxBeforeSync ?? [],
      baseWandb: { fake: wandb, entity, project: 'undisturbed' },
      chaosWandb: { fake: wandb, entity, project: 'chaos' },
    });
    const { log: _log, ...options } = o;
    return {
      options,
      windowS,
      schedule,
      scheduleLines,
      outcomes: chaos.outcomes ?? [],
      diskNote,
      undisturbed: { ...base, finished: baseFinished, trials: baseData.trials.length },
      chaos,
      comparison,
      passed: passed(comparison, o.trials),
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

interface Chaos {
  schedule: Fault[];
  windowS: number;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  disk: ArtifactDisk | string;
  deadlineS: number;
  dbUrl: string;
}

/** Launches the sweep, runs the workers (and the faults) until every worker has exited, syncs W&B. */
async function runSweep(
  file: string,
  env: Record<string, string>,
  o: DrillOptions,
  pools: WorkerPool[],
  log: (m: string) => void,
  chaos: Chaos | null,
): Promise<RunTiming & { outcomes?: FaultOutcome[]; outboxBeforeSync?: OutboxRow[] }> {
  const name = env.WANDB_PROJECT!;
  await launchSweep({ file, env });
  const pool = new WorkerPool(env, path.join(o.outDir, name, 'workers'), (m) => log(`${name}: ${m}`));
  pools.push(pool);
  const t0 = Date.now();
  for (let i = 0; i < o.workers; i++) pool.start();
  let injector: FaultInjector | null = null;
  if (chaos) {
    injector = new FaultInjector({ pool, redis: chaos.redis, postgres: chaos.postgres, disk: chaos.disk, trialsDir: path.join(env.SWEEP_HOME!, 'trials'), log }, t0);
    injector.run(chaos.schedule, chaos.windowS);
  }
  const deadline = chaos ? chaos.deadlineS : 24 * 3600;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([pool.allExited().then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), deadline * 1000)))]);
  clearTimeout(timer);
  // Faults whose time has not come are skipped; those under way end (Postgres starts again).
  await injector?.stop();
  if (timedOut) {
    log(`${name}: still running after ${deadline.toFixed(0)} s; the workers are stopped`);
    await pool.killAll();
  } else {
    // A fault that ended after the last worker left (a Postgres stop) may have stopped nothing.
    pool.restartFailed = false;
    await pool.allExited();
  }
  const seconds = (Date.now() - t0) / 1000;
  const outboxBeforeSync = chaos ? await outboxNow(chaos.dbUrl) : undefined;
  const syncDelivered = await wandbSync(env, log);
  return {
    seconds,
    syncDelivered,
    workerFailures: pool.failedExits,
    workersStarted: pool.all.length,
    recoveryLines: recoveryLines(pool.logDir),
    outcomes: injector?.done,
    outboxBeforeSync,
  };
}

