/**
 * A trial's checkpoints under `<outDir>/checkpoints/`: one directory per checkpointed epoch
 * (weights and optimizer) and `state.json`, which says where training stands and which of
 * those directories it still needs. The state is written atomically after the directory it
 * points to, so a trial killed at any moment resumes from a complete checkpoint.
 *
 * A disk can still damage a complete checkpoint later (a failing disk, a full one, a hand).
 * Each directory therefore holds the state as it was when the directory was written and a
 * list of its files with their sizes and sha256 (integrity.ts), and resuming checks every
 * directory the state needs first. A damaged one is moved aside (kept, named in the log) and
 * the trial resumes from the latest intact one: the previous epoch's (the last two of a phase
 * are kept) or a phase's best; when none is left, the trial starts again and says so.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from './tf.ts';
import { tfl } from './tf.ts';
import { checkFiles, describeProblems, moveAside, writeFileList } from './integrity.ts';
import { fileUrl, loadNamedTensors, saveNamedTensors, writeFileAtomic } from './io.ts';
import { resolveParams, type TrainParams } from './params.ts';
import type { Phase, TrainerState } from './types.ts';

const STATE_FILE = 'state.json';
/** What a checkpoint directory holds besides its file list and its copy of the state. */
const CHECKPOINT_FILES = ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin'] as const;

/** A checkpoint directory that cannot be used, and why. */
export class DamagedCheckpoint extends Error {
  constructor(
    readonly dir: string,
    readonly problems: string,
  ) {
    super(`checkpoint ${dir} is damaged: ${problems}`);
    this.name = 'DamagedCheckpoint';
  }
}

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

/** The directory of `phase` epoch `epoch`'s checkpoint (0-based epoch): `pretrain-e0001`. */
export function checkpointName(phase: Phase, epoch: number): string {
  return `${phase}-e${String(epoch + 1).padStart(4, '0')}`;
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

  /**
   * Makes the checkpoint root and reads the state to resume from; null when there is none (or
   * none intact is left, which `log` says). Damaged checkpoint directories are moved aside.
   */
  open(params: TrainParams, log: (msg: string) => void = () => {}): TrainerState | null {
    mkdirSync(this.root, { recursive: true });
    const path = join(this.root, STATE_FILE);
    const state = existsSync(path) ? this.readState(path, params, log) : null;
    if (state && this.intact(state, log)) return state;
    const fallback = this.latestIntactSnapshot(params, log);
    if (fallback) {
      log(`resuming from the latest intact checkpoint, ${fallback.checkpoint ?? `the end of ${fallback.phase === 'gru' ? 'pretraining' : fallback.phase}`} (${fallback.history.length} epoch(s) kept)`);
      writeFileAtomic(path, JSON.stringify(fallback, null, 1));
      return fallback;
    }
    if (state) {
      log('no intact checkpoint is left: the trial starts again from its first epoch');
      moveAside(path);
    }
    return null;
  }

  /** The state in `path`; null (and the file moved aside) when it cannot be read. */
  private readState(path: string, params: TrainParams, log: (msg: string) => void): TrainerState | null {
    let state: TrainerState;
    try {
      state = JSON.parse(readFileSync(path, 'utf8')) as TrainerState;
    } catch {
      log(`${path} cannot be read (not the JSON this version writes); moved aside to ${moveAside(path)}`);
      return null;
    }
    // A parameter added since the checkpoint was written takes its default, which is the
    // behaviour the checkpoint was trained with.
    state.params = resolveParams(state.params, path);
    if (!sameParams(state.params, params)) {
      throw new Error(`${this.outDir} holds a checkpoint of a trial with other parameters; use another --out`);
    }
    return state;
  }

  /** Whether every directory `state` needs is intact; damaged ones are moved aside, with a log line. */
  private intact(state: TrainerState, log: (msg: string) => void): boolean {
    const needed = new Set([state.checkpoint, ...Object.values(state.best).map((b) => b?.dir)].filter((d): d is string => !!d));
    let ok = true;
    for (const name of needed) {
      const dir = join(this.root, name);
      const problems = checkFiles(dir, CHECKPOINT_FILES);
      if (problems.length === 0) continue;
      ok = false;
      if (existsSync(dir)) log(`checkpoint ${name} is damaged (${describeProblems(problems)}); moved aside to ${moveAside(dir)}`);
      else log(`checkpoint ${name} is missing`);
    }
    return ok;
  }

  /** The most advanced intact state kept in a checkpoint directory, if any. */
  private latestIntactSnapshot(params: TrainParams, log: (msg: string) => void): TrainerState | null {
    const snapshots: TrainerState[] = [];
    for (const entry of readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const file = join(this.root, entry.name, STATE_FILE);
      if (!existsSync(file)) continue;
      try {
        const s = JSON.parse(readFileSync(file, 'utf8')) as TrainerState;
        s.params = resolveParams(s.params, file);
        if (sameParams(s.params, params)) snapshots.push(s);
      } catch {
        // its directory's file list catches it below if it is needed
      }
    }
    snapshots.sort((a, b) => b.history.length - a.history.length);
    for (const s of snapshots) if (this.intact(s, log)) return s;
    return null;
  }

  async writeState(state: TrainerState): Promise<void> {
    writeFileAtomic(join(this.root, STATE_FILE), JSON.stringify(state, null, 1));
    // Directories no longer referenced by the state are garbage once the state is durable.
    const keep = new Set([state.checkpoint, state.previous, ...Object.values(state.best).map((b) => b?.dir)]);
    for (const entry of readdirSync(this.root)) {
      if (entry !== STATE_FILE && !keep.has(entry) && !entry.startsWith('.')) {
        rmSync(join(this.root, entry), { recursive: true, force: true });
      }
    }
  }

  /** Removes checkpoint `name`, half-written by a failed save (never one the state names). */
  discard(name: string): void {
    rmSync(join(this.root, name), { recursive: true, force: true });
  }

  /** Records `dir`'s files and its copy of `state` (the state that will point to it). */
  seal(dir: string, state: TrainerState): void {
    writeFileAtomic(join(this.root, dir, STATE_FILE), JSON.stringify(state));
    writeFileList(join(this.root, dir));
  }

  /** Throws DamagedCheckpoint when checkpoint `name` is not as it was written. */
  verify(name: string): void {
    const problems = checkFiles(join(this.root, name), CHECKPOINT_FILES);
    if (problems.length) throw new DamagedCheckpoint(join(this.root, name), describeProblems(problems));
  }

  async loadModel(name: string): Promise<tfl.LayersModel> {
    this.verify(name);
    return tfl.loadLayersModel(fileUrl(join(this.root, name, 'model.json')));
  }

  /**
   * Saves the weights and the optimizer after `phase` epoch `epoch` into a new directory;
   * returns its name and Adam's beta powers, for the state that will point to it.
   */
  async save(phase: Phase, epoch: number, model: tfl.LayersModel, optimizer: tf.Optimizer): Promise<{ dir: string; adamBetaPowers: [number, number] }> {
    const dir = checkpointName(phase, epoch);
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
