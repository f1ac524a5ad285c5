/**
 * Rows for the show and status tests: a sweep stored as launch stores it, its trials set to
 * each state by hand, with metric points, artifacts and checkpoint directories on disk.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Prisma, PrismaClient, TrialStatus } from '../../src/infra/db.ts';
import { expandSweep } from '../../src/scheduler/expand.ts';
import { parseSweep } from '../../src/sweep/index.ts';
import { insertTrials, saveSweep } from '../../src/track/store.ts';
import { tinySweep } from '../../support/tiny-sweep.ts';

export interface StoredSweep {
  id: string;
  name: string;
  /** Trial ids in index order. */
  ids: string[];
}

/** A grid sweep over `dropout` (one trial per value), pretrain 3 and gru 4 epochs at most. */
export async function storeSweep(prisma: PrismaClient, name: string, dropout: number[]): Promise<StoredSweep> {
  const spec = parseSweep(tinySweep({ name, dropout, pretrain: 3, gru: 4 }), `${name}.yaml`);
  const sweep = await saveSweep(prisma, spec);
  const trials = expandSweep(spec);
  await insertTrials(prisma, sweep.id, trials);
  return { id: sweep.id, name, ids: trials.map((t) => t.id) };
}

export async function setTrial(
  prisma: PrismaClient,
  id: string,
  data: {
    status: TrialStatus;
    worker?: string | null;
    error?: string | null;
    attempts?: number;
    backend?: string | null;
    startedAt?: Date | null;
    finishedAt?: Date | null;
    heartbeatAt?: Date | null;
    bestMetric?: number | null;
    summary?: Prisma.InputJsonObject;
  },
): Promise<void> {
  await prisma.trial.update({ where: { id }, data });
}

export interface EpochSpec {
  phase: string;
  /** From 0, as stored. */
  epoch: number;
  values: Record<string, number>;
  createdAt?: Date;
}

export async function addEpochs(prisma: PrismaClient, trialId: string, epochs: EpochSpec[]): Promise<void> {
  await prisma.metricPoint.createMany({
    data: epochs.flatMap((e) =>
      Object.entries(e.values).map(([key, value]) => ({ trialId, phase: e.phase, epoch: e.epoch, key, value, ...(e.createdAt ? { createdAt: e.createdAt } : {}) })),
    ),
  });
}

/** Full epoch metrics as the trainer reports them. */
export function epochValues(valSeqAcc: number, extra: Record<string, number> = {}): Record<string, number> {
  return {
    loss: 20 - valSeqAcc * 10,
    char_acc: 0.1 + valSeqAcc / 2,
    seq_acc: valSeqAcc / 2,
    val_loss: 21 - valSeqAcc * 10,
    val_char_acc: 0.05 + valSeqAcc / 2,
    val_seq_acc: valSeqAcc,
    images_per_s: 18.25,
    seconds: 65,
    ...extra,
  };
}

/** A trial directory as the trainer leaves it: checkpoints/<phase>-eNNNN and state.json. */
export function writeCheckpoints(dir: string, names: string[], state: { checkpoint: string; best: Record<string, string> }): string {
  const ckpt = path.join(dir, 'checkpoints');
  for (const n of names) {
    mkdirSync(path.join(ckpt, n), { recursive: true });
    writeFileSync(path.join(ckpt, n, 'model.json'), '{}');
  }
  const best = Object.fromEntries(Object.entries(state.best).map(([phase, d]) => [phase, { epoch: 0, val_seq_acc: 0, val_loss: 0, dir: d }]));
  writeFileSync(path.join(ckpt, 'state.json'), JSON.stringify({ version: 1, checkpoint: state.checkpoint, best, history: [] }));
  return ckpt;
}
