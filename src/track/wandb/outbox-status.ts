/** Counting the W&B outbox's rows by state, for `sweep wandb status` and `sweep wandb sync`. */
import { Prisma, type PrismaClient } from '../../infra/db.ts';

export interface OutboxCounts {
  delivered: number;
  pending: number;
  undeliverable: number;
}

export interface SweepOutboxStatus extends OutboxCounts {
  sweepId: string;
  sweep: string;
  /** Runs W&B has answered for, and how many of those have a link. */
  runs: number;
  /** W&B sweep id, when registered. */
  wandbSweepId: string | null;
  sweepUrl: string | null;
  lastDeliveredAt: string | null;
  /** The most recent failure reason of a row not yet delivered. */
  lastError: string | null;
}

/** Outbox counts by state for each sweep that has rows (or for one). */
export async function outboxStatus(prisma: PrismaClient, sweepId?: string): Promise<SweepOutboxStatus[]> {
  const filter = sweepId ? Prisma.sql`WHERE o."sweepId" = ${sweepId}` : Prisma.empty;
  const rows = await prisma.$queryRaw<
    Array<{ sweepId: string; sweep: string; delivered: number; pending: number; undeliverable: number; lastDeliveredAt: Date | null }>
  >`
    SELECT o."sweepId", s."name" AS sweep,
      COUNT(*) FILTER (WHERE o."deliveredAt" IS NOT NULL)::int AS delivered,
      COUNT(*) FILTER (WHERE o."deliveredAt" IS NULL AND o."failedAt" IS NULL)::int AS pending,
      COUNT(*) FILTER (WHERE o."deliveredAt" IS NULL AND o."failedAt" IS NOT NULL)::int AS undeliverable,
      MAX(o."deliveredAt") AS "lastDeliveredAt"
    FROM "WandbOutbox" o JOIN "Sweep" s ON s."id" = o."sweepId" ${filter}
    GROUP BY o."sweepId", s."name", s."createdAt" ORDER BY s."createdAt" DESC`;
  const out: SweepOutboxStatus[] = [];
  for (const r of rows) {
    const [last] = await prisma.$queryRaw<{ lastError: string }[]>`
      SELECT o."lastError" FROM "WandbOutbox" o
      WHERE o."sweepId" = ${r.sweepId} AND o."deliveredAt" IS NULL AND o."lastError" IS NOT NULL
      ORDER BY o."updatedAt" DESC LIMIT 1`;
    const runs = await prisma.wandbRun.count({ where: { trial: { sweepId: r.sweepId }, url: { not: null } } });
    const ws = await prisma.wandbSweep.findUnique({ where: { sweepId: r.sweepId }, select: { wandbSweepId: true, url: true } });
    out.push({
      sweepId: r.sweepId,
      sweep: r.sweep,
      delivered: r.delivered,
      pending: r.pending,
      undeliverable: r.undeliverable,
      runs,
      wandbSweepId: ws?.wandbSweepId ?? null,
      sweepUrl: ws?.url ?? null,
      lastDeliveredAt: r.lastDeliveredAt?.toISOString() ?? null,
      lastError: last?.lastError ?? null,
    });
  }
  return out;
}

/** Rows not delivered, of one sweep or all: still to try, and undeliverable. */
export async function outboxCounts(prisma: PrismaClient, sweepId?: string): Promise<OutboxCounts> {
  const filter = sweepId ? Prisma.sql`WHERE o."sweepId" = ${sweepId}` : Prisma.empty;
  const [r] = await prisma.$queryRaw<OutboxCounts[]>`
    SELECT COUNT(*) FILTER (WHERE o."deliveredAt" IS NOT NULL)::int AS delivered,
      COUNT(*) FILTER (WHERE o."deliveredAt" IS NULL AND o."failedAt" IS NULL)::int AS pending,
      COUNT(*) FILTER (WHERE o."deliveredAt" IS NULL AND o."failedAt" IS NOT NULL)::int AS undeliverable
    FROM "WandbOutbox" o ${filter}`;
  return r ?? { delivered: 0, pending: 0, undeliverable: 0 };
}
