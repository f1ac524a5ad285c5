/**
 * `sweep ensemble backfill SWEEP`: stores the predictions of finished trials that have none in
 * the database (trials finished before predictions were stored there, or whose files could not
 * be read then), from the trial's artifact directory where this machine has it.
 */
import path from 'node:path';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { PredictionFileError, predictionFilesIn, readPredictionFiles, savePredictions, trialsWithoutPredictions, type PredictionSet } from '../track/predictions.ts';
import { findSweep } from '../track/store.ts';
import { UserError } from '../util/errors.ts';
import { trialDir } from '../infra/artifacts.ts';

export interface BackfillResult {
  sweep: string;
  finished: number;
  alreadyStored: number;
  stored: Array<{ trialId: string; index: number; from: string; splits: string[] }>;
  missing: Array<{ trialId: string; index: number; lookedAt: string[]; problem: string }>;
}

/** Directories a trial's outputs may be in: where its worker recorded them, then SWEEP_ARTIFACTS. */
function candidateDirs(trialId: string, artifactPaths: readonly string[], env: Env): string[] {
  const dirs = artifactPaths.map((p) => path.dirname(path.dirname(p)));
  dirs.push(trialDir(trialId, env));
  return [...new Set(dirs)];
}

export async function backfillPredictions(prisma: PrismaClient, sweepName: string, env: Env = process.env): Promise<BackfillResult> {
  const sweep = await findSweep(prisma, sweepName);
  if (!sweep) throw new UserError(`no sweep named ${JSON.stringify(sweepName)}; \`sweep status\` lists them`);
  const finished = await prisma.trial.findMany({
    where: { sweepId: sweep.id, status: 'finished' },
    select: { id: true, index: true, artifacts: { where: { kind: 'predictions' }, select: { path: true } } },
    orderBy: { index: 'asc' },
  });
  const without = new Set(await trialsWithoutPredictions(prisma, finished.map((t) => t.id)));
  const result: BackfillResult = { sweep: sweep.name, finished: finished.length, alreadyStored: finished.length - without.size, stored: [], missing: [] };
  for (const t of finished.filter((x) => without.has(x.id))) {
    const dirs = candidateDirs(t.id, t.artifacts.map((a) => a.path), env);
    let problem = 'no predictions/val.probs.f32 there';
    let done = false;
    for (const dir of dirs) {
      const files = predictionFilesIn(dir);
      if (!files.some((f) => f.split === 'val')) continue;
      let sets: PredictionSet[];
      try {
        sets = files.map((f) => readPredictionFiles(f.path, f.split));
      } catch (err) {
        if (!(err instanceof PredictionFileError)) throw err;
        problem = err.message;
        continue;
      }
      await savePredictions(prisma, t.id, sets);
      result.stored.push({ trialId: t.id, index: t.index, from: dir, splits: sets.map((s) => s.split) });
      done = true;
      break;
    }
    if (!done) result.missing.push({ trialId: t.id, index: t.index, lookedAt: dirs, problem });
  }
  return result;
}
