/**
 * A trial's checkpoints under `<outDir>/checkpoints/`: one directory per checkpointed epoch
 * (weights and optimizer) and `state.json`, which says where training stands and which of
 * those directories it still needs. The state is written atomically after the directory it
 * points to, so a trial killed at any moment resumes from a complete checkpoint.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from './tf.ts';
import { tfl } from './tf.ts';
import { fileUrl, loadNamedTensors, saveNamedTensors, writeFileAtomic } from './io.ts';
import { resolveParams, type TrainParams } from './params.ts';
import type { Phase, TrainerState } from './types.ts';

const STATE_FILE = 'state.json';

/** Adam's fields for its running beta powers (tfjs keeps them as variables of its own). */
type AdamBetas = { accBeta1: tf.Variable; accBeta2: tf.Variable };

function sameParams(a: TrainParams, b: TrainParams): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}

/** The state of a trial that has not trained yet. */
export function freshState(params: TrainParams): TrainerState {
  return {
    version: 1,
    params,
    phase: params.pretrain_epochs > 0 ? 'pretrain' : 'gru',
    epoch: 0,
    step: 0,
    sinceBest: 0,
    best: {},
    history: [],
    checkpoint: null,
    adamBetaPowers: null,
    trainSeconds: 0,
    trainImages: 0,
  };
}

export class Checkpoints {
  readonly root: string;

  constructor(private readonly outDir: string) {
    this.root = join(outDir, 'checkpoints');
  }

  /** The checkpoint directory `name` (as the state names it). */
  path(name: string): string {
    return join(this.root, name);
  }

  /** Makes the checkpoint root and reads the state to resume from; null when there is none. */
  open(params: TrainParams): TrainerState | null {
    mkdirSync(this.root, { recursive: true });
    const path = join(this.root, STATE_FILE);
    if (!existsSync(path)) return null;
    const state = JSON.parse(readFileSync(path, 'utf8')) as TrainerState;
    // A parameter added since the checkpoint was written takes its default, which is the
    // behaviour the checkpoint was trained with.
    state.params = resolveParams(state.params, path);
    if (!sameParams(state.params, params)) {
      throw new Error(`${this.outDir} holds a checkpoint of a trial with other parameters; use another --out`);
    }
    return state;
  }

  async writeState(state: TrainerState): Promise<void> {
    writeFileAtomic(join(this.root, STATE_FILE), JSON.stringify(state, null, 1));
    // Directories no longer referenced by the state are garbage once the state is durable.
    const keep = new Set([state.checkpoint, ...Object.values(state.best).map((b) => b?.dir)]);
    for (const entry of readdirSync(this.root)) {
      if (entry !== STATE_FILE && !keep.has(entry) && !entry.startsWith('.')) {
        rmSync(join(this.root, entry), { recursive: true, force: true });
      }
    }
  }

  async loadModel(name: string): Promise<tfl.LayersModel> {
    return tfl.loadLayersModel(fileUrl(join(this.root, name, 'model.json')));
  }

  /**
   * Saves the weights and the optimizer after `phase` epoch `epoch` into a new directory;
   * returns its name and Adam's beta powers, for the state that will point to it.
   */
  async save(phase: Phase, epoch: number, model: tfl.LayersModel, optimizer: tf.Optimizer): Promise<{ dir: string; adamBetaPowers: [number, number] }> {
    const dir = `${phase}-e${String(epoch + 1).padStart(4, '0')}`;
    await model.save(fileUrl(join(this.root, dir)));
    const optimizerState = await optimizer.getWeights();
    await saveNamedTensors(join(this.root, dir), 'optimizer', optimizerState);
    optimizerState[0].tensor.dispose(); // the iteration count, made for the call; the rest are the optimizer's own
    const adam = optimizer as unknown as AdamBetas;
    return { dir, adamBetaPowers: [adam.accBeta1.dataSync()[0], adam.accBeta2.dataSync()[0]] };
  }

  /** Puts the weights and the optimizer of checkpoint `name` back into `model` and `optimizer`. */
  async restore(name: string, adamBetaPowers: [number, number] | null, model: tfl.LayersModel, optimizer: tf.Optimizer): Promise<void> {
    const dir = join(this.root, name);
    const saved = await this.loadModel(name);
    model.setWeights(saved.getWeights());
    saved.dispose();
    const state = loadNamedTensors(dir, 'optimizer');
    await optimizer.setWeights(state); // copies them into variables of its own
    tf.dispose(state.map((t) => t.tensor));
    if (adamBetaPowers) {
      const [b1, b2] = adamBetaPowers;
      const adam = optimizer as unknown as AdamBetas;
      tf.tidy(() => {
        adam.accBeta1.assign(tf.scalar(b1));
        adam.accBeta2.assign(tf.scalar(b2));
      });
    }
  }
}
