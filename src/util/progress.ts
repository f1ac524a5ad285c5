/**
 * Progress for long work: a bar rewritten in place on a terminal, plain lines when piped
 * (one per finished unit, so logs stay readable).
 */
export interface ProgressLine {
  /** Replaces the live line (terminal only). */
  update(text: string): void;
  /** Prints a permanent line (terminal and pipe). */
  line(text: string): void;
  done(): void;
}

export function bar(fraction: number, width = 24): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

export function progressLine(stream: NodeJS.WriteStream = process.stderr): ProgressLine {
  const tty = Boolean(stream.isTTY) && !process.env.CI;
  let live = false;
  let last = 0;
  return {
    update(text) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100) return; // a terminal needs no more than 10 frames a second
      last = now;
      const cols = stream.columns ?? 100;
      stream.write(`\r\x1b[2K${text.slice(0, cols - 1)}`);
      live = true;
    },
    line(text) {
      if (live) stream.write('\r\x1b[2K');
      live = false;
      stream.write(`${text}\n`);
    },
    done() {
      if (live) stream.write('\r\x1b[2K');
      live = false;
    },
  };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
