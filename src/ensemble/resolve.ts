/**
 * What `sweep predict` and `sweep eval` accept as a reader: an exported directory, a trained
 * model's directory, or a finished trial (by id, id prefix or SWEEP#INDEX), whose model is
 * looked up where its worker left it or under SWEEP_ARTIFACTS.
 */
import { existsSync, statSync } from 'node:fs';
import { openDatabase } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { resolveTrialRef } from '../track/trial-view.ts';
import { UserError } from '../util/errors.ts';
import { locateModel, trialPlan } from './export.ts';

export async function resolveReaderDir(ref: string, env: Env = process.env): Promise<string> {
  if (existsSync(ref)) {
    if (!statSync(ref).isDirectory()) throw new UserError(`${ref}: not a directory (expected an exported reader, a model directory or a trial id)`);
    return ref;
  }
  if (/[/\\]/.test(ref) && !ref.includes('#')) throw new UserError(`${ref}: no such directory`);
  const db = await openDatabase({ env });
  try {
    const id = await resolveTrialRef(db.prisma, ref);
    const plan = await trialPlan(db.prisma, id);
    return locateModel(plan.members[0], env);
  } finally {
    await db.close();
  }
}
