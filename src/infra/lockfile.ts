/**
 * Pid lock files: how local processes agree on who runs a shared local service (the embedded
 * database's server, the private redis-server) without a server to ask.
 *
 * A lock is a JSON file with at least { pid }. It is created atomically (a complete file
 * linked into place, which fails if one exists), so readers never see it half-written, and
 * replaced atomically (rename). A lock whose pid is not alive is stale; it is removed only
 * under a short-lived guard file, after reading it again, so two processes that both found
 * it stale never both remove it and both win.
 */
import { existsSync, readFileSync } from 'node:fs';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';

const STALE_MS = 10_000;

export interface PidFile {
  pid: number;
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process whose parent has not reaped it (an orphan under a container's init
  // often is one) still answers signals: it is a zombie, and dead for our purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (not Linux): trust the signal
  }
}

export async function readLock<T extends PidFile = PidFile>(file: string): Promise<T | null> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as T;
    return typeof info?.pid === 'number' ? info : null;
  } catch {
    return null;
  }
}

/** Create `file` holding `content` if it does not exist; atomic, and never half-written. */
export async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, content);
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Replace `file`'s content atomically. */
export async function replaceFile(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

async function ageMs(file: string): Promise<number> {
  const s = await stat(file).catch(() => null);
  return s ? Date.now() - s.mtimeMs : 0;
}

/**
 * Try once to take the lock, writing `content` (which must hold this process's pid).
 * True: this process holds it now. False: a live process holds it, or another process is
 * busy removing a stale one (try again shortly).
 */
export async function tryAcquire(
  lockFile: string,
  content: PidFile & Record<string, unknown> = { pid: process.pid },
): Promise<boolean> {
  const mine = JSON.stringify(content);
  if (await createExclusive(lockFile, mine)) return true;
  const held = await readLock(lockFile);
  if (held && isAlive(held.pid)) return false;
  // Unreadable but present: trust that it is stale only once it is old.
  if (!held && existsSync(lockFile) && (await ageMs(lockFile)) < STALE_MS) return false;
  const guard = `${lockFile}.steal`;
  if (!(await createExclusive(guard, String(process.pid)))) {
    // Someone else is removing it; a guard left by a process that died is cleared when old.
    if ((await ageMs(guard)) > STALE_MS) await unlink(guard).catch(() => {});
    return false;
  }
  try {
    const again = await readLock(lockFile);
    const stillStale = again === null || (again.pid === held?.pid && !isAlive(again.pid));
    if (stillStale) await unlink(lockFile).catch(() => {});
  } finally {
    await unlink(guard).catch(() => {});
  }
  return createExclusive(lockFile, mine);
}

/** Remove the lock if this process holds it. */
export async function releaseLock(lockFile: string): Promise<void> {
  const held = await readLock(lockFile);
  if (held?.pid === process.pid) await unlink(lockFile).catch(() => {});
}
