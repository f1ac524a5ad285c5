/**
 * The chaos drill's short form (bench/chaos.ts runs the long one): six tiny trials run by four
 * `sweep worker` processes, undisturbed and then through one kill -9 of a worker and its trial
 * process, one Redis restart, one Postgres stop of 10 s and, where the trainer verifies
 * checkpoints and falls back to the previous good one, one truncated checkpoint. Nothing may be
 * lost or duplicated and every number must equal the undisturbed run's. Everything runs on
 * private servers (support/chaos/servers.ts), never the shared Postgres and Redis.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runChaosDrill } from '../../support/chaos/drill.ts';
import { faultTable, outcomeLines, resultTable } from '../../support/chaos/report.ts';
import type { FaultKind } from '../../support/chaos/schedule.ts';
import { havePostgresServer } from '../../support/chaos/servers.ts';
import { ROOT } from './helpers.ts';

/** The trainer checks a checkpoint's file list before it resumes from it. */
const checkpointsVerified = /from '\.\/integrity\.ts'/.test(readFileSync(path.join(ROOT, 'src/train/checkpoint.ts'), 'utf8'));
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

describe.skipIf(!havePostgresServer() || !haveRedis)('chaos drill (short form)', () => {
  it('loses and duplicates nothing, and every trial ends as it would undisturbed', async () => {
    const kinds: FaultKind[] = ['kill', 'redis', 'postgres', ...(checkpointsVerified ? (['truncate'] as const) : [])];
    const outDir = mkdtempSync(path.join(tmpdir(), 'sweep-chaos-'));
    try {
      const report = await runChaosDrill({
        seed: 7,
        trials: 6,
        workers: 4,
        faults: String(kinds.length),
        kinds,
        pretrain: 1,
        gru: 2,
        images: 48,
        postgresDownS: [10, 10],
        outDir,
        log: (m) => process.stderr.write(`${m}\n`),
      });
      console.log([...report.scheduleLines, '', ...faultTable(report), '', ...outcomeLines(report), '', ...resultTable(report), ...report.comparison.examples].join('\n'));

      const injected = (k: FaultKind) => report.outcomes.filter((o) => o.fault.kind === k && o.injected).length;
      expect(injected('kill')).toBe(1);
      expect(injected('redis')).toBe(1);
      expect(injected('postgres')).toBe(1);
      const c = report.comparison;
      expect(c.notFinished).toEqual([]);
      expect(c.finished).toBe(6);
      expect(c.points).toMatchObject({ missing: 0, extra: 0, differing: 0 });
      expect(c.points.stored).toBe(c.points.expected);
      expect(c.finalDiffering).toEqual([]);
      expect(c.wandb).toMatchObject({ missing: 0, duplicated: 0, differing: 0, runsNotComplete: 0 });
      expect(c.wandb.linesReceived).toBe(c.wandb.linesExpected);
      expect(c.outbox.undelivered).toBe(0);
      expect(report.passed).toBe(true);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 900_000);
});
