import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, Prisma } from '../../src/infra/db.ts';
import { MIGRATIONS_DIR, SCHEMA_PATH, migrate, postgresAdapter, readMigrations, schemaDrift } from '../../src/infra/migrate.ts';
import { openSchemaEngine } from '../../src/infra/schema-engine.ts';
import { UserError } from '../../src/util/errors.ts';
import { createTestDatabase, type TestDatabase } from '../../support/pg.ts';
import { startTcpProxy } from './tcp-proxy.ts';

const SWEEP = fileURLToPath(new URL('../../bin/sweep.mjs', import.meta.url));

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('migrate (Postgres server)', () => {
  let db: TestDatabase;
  let names: string[];

  beforeAll(async () => {
    db = await createTestDatabase();
    names = (await readMigrations()).migrationDirectories.map((d) => d.path);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses to open a database that lacks migrations, and says what to run', async () => {
    const err = await openDatabase({ env: { DATABASE_URL: db.url } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/sweep db migrate/);
  });

  it('applies every migration once, then nothing, recording them as prisma migrate deploy does', async () => {
    const first = await migrate(db.url);
    expect(names.length).toBeGreaterThan(0);
    expect(first).toEqual({ applied: names, migrations: names });
    expect(await migrate(db.url)).toEqual({ applied: [], migrations: names });

    const rows = await query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      rolled_back_at: Date | null;
      applied_steps_count: number;
      logs: string | null;
    }>(db.url, 'SELECT * FROM _prisma_migrations ORDER BY started_at');
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const row of rows) {
      const sql = await readFile(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.finished_at).not.toBeNull();
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
      expect(row.logs).toBeNull();
    }
    const tables = await query<{ tablename: string }>(
      db.url,
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    expect(tables.map((t) => t.tablename)).toEqual([
      'Artifact',
      'Ensemble',
      'EnsembleMember',
      'MetricPoint',
      'PredictionDataset',
      'Sweep',
      'Trial',
      'TrialPredictions',
      'WandbOutbox',
      'WandbRun',
      'WandbSweep',
      '_prisma_migrations',
    ]);
  });

  it('lets concurrent migrators through one at a time: each migration is applied exactly once', async () => {
    const fresh = await createTestDatabase();
    try {
      const results = await Promise.all([migrate(fresh.url), migrate(fresh.url), migrate(fresh.url)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual([...names].sort());
      const rows = await query<{ n: string }>(fresh.url, 'SELECT count(*) AS n FROM _prisma_migrations');
      expect(Number(rows[0]!.n)).toBe(names.length);
    } finally {
      await fresh.drop();
    }
  });

  it('an error the adapter throws comes out of the engine as itself, not as an id of its registry', async () => {
    const fresh = await createTestDatabase();
    const real = postgresAdapter(fresh.url);
    const broken = (where: 'connect' | 'script'): SqlMigrationAwareDriverAdapterFactory => ({
      provider: real.provider,
      adapterName: real.adapterName,
      connect: async () => {
        if (where === 'connect') throw new Error('the driver lost its socket');
        const adapter = await real.connect();
        adapter.executeScript = async () => {
          throw new Error('the connection went away during the script');
        };
        return adapter;
      },
      connectToShadowDb: () => real.connectToShadowDb(),
    });
    try {
      await expect(openSchemaEngine(broken('connect'))).rejects.toThrow(/^the driver lost its socket$/);
      const engine = await openSchemaEngine(broken('script'));
      try {
        const migrationsList = await readMigrations();
        const err = await engine.applyMigrations({ migrationsList, filters: { externalTables: [], externalEnums: [] } }).catch((e: unknown) => e);
        expect((err as Error).message).toBe('the connection went away during the script');
      } finally {
        engine.free();
      }
    } finally {
      await fresh.drop();
    }
  });

  it('a server that is shutting down: migrating fails with what the server said', async () => {
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(db.url).port || 5432));
    try {
      proxy.shutDown();
      for (const lock of [true, false]) {
        const err = await migrate(proxy.url(db.url), { lock }).catch((e: unknown) => e);
        expect(err, `lock ${lock}`).not.toBeInstanceOf(TypeError);
        expect((err as Error).message, `lock ${lock}`).toMatch(/the database system is shutting down/);
      }
    } finally {
      await proxy.close();
    }
  });

  it('opens the migrated database; a MetricPoint is unique per (trial, phase, epoch, key)', async () => {
    const handle = await openDatabase({ env: { DATABASE_URL: db.url } });
    try {
      expect(handle.kind).toBe('postgres');
      const { prisma } = handle;
      const sweep = await prisma.sweep.create({
        data: { name: 'unique-metric', method: 'grid', spec: { grid: {} }, metricName: 'val_acc', metricGoal: 'maximize' },
      });
      await prisma.trial.create({ data: { id: 'trial-a', sweepId: sweep.id, index: 0, params: { lr: 0.001 }, seed: 1 } });
      const point = { trialId: 'trial-a', phase: 'pretrain', epoch: 1, key: 'val_acc', value: 0.5 };
      await prisma.metricPoint.create({ data: point });
      const dup = await prisma.metricPoint.create({ data: { ...point, value: 0.6 } }).catch((e: unknown) => e);
      expect(dup).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
      expect((dup as Prisma.PrismaClientKnownRequestError).code).toBe('P2002');
      // Another key, epoch or phase is another point.
      await prisma.metricPoint.create({ data: { ...point, key: 'val_loss' } });
      await prisma.metricPoint.create({ data: { ...point, epoch: 2 } });
      await prisma.metricPoint.create({ data: { ...point, phase: 'gru' } });
      expect(await prisma.metricPoint.count({ where: { trialId: 'trial-a' } })).toBe(4);
      // Upsert on the key is how a retried epoch overwrites its value.
      await prisma.metricPoint.upsert({
        where: { trialId_phase_epoch_key: { trialId: 'trial-a', phase: 'pretrain', epoch: 1, key: 'val_acc' } },
        create: point,
        update: { value: 0.7 },
      });
      const stored = await prisma.metricPoint.findUniqueOrThrow({
        where: { trialId_phase_epoch_key: { trialId: 'trial-a', phase: 'pretrain', epoch: 1, key: 'val_acc' } },
      });
      expect(stored.value).toBe(0.7);
      // Deleting a sweep takes its trials and their metrics with it.
      await prisma.sweep.delete({ where: { id: sweep.id } });
      expect(await prisma.metricPoint.count()).toBe(0);
    } finally {
      await handle.close();
    }
  });

  it('openDatabase({ migrate: true }) applies pending migrations and reports them', async () => {
    const fresh = await createTestDatabase();
    try {
      const first = await openDatabase({ env: { DATABASE_URL: fresh.url }, migrate: true });
      expect(first.applied).toEqual(names);
      await first.close();
      const again = await openDatabase({ env: { DATABASE_URL: fresh.url }, migrate: true });
      expect(again.applied).toEqual([]);
      await again.close();
    } finally {
      await fresh.drop();
    }
  });

  it('says which server it could not reach, without the password', async () => {
    const err = await openDatabase({ env: { DATABASE_URL: 'postgresql://u:hunter2@127.0.0.1:1/x' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('127.0.0.1:1');
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('sweep db migrate prints what it applied', async () => {
    const fresh = await createTestDatabase();
    try {
      const run = (...args: string[]) =>
        promisify(execFile)(process.execPath, [SWEEP, 'db', 'migrate', ...args], {
          env: { ...process.env, DATABASE_URL: fresh.url },
        });
      const first = JSON.parse((await run('--json')).stdout);
      expect(first).toEqual({ kind: 'postgres', url: fresh.url, applied: names, migrations: names });
      const second = await run();
      expect(second.stdout).toMatch(/is up to date/);
    } finally {
      await fresh.drop();
    }
  });
});

describe('prisma/schema.prisma and prisma/migrations', () => {
  it('agree: every schema change has its migration (write one with prisma/create-migration.ts)', async () => {
    expect(await schemaDrift()).toBe('');
  });

  it('a schema change no migration covers is found', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sweep-schema-'));
    try {
      const schema = (await readFile(SCHEMA_PATH, 'utf8')).replace(
        /model Sweep \{/,
        'model Sweep {\n  note String?',
      );
      const changed = path.join(dir, 'schema.prisma');
      await writeFile(changed, schema);
      expect(await schemaDrift({ schemaPath: changed })).toMatch(/ALTER TABLE "Sweep" ADD COLUMN\s+"note" TEXT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
