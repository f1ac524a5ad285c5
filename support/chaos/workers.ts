/**
 * `sweep worker --exit-when-idle` processes for a drill. Each is started in a process group of
 * its own, so a kill -9 can take the worker and its trial process together, as a machine dying
 * would. Each worker's stderr goes to `<logDir>/<label>.log`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(ROOT, 'bin', 'sweep.mjs');

export interface WorkerProcess {
  label: string;
  proc: ChildProcess;
  startedAt: number;
  /** Set when the drill killed it. */
  killed: boolean;
  /** Exit code (or signal name) once it exited. */
  exit: number | string | null;
  exited: Promise<void>;
}

export class WorkerPool {
  readonly all: WorkerProcess[] = [];
  private n = 0;
  /** Replacements waiting to start (kill's 1-3 s). */
  private pending = new Set<Promise<void>>();
  /** Restart workers that exit with an error (on while faults may still come). */
  restartFailed = true;
  /** Set by killAll: nothing starts any more. */
  private closed = false;
  /** Workers that exited with an error without being killed. */
  readonly failedExits: Array<{ label: string; exit: number | string | null }> = [];

  constructor(
    readonly env: Record<string, string>,
    readonly logDir: string,
    readonly log: (msg: string) => void = () => {},
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  start(): WorkerProcess {
    const label = `w${this.n++}`;
    const fd = openSync(path.join(this.logDir, `${label}.log`), 'a');
    const proc = spawn(process.execPath, [BIN, 'worker', '--exit-when-idle'], {
      cwd: ROOT,
      env: { ...process.env, CI: '1', ...this.env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    const w: WorkerProcess = { label, proc, startedAt: Date.now(), killed: false, exit: null, exited: Promise.resolve() };
    w.exited = new Promise<void>((r) =>
      proc.on('exit', (code, signal) => {
        w.exit = code ?? signal;
        if (!w.killed) this.log(`worker ${label} (pid ${proc.pid}) exited ${w.exit}`);
        // A worker that failed on its own is brought back, as a restart policy would.
        if (!w.killed && w.exit !== 0 && this.restartFailed) {
          this.failedExits.push({ label, exit: w.exit });
          this.later(5, `in place of ${label}, which exited ${w.exit}`);
        }
        r();
      }),
    );
    this.all.push(w);
    return w;
  }

  live(): WorkerProcess[] {
    return this.all.filter((w) => w.exit === null && !w.killed);
  }

  /** kill -9 of a worker's whole process group; a new worker starts `restartS` later. */
  async kill(w: WorkerProcess, restartS: number): Promise<void> {
    w.killed = true;
    try {
      process.kill(-w.proc.pid!, 'SIGKILL');
    } catch {
      w.proc.kill('SIGKILL');
    }
    await w.exited;
    await this.later(restartS, `in place of ${w.label}`);
  }

  /** Starts a worker `seconds` from now. */
  private later(seconds: number, why: string): Promise<void> {
    const next: Promise<void> = new Promise<void>((r) => setTimeout(r, seconds * 1000)).then(() => {
      this.pending.delete(next);
      if (this.closed) return;
      const n = this.start();
      this.log(`worker ${n.label} (pid ${n.proc.pid}) started ${why}`);
    });
    this.pending.add(next);
    return next;
  }

  /** Resolves when every worker has exited and no replacement is waiting to start. */
  async allExited(): Promise<void> {
    for (;;) {
      await Promise.all([...this.pending]);
      const running = this.all.filter((w) => w.exit === null);
      if (running.length === 0 && this.pending.size === 0) return;
      await Promise.race([...running.map((w) => w.exited), ...this.pending]);
    }
  }

  /** kill -9 of every group still running (a drill that timed out or was interrupted). */
  async killAll(): Promise<void> {
    this.closed = true;
    this.restartFailed = false;
    for (const w of this.all.filter((x) => x.exit === null)) {
      w.killed = true;
      try {
        process.kill(-w.proc.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await Promise.all(this.all.map((w) => w.exited));
  }
}
