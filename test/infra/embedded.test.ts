import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/infra/db.ts';
import { embeddedPaths, stopEmbedded, type LockInfo } from '../../src/infra/embedded.ts';
import { isAlive } from '../../src/infra/lockfile.ts';
import { readMigrations } from '../../src/infra/migrate.ts';

const WRITER = fileURLToPath(new URL('./fixtures/embedded-writer.ts', import.meta.url));

function runWriter(home: string, trial: string, points: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, home, trial, String(points)], {
      env: { ...process.env, DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('embedded database (PGlite, shared by local processes)', () => {
  let home: string;
  let env: { SWEEP_HOME: string };

  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'sweep-embedded-'));
    env = { SWEEP_HOME: home };
  });
  afterAll(async () => {
    if (!home) return;
    await stopEmbedded(env);
    await rm(home, { recursive: true, force: true });
  });

  it('takes writes from two processes at once, all of which a third process reads', async () => {
    const [a, b] = await Promise.all([runWriter(home, 'trial-a', 150), runWriter(home, 'trial-b', 150)]);
    expect(a.err).toBe('');
    expect(b.err).toBe('');
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(JSON.parse(a.out)).toEqual({ trial: 'trial-a', points: 150 });
    expect(JSON.parse(b.out)).toEqual({ trial: 'trial-b', points: 150 });

    const db = await openDatabase({ env });
    try {
      expect(db.kind).toBe('embedded');
      const trials = await db.prisma.trial.findMany({ orderBy: { id: 'asc' }, include: { _count: { select: { metrics: true } } } });
      expect(trials.map((t) => [t.id, t.status, t.attempts, t.bestMetric, t._count.metrics])).toEqual([
        ['trial-a', 'finished', 1, 1.49, 150],
        ['trial-b', 'finished', 1, 1.49, 150],
      ]);
      expect(await db.prisma.sweep.count()).toBe(1);
    } finally {
      await db.close();
    }
  });

  it('was migrated by its server, as prisma migrate deploy would have', async () => {
    const db = await openDatabase({ env, migrate: true });
    try {
      expect(db.applied).toEqual([]);
      const rows = await db.prisma.$queryRawUnsafe<{ migration_name: string }[]>(
        'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name',
      );
      const names = (await readMigrations()).migrationDirectories.map((d) => d.path);
      expect(rows.map((r) => r.migration_name)).toEqual(names);
    } finally {
      await db.close();
    }
  });

  it('starts its server again when it has died, keeping the data', async () => {
    const db = await openDatabase({ env });
    try {
      const lockFile = embeddedPaths(env).lock;
      const before = JSON.parse(await readFile(lockFile, 'utf8')) as LockInfo;
      expect(isAlive(before.pid)).toBe(true);
      process.kill(before.pid, 'SIGKILL');
      while (isAlive(before.pid)) await new Promise((r) => setTimeout(r, 20));
      // The pool's connections died with the server; new ones start a new server first.
      expect(await db.prisma.metricPoint.count()).toBe(300);
      const after = JSON.parse(await readFile(lockFile, 'utf8')) as LockInfo;
      expect(after.pid).not.toBe(before.pid);
      expect(isAlive(after.pid)).toBe(true);
    } finally {
      await db.close();
    }
  });

  it('is stopped by stopEmbedded, which leaves no lock behind', async () => {
    expect(await stopEmbedded(env)).toBe(true);
    expect(await stopEmbedded(env)).toBe(false);
    await expect(readFile(embeddedPaths(env).lock)).rejects.toThrow();
  });

  it('reports a server that cannot start, with the end of its log', async () => {
    const broken = await mkdtemp(path.join(os.tmpdir(), 'sweep-embedded-'));
    try {
      await writeFile(path.join(broken, 'db'), 'not a directory');
      const err = await openDatabase({ env: { SWEEP_HOME: broken } }).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/could not start/);
      expect((err as Error).message).toContain(path.join(broken, 'db.log'));
      expect((err as Error).message).toMatch(/failed to start/);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});
