/**
 * Metric points into Postgres, as an upsert: a replayed epoch (a resumed trial re-running it,
 * or finishTrial storing the whole history again) overwrites the value stored for each
 * (trial, phase, epoch, key) and never adds a second row.
 *
 * One statement per UPSERT_CHUNK rows, the columns passed as five arrays and unnested by
 * Postgres (as insertTrials does): five bind parameters whatever the chunk's size, so the
 * 65,535-parameter limit of the protocol never applies, and Postgres parses one small
 * statement instead of createMany's five parameters per row. bench/ingest.ts measures it
 * against recordMetrics.
 */
import type { PrismaClient } from '../infra/db.ts';
import type { MetricRow } from './metrics.ts';

/** Rows per statement: large enough to amortise a round trip, small enough to keep one short. */
export const UPSERT_CHUNK = 5000;

/**
 * Stores metric points; a point already there takes the new value. Returns how many rows
 * were written: new ones and changed ones (a replay of identical values writes nothing, so it
 * leaves no dead tuples behind). Several rows for one point in `rows`: the last one wins.
 *
 * A non-finite value or a non-integer epoch is refused (RangeError naming the row) before
 * anything is written; epochRows never produces them. Batches above one chunk are written in
 * one transaction: all of it or none.
 */
export async function upsertMetrics(prisma: PrismaClient, rows: readonly MetricRow[], opts: { owner?: string } = {}): Promise<number> {
  const latest = new Map<string, MetricRow>();
  for (const r of rows) {
    if (typeof r.value !== 'number' || !Number.isFinite(r.value)) {
      throw new RangeError(`metric ${describe(r)}: value must be a finite number, got ${String(r.value)}`);
    }
    if (!Number.isSafeInteger(r.epoch) || r.epoch < 0 || r.epoch > 2 ** 31 - 1) {
      throw new RangeError(`metric ${describe(r)}: epoch must be an integer from 0 to 2^31-1, got ${String(r.epoch)}`);
    }
    // Postgres refuses to update one row twice in a statement; the last value is the one to keep.
    // (Text in Postgres cannot hold NUL, so it separates the parts unambiguously.)
    const id = `${r.trialId}\0${r.phase}\0${r.epoch}\0${r.key}`;
    latest.delete(id);
    latest.set(id, r);
  }
  if (latest.size === 0) return 0;
  const unique = [...latest.values()];
  // With an owner, only rows of trials that worker still owns are written: a worker that lost
  // its trial to another (it was paused past the stale limit) must not overwrite the new
  // owner's values with its own.
  const owner = opts.owner ?? null;
  const statements = [];
  for (let i = 0; i < unique.length; i += UPSERT_CHUNK) {
    const c = unique.slice(i, i + UPSERT_CHUNK);
    statements.push(prisma.$executeRaw`
      INSERT INTO "MetricPoint" ("trialId", "phase", "epoch", "key", "value")
      SELECT * FROM unnest(${c.map((r) => r.trialId)}::text[], ${c.map((r) => r.phase)}::text[],
                           ${c.map((r) => r.epoch)}::int[], ${c.map((r) => r.key)}::text[],
                           ${c.map((r) => r.value)}::float8[]) AS u("trialId", "phase", "epoch", "key", "value")
      WHERE ${owner}::text IS NULL OR EXISTS (SELECT 1 FROM "Trial" t WHERE t."id" = u."trialId" AND t."worker" = ${owner}::text)
      ON CONFLICT ("trialId", "phase", "epoch", "key")
      DO UPDATE SET "value" = EXCLUDED."value"
      WHERE "MetricPoint"."value" IS DISTINCT FROM EXCLUDED."value"`);
  }
  if (statements.length === 1) return statements[0];
  const counts = await prisma.$transaction(statements);
  return counts.reduce((a, b) => a + b, 0);
}

function describe(r: MetricRow): string {
  return `(trial ${r.trialId}, ${r.phase} epoch ${r.epoch}, ${r.key})`;
}
