/**
 * Writes that a full or failing disk must not turn into a failed trial. A checkpoint write that
 * fails with ENOSPC, EDQUOT, EIO or EROFS is retried with backoff for a bounded time (the
 * previous checkpoint stays as it was: a new one goes to a new directory and the state that
 * points to it is replaced atomically, last); after that the trial stops with StorageUnavailable,
 * which the worker treats as transient: the trial goes back to the queue and resumes from its
 * last good checkpoint wherever it runs next.
 */

/** Error codes of a disk that is full or failing, rather than of a bug. */
const STORAGE_CODES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  EROFS: 'the file system is read-only',
};

export function storageProblem(err: unknown): { code: string; path: string | null; what: string } | null {
  const e = err as NodeJS.ErrnoException | null;
  const code = e?.code;
  if (!code || !(code in STORAGE_CODES)) return null;
  return { code, path: e.path ?? null, what: STORAGE_CODES[code]! };
}

export class StorageUnavailable extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    readonly waitedS: number,
  ) {
    super(`cannot write ${path}: ${code} (${STORAGE_CODES[code] ?? code}) for ${waitedS.toFixed(0)} s; the trial goes back to the queue and resumes from its last good checkpoint`);
    this.name = 'StorageUnavailable';
  }
}

/** How long a checkpoint write is retried (SWEEP_DISK_WAIT_S, default 300 s). */
export function diskWaitSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SWEEP_DISK_WAIT_S;
  const n = raw === undefined || raw === '' ? 300 : Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : 300;
}

/**
 * Runs `write` until it succeeds; storage errors are retried (1, 2, 4 ... at most 30 s apart)
 * for `waitS` seconds, each said through `log`; other errors are thrown at once. `cleanup` runs
 * after each failed attempt (removing what it left half-written frees space too).
 */
export async function writeDurably<T>(
  what: string,
  write: () => Promise<T> | T,
  opts: {
    waitS: number;
    log: (msg: string) => void;
    /** Where it writes (a directory), named when the error does not name a file. */
    where: string;
    cleanup?: () => void;
    sleep?: (ms: number) => Promise<void>;
  },
): Promise<T> {
  const start = Date.now();
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let n = 0; ; n++) {
    try {
      const v = await write();
      if (n > 0) opts.log(`${what}: written after ${n} failed attempt(s)`);
      return v;
    } catch (err) {
      const p = storageProblem(err);
      if (!p) throw err;
      try {
        opts.cleanup?.();
      } catch {
        // what could not be removed is removed by the next attempt or the next state write
      }
      const waited = (Date.now() - start) / 1000;
      const path = p.path ?? opts.where;
      if (waited >= opts.waitS) throw new StorageUnavailable(path, p.code, waited);
      const delay = Math.min(30_000, 1000 * 2 ** n, Math.max(100, (opts.waitS - waited) * 1000));
      opts.log(`${what}: ${p.code} (${p.what}) writing ${path}; retrying in ${(delay / 1000).toFixed(1)} s (for up to ${opts.waitS} s)`);
      await sleep(delay);
    }
  }
}
