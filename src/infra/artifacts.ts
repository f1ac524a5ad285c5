/**
 * Where a trial's outputs live: <artifacts>/trials/<trialId>/ (checkpoints, model,
 * predictions, result.json). <artifacts> is SWEEP_ARTIFACTS when set, else SWEEP_HOME (default
 * `.sweep`). Point SWEEP_ARTIFACTS at storage every GPU box mounts (NFS, a bucket mount) so
 * that a trial given back by one box resumes from its checkpoint on another, and so the
 * ensemble builder finds every trial's predictions in one place.
 */
import path from 'node:path';
import { sweepHome, type Env } from './env.ts';

export function artifactsRoot(env: Env = process.env): string {
  const shared = env.SWEEP_ARTIFACTS?.trim();
  return shared ? path.resolve(shared) : sweepHome(env);
}

export function trialDir(trialId: string, env: Env = process.env): string {
  return path.join(artifactsRoot(env), 'trials', trialId);
}
