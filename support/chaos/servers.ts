/**
 * Servers of a drill's own, so the ones other work uses (the machine's Postgres on 5432, its
 * Redis on 6379) are never stopped or restarted: a private Postgres cluster (initdb into a
 * directory, run as the `postgres` user when this runs as root), a private redis-server with
 * an append-only file, and a small tmpfs for artifacts that a drill can fill.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '../wait.ts';
import { portOpen } from '../ports.ts';

/** The newest /usr/lib/postgresql/<version>/bin, or '' when there is none (binaries on PATH). */
function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return '';
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(a) - Number(b));
  return versions.length ? path.join(root, versions.at(-1)!, 'bin') : '';
}

/** Whether initdb and pg_ctl can be found (a drill needs a cluster of its own). */
export function havePostgresServer(): boolean {
  const bin = postgresBin();
  return bin !== '' || spawnSync('initdb', ['--version']).status === 0;
}

/** A Postgres cluster in `dir` on 127.0.0.1:`port`, trust authentication, user postgres. */
export class PrivatePostgres {
  readonly bin = postgresBin();
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  private run(cmd: string, args: string[]): void {
    const exe = this.bin ? path.join(this.bin, cmd) : cmd;
    const asRoot = process.getuid?.() === 0;
    const r = asRoot ? spawnSync('runuser', ['-u', 'postgres', '--', exe, ...args]) : spawnSync(exe, args);
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${String(r.stderr).trim()}`);
  }

  /** A new, empty cluster (whatever `dir` held is removed). */
  init(): void {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    if (process.getuid?.() === 0) spawnSync('chown', ['postgres', this.dir]);
    this.run('initdb', ['-D', path.join(this.dir, 'data'), '-A', 'trust', '-U', 'postgres']);
  }

  start(): void {
    this.run('pg_ctl', ['-D', path.join(this.dir, 'data'), '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`, '-l', path.join(this.dir, 'log'), '-w', 'start']);
  }

  stop(): void {
    this.run('pg_ctl', ['-D', path.join(this.dir, 'data'), '-m', 'fast', '-w', 'stop']);
  }

  /** Stops the server if it runs; never throws. */
  stopQuietly(): void {
    try {
      this.stop();
    } catch {
      /* not running */
    }
  }

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** The URL of database `name` on this server. */
  databaseUrl(name: string): string {
    const u = new URL(this.url);
    u.pathname = `/${name}`;
    return u.toString();
  }
}

/** A redis-server child process on 127.0.0.1:`port`, append-only file in `dir`. */
export class PrivateRedis {
  proc: ChildProcess | null = null;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async start(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--dir', this.dir, '--save', ''], { stdio: 'ignore' });
    await waitFor(() => portOpen(this.port), `redis on ${this.port}`, 20_000);
  }

  /** SIGTERM, which makes redis-server flush its append-only file before it exits. */
  async stop(): Promise<void> {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
}

/**
 * A small tmpfs mounted at `dir`, which a drill fills with one file and empties again. Mounting
 * needs root; `mount()` returns the reason when it cannot, and the caller skips the fault.
 */
export class ArtifactDisk {
  mounted = false;
  private filler: string;
  constructor(
    readonly dir: string,
    readonly sizeMiB: number,
  ) {
    this.filler = path.join(dir, '.chaos-filler');
  }

  /** Mounts the tmpfs; null when mounted, else why it was not. */
  mount(): string | null {
    mkdirSync(this.dir, { recursive: true });
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${this.sizeMiB}m`, 'tmpfs', this.dir]);
    if (r.status !== 0) return `mount -t tmpfs failed (exit ${r.status}): ${String(r.stderr).trim() || String(r.error ?? '')}`;
    this.mounted = true;
    return null;
  }

  /** Bytes still free. */
  freeBytes(): number {
    const s = statfsSync(this.dir);
    return s.bavail * s.bsize;
  }

  /** Fills the disk with one file of zeros until a write fails; returns the bytes written. */
  fill(): number {
    const fd = openSync(this.filler, 'w');
    const chunk = Buffer.alloc(1 << 20);
    let written = 0;
    try {
      for (;;) {
        try {
          const n = writeSync(fd, chunk);
          written += n;
          if (n < chunk.length) break;
        } catch {
          break; // ENOSPC: full
        }
      }
      // The last few blocks a megabyte write could not take.
      for (;;) {
        try {
          if (writeSync(fd, chunk, 0, 4096) < 4096) break;
          written += 4096;
        } catch {
          break;
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  empty(): void {
    rmSync(this.filler, { force: true });
  }

  unmount(): void {
    if (!this.mounted) return;
    this.empty();
    const r = spawnSync('umount', [this.dir]);
    if (r.status !== 0) spawnSync('umount', ['-l', this.dir]);
    this.mounted = false;
  }
}
