/**
 * Opening the sweep database.
 *
 * DATABASE_URL set: that Postgres server, through Prisma's pg driver adapter. Its schema is
 * managed with `sweep db migrate` (or `openDatabase({ migrate: true })`); opening a database
 * that lacks migrations fails with a message saying so.
 *
 * DATABASE_URL unset: the embedded database under $SWEEP_HOME/db (see embedded.ts for how
 * local processes share it). It is migrated automatically by whichever process serves it.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import { UserError } from '../util/errors.ts';
import { openEmbedded } from './embedded.ts';
import { databaseUrl, redactUrl, type Env } from './env.ts';
import { PrismaClient } from './generated/prisma/client.ts';
import { migrate, readMigrations } from './migrate.ts';
import { hostPort, isConnectionError, ServerUnreachable } from './reachability.ts';

// The generated client: PrismaClient, the Prisma namespace, model types and enums.
export * from './generated/prisma/client.ts';

export type DatabaseKind = 'postgres' | 'embedded';

export interface Database {
  prisma: PrismaClient;
  /** Connection string (with its password, if any: print `redactUrl(url)`). */
  url: string;
  kind: DatabaseKind;
  /** Where it is, for messages: the URL without its password, or the embedded data directory. */
  label: string;
  /** Migrations applied while opening; empty when the database was up to date. */
  applied: string[];
  /** Disconnects. (The embedded database's server stays up for other processes.) */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Environment to read DATABASE_URL and SWEEP_HOME from; default process.env. */
  env?: Env;
  /** Apply pending migrations to a Postgres server (the embedded database always is). */
  migrate?: boolean;
  /** Progress lines meant for the user (e.g. "created the embedded database in ..."). */
  log?: (msg: string) => void;
}

export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<Database> {
  const url = databaseUrl(opts.env);
  return url ? openPostgres(url, opts) : openEmbeddedDatabase(opts);
}

/**
 * Connections one process opens to Postgres at most (its pool; SWEEP_DB_POOL_MAX overrides).
 * A worker needs two or three at once (a heartbeat beside an epoch's metrics), so N workers
 * stay within N x this of the server's max_connections (100 by default).
 */
export const DB_POOL_MAX = poolMax(process.env.SWEEP_DB_POOL_MAX);

function poolMax(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 4;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`SWEEP_DB_POOL_MAX must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

async function openPostgres(url: string, opts: OpenDatabaseOptions): Promise<Database> {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new UserError(
      `DATABASE_URL must be a postgresql:// URL (got ${redactUrl(url)}); unset it to use the embedded database.`,
    );
  }
  // A server that cannot be reached fails a connection within 10 s, and a query that gets no
  // answer (a network partition) fails after 60 s instead of hanging forever, so workers can
  // wait an outage out (worker/policy.ts) rather than wait on it.
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: poolMax(opts.env?.SWEEP_DB_POOL_MAX ?? process.env.SWEEP_DB_POOL_MAX), connectionTimeoutMillis: 10_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000, query_timeout: 60_000, idleTimeoutMillis: 60_000 }) });
  try {
    await prisma.$queryRawUnsafe('SELECT 1');
  } catch (err) {
    await prisma.$disconnect().catch(() => {});
    throw cannotConnect(url, 'cannot connect to', err);
  }
  let applied: string[] = [];
  try {
    if (opts.migrate) {
      applied = (await migrate(url)).applied;
    } else {
      const pending = await pendingMigrations(prisma);
      if (pending.length > 0) {
        throw new UserError(
          `the database at ${redactUrl(url)} lacks ${pending.length} migration(s) (${pending.join(', ')}); ` +
            'run `sweep db migrate` first.',
        );
      }
    }
  } catch (err) {
    await prisma.$disconnect().catch(() => {});
    // The server went away between the first query and the migrations (it is shutting down).
    throw isConnectionError(err) ? cannotConnect(url, 'lost the connection to', err) : err;
  }
  return { prisma, url, kind: 'postgres', label: redactUrl(url), applied, close: () => prisma.$disconnect() };
}

/** The error for a server that did not answer: ServerUnreachable when it may yet, else a UserError. */
function cannotConnect(url: string, what: string, err: unknown): UserError {
  const reason = databaseErrorReason(err);
  const message =
    `${what} the database at ${redactUrl(url)} (DATABASE_URL): ${reason}. ` +
    'Start Postgres (e.g. `docker compose up -d postgres`), fix DATABASE_URL, or unset it to use the embedded database.';
  return isConnectionError(err) ? new ServerUnreachable('Postgres', hostPort(url, 5432), reason, message) : new UserError(message);
}

async function openEmbeddedDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  const embedded = await openEmbedded({ env: opts.env, log: opts.log });
  const prisma = new PrismaClient({ adapter: new PrismaPg(embedded.poolConfig) });
  let applied = embedded.applied;
  // The server migrated when it started; a server started by older code may lack newer
  // migrations, which this applies when asked to.
  if (opts.migrate) {
    try {
      const more = (await migrate(new PrismaPg(embedded.poolConfig), { lock: false })).applied;
      applied = [...applied, ...more];
    } catch (err) {
      await prisma.$disconnect().catch(() => {});
      throw err;
    }
  }
  return {
    prisma,
    url: embedded.url,
    kind: 'embedded',
    label: `the embedded database in ${embedded.paths.dataDir}`,
    applied,
    close: () => prisma.$disconnect(),
  };
}

/** Migrations in prisma/migrations that the database has not recorded as applied. */
export async function pendingMigrations(prisma: PrismaClient): Promise<string[]> {
  const { migrationDirectories } = await readMigrations();
  const names = migrationDirectories.map((d) => d.path);
  const table = await prisma.$queryRawUnsafe<{ t: string | null }[]>(
    `SELECT to_regclass('_prisma_migrations')::text AS t`,
  );
  if (!table[0]?.t) return names;
  const rows = await prisma.$queryRawUnsafe<{ migration_name: string }[]>(
    'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
  );
  const done = new Set(rows.map((r) => r.migration_name));
  return names.filter((n) => !done.has(n));
}

/** The part of a Prisma error that says what happened (its message starts with where). */
export function databaseErrorReason(err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  const quoted = /Message: `([^`]*)`/.exec(msg)?.[1];
  const lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  return (quoted ?? lines.at(-1) ?? msg).replace(/\.$/, '');
}
