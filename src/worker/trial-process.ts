/**
 * The worker's side of a trial process (runner.ts): start it, run one trial in it, stop it.
 * A process is kept between trials (the backend, the datasets and the module graph are
 * loaded once) and replaced when it dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { EpochMetrics, Phase, BatchProgress, TrialResult } from '../train/trainer.ts';
import { nodeScript } from '../util/node-script.ts';
import type { FailureKind, FromTrial, RunTrial, ToTrial } from './protocol.ts';

const RUNNER = nodeScript(import.meta.url, './runner');

/** A trial that did not finish, and why. */
export class TrialFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly childStack?: string,
  ) {
    super(message);
    this.name = 'TrialFailure';
  }
}

export interface TrialHandlers {
  log?(message: string): void;
  started?(info: { backend: string; images: { train: number; val: number; test: number } }): void;
  phase?(phase: Phase, epochs: number, start: number): void;
  progress?(p: BatchProgress): void;
  /** Called after each checkpointed epoch (at `step` in the trial's history); resolves true to stop the trial there. */
  epoch(m: EpochMetrics, step: number): Promise<boolean>;
  /** A resumed trial's earlier epochs (step = index), before its first new epoch. */
  resumed?(history: readonly EpochMetrics[]): void;
}

export interface TrialOutput {
  result: TrialResult;
  history: EpochMetrics[];
}

export class TrialProcess {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private onMessage: ((m: FromTrial) => void) | null = null;
  private onExit: ((why: string) => void) | null = null;
  private exited = false;
  pid: number | undefined;

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  get alive(): boolean {
    return this.child !== null && !this.exited;
  }

  /** Starts the process (once) and resolves when it can take a trial. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    const child = fork(RUNNER.file, [], {
      execArgv: RUNNER.execArgv,
      env: this.env,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.pid = child.pid;
    this.ready = new Promise<void>((resolve, reject) => {
      const early = (code: number | null, signal: string | null) => reject(new TrialFailure('crashed', `the trial process exited while starting (${describeExit(code, signal)})`));
      child.once('exit', early);
      child.on('message', (m: FromTrial) => {
        if (m.type === 'ready') {
          child.off('exit', early);
          resolve();
        } else {
          this.onMessage?.(m);
        }
      });
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      this.onExit?.(describeExit(code, signal));
    });
    child.on('error', () => {}); // reported through 'exit'
    return this.ready;
  }

  private send(msg: ToTrial): void {
    if (this.alive && this.child?.connected) this.child.send(msg);
  }

  /** Runs one trial; rejects with a TrialFailure. */
  async run(msg: Omit<RunTrial, 'type'>, h: TrialHandlers): Promise<TrialOutput> {
    await this.start();
    if (!this.alive) throw new TrialFailure('crashed', 'the trial process is not running');
    return new Promise<TrialOutput>((resolve, reject) => {
      const done = () => {
        this.onMessage = null;
        this.onExit = null;
      };
      this.onExit = (why) => {
        done();
        reject(new TrialFailure('crashed', `the trial process exited (${why})`));
      };
      this.onMessage = (m) => {
        switch (m.type) {
          case 'log':
            h.log?.(m.message);
            break;
          case 'started':
            h.started?.(m);
            break;
          case 'phase':
            h.phase?.(m.phase, m.epochs, m.start);
            break;
          case 'progress':
            h.progress?.(m.progress);
            break;
          case 'epoch':
            h.epoch(m.metrics, m.step).then(
              (abort) => this.send({ type: 'epoch-ack', abort }),
              () => this.send({ type: 'epoch-ack', abort: false }),
            );
            break;
          case 'resumed':
            h.resumed?.(m.history);
            break;
          case 'result':
            done();
            resolve({ result: m.result, history: m.history });
            break;
          case 'failed':
            done();
            reject(new TrialFailure(m.kind, m.message, m.stack));
            break;
        }
      };
      this.send({ type: 'run', ...msg });
    });
  }

  /** Asks the running trial to stop after its running epoch (checkpointed). */
  abort(): void {
    this.send({ type: 'abort' });
  }

  /** Stops the process now; a running trial resumes elsewhere from its last checkpoint. */
  kill(): void {
    if (this.alive) this.child?.kill('SIGKILL');
  }

  /** Ends an idle process: closing the channel makes it exit. */
  async close(): Promise<void> {
    if (!this.alive || !this.child) return;
    const exited = new Promise<void>((resolve) => this.child!.once('exit', () => resolve()));
    this.child.disconnect();
    const timer = setTimeout(() => this.kill(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}
