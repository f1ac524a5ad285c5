/**
 * Applies prisma/migrations to a database, as `prisma migrate deploy` does, without the native
 * schema engine: the WebAssembly engine does the work through a driver adapter, so it writes
 * and checks `_prisma_migrations` (names, checksums, timings) exactly as the CLI would, and a
 * database migrated here can later be managed by the CLI and the other way round.
 *
 * Safe to call from many processes at once: on a Postgres server the callers queue on an
 * advisory lock, and whoever comes second finds nothing left to apply.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import type {
  SqlDriverAdapter,
  SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import type { MigrationList } from '@prisma/schema-engine-wasm';
import { openSchemaEngine } from './schema-engine.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
export const SCHEMA_PATH = fileURLToPath(new URL('../../prisma/schema.prisma', import.meta.url));

/** Key of the advisory lock migrators queue on (any constant; distinct from Prisma's own). */
export const MIGRATE_LOCK_KEY = 727_150_001;

const NO_FILTERS = { externalTables: [], externalEnums: [] };

export interface MigrateOptions {
  /** Directory of `<timestamp>_<name>/migration.sql` folders; default prisma/migrations. */
  migrationsDir?: string;
  /**
   * Queue concurrent migrators on a Postgres advisory lock (default true). The embedded
   * database turns it off: all its connections share one session, where such locks never
   * wait, and its owner migrates before any other process can connect.
   */
  lock?: boolean;
  /** Receives the engine's trace lines; for debugging. */
  log?: (line: string) => void;
}

export interface MigrateResult {
  /** Migrations applied by this call, in order. Empty when the database was up to date. */
  applied: string[];
  /** All migrations in the folder, in order. */
  migrations: string[];
}

/** The migrations folder in the form the engine takes. A missing folder is an empty history. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<MigrationList> {
  const lockfile = await readFile(path.join(dir, 'migration_lock.toml'), 'utf8').catch(() => null);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const migrationDirectories = await Promise.all(
    names.map(async (name) => {
      const content = await readFile(path.join(dir, name, 'migration.sql'), 'utf8').then(
        (value) => ({ tag: 'ok' as const, value }),
        (err: Error) => ({ tag: 'error' as const, value: err.message }),
      );
      return { path: name, migrationFile: { path: 'migration.sql', content } };
    }),
  );
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: lockfile },
    shadowDbInitScript: '',
    migrationDirectories,
  };
}

/**
 * A Postgres adapter for the schema engine. Built from explicit fields rather than a
 * connection string, because adapter-pg makes its shadow database by overriding `database`,
 * which a connection string would silently win over.
 */
export function postgresAdapter(url: string): PrismaPg {
  const u = new URL(url);
  const sslmode = u.searchParams.get('sslmode');
  const socketDir = u.searchParams.get('host');
  return new PrismaPg({
    host: socketDir ?? (decodeURIComponent(u.hostname) || '127.0.0.1'),
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
    ssl: sslmode && sslmode !== 'disable' ? { rejectUnauthorized: sslmode === 'verify-full' } : undefined,
    max: 2,
  });
}

/**
 * The factory as the engine should get it, and a way to close what the engine opened.
 *
 * - adapter-pg runs a script by splitting it on ';', which breaks on a ';' inside a string, a
 *   comment or a function body, and applies a migration statement by statement. The native
 *   engine sends the script whole, where Postgres runs it as one implicit transaction; so do we.
 * - The engine takes Prisma's session advisory lock and counts on its connection closing to
 *   release it, but freeing the engine does not close the connections it opened: we do.
 */
function forEngine(factory: SqlMigrationAwareDriverAdapterFactory) {
  const opened: SqlDriverAdapter[] = [];
  const patch = (adapter: SqlDriverAdapter): SqlDriverAdapter => {
    opened.push(adapter);
    const driver = (adapter as { underlyingDriver?: () => unknown }).underlyingDriver?.();
    if (!(driver instanceof pg.Pool)) return adapter;
    const onError = (adapter as unknown as { onError(err: unknown): never }).onError.bind(adapter);
    adapter.executeScript = async (script: string) => {
      try {
        // No parameters: the simple query protocol, which takes several statements.
        await driver.query(script);
      } catch (err) {
        onError(err);
      }
    };
    return adapter;
  };
  const engineFactory: SqlMigrationAwareDriverAdapterFactory = {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => patch(await factory.connect()),
    connectToShadowDb: async () => patch(await factory.connectToShadowDb()),
  };
  const closeAll = async () => {
    await Promise.all(opened.splice(0).map((a) => a.dispose().catch(() => {})));
  };
  return { engineFactory, closeAll };
}

async function withAdvisoryLock<T>(
  factory: SqlMigrationAwareDriverAdapterFactory,
  work: () => Promise<T>,
): Promise<T> {
  const conn = await factory.connect();
  try {
    const tx = await conn.startTransaction();
    try {
      // Held until COMMIT, or until the connection drops if this process dies.
      await tx.queryRaw({
        sql: `SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(${MIGRATE_LOCK_KEY})) AS l`,
        args: [],
        argTypes: [],
      });
      return await work();
    } finally {
      await tx.executeRaw({ sql: 'COMMIT', args: [], argTypes: [] }).catch(() => {});
      await tx.commit();
    }
  } finally {
    await conn.dispose();
  }
}

/**
 * Apply every migration in the folder that the database has not recorded yet.
 * `target` is a Postgres URL or a migration-aware driver adapter factory.
 * Throws when a migration fails (the engine records it as failed in `_prisma_migrations`;
 * fix the database, then mark it rolled back or applied, as with the Prisma CLI).
 */
export async function migrate(
  target: string | SqlMigrationAwareDriverAdapterFactory,
  opts: MigrateOptions = {},
): Promise<MigrateResult> {
  const factory = typeof target === 'string' ? postgresAdapter(target) : target;
  const migrationsList = await readMigrations(opts.migrationsDir);
  const migrations = migrationsList.migrationDirectories.map((d) => d.path);
  const apply = async (): Promise<string[]> => {
    const { engineFactory, closeAll } = forEngine(factory);
    try {
      const engine = await openSchemaEngine(engineFactory, { log: opts.log });
      try {
        const out = await engine.applyMigrations({ migrationsList, filters: NO_FILTERS });
        return out.appliedMigrationNames;
      } finally {
        engine.free();
      }
    } finally {
      await closeAll();
    }
  };
  const applied = opts.lock === false ? await apply() : await withAdvisoryLock(factory, apply);
  return { applied, migrations };
}

/**
 * The SQL that takes a database at the end of the migrations folder to prisma/schema.prisma;
 * empty when they agree. Replays the migrations on a throwaway in-memory PGlite, so it needs
 * no server. (prisma/create-migration.ts writes it out as the next migration.)
 */
export async function schemaDrift(
  opts: { migrationsDir?: string; schemaPath?: string } = {},
): Promise<string> {
  const schemaPath = opts.schemaPath ?? SCHEMA_PATH;
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('pglite-prisma-adapter'),
  ]);
  const db = await PGlite.create();
  try {
    // PGlite's own adapter, in process: adapter-pg cannot read the catalog's "char" columns,
    // which the engine's introspection needs.
    await migrate(new PrismaPGlite(db), { lock: false, migrationsDir: opts.migrationsDir });
    const content = await readFile(schemaPath, 'utf8');
    const files = [{ path: schemaPath, content }];
    const engine = await openSchemaEngine(new PrismaPGlite(db), { datamodel: { path: schemaPath, content } });
    try {
      const diff = await engine.diff({
        from: { tag: 'schemaDatasource', files, configDir: path.dirname(schemaPath) },
        to: { tag: 'schemaDatamodel', files },
        script: true,
        exitCode: null,
        filters: NO_FILTERS,
      });
      const sql = diff.stdout ?? '';
      return /^\s*(-- This is an empty migration\.)?\s*$/.test(sql) ? '' : sql;
    } finally {
      engine.free();
    }
  } finally {
    await db.close();
  }
}
