/**
 * One progress line on stderr: redrawn in place with `\r` on a terminal, otherwise one line per
 * 10% so logs stay short. Shows step/total, loss, tokens/s and the time left.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function formatRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(1)}M`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)}k`;
  return perSec.toFixed(0);
}

export class Progress {
  private readonly t0 = performance.now();
  private tokens = 0;
  private lastDecile = 0;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly out: ProgressStream = process.stderr,
  ) {}

  update(step: number, loss: number, tokens: number): void {
    this.tokens += tokens;
    const elapsed = (performance.now() - this.t0) / 1000;
    const eta = step > 0 ? (elapsed / step) * (this.total - step) : Infinity;
    const rate = elapsed > 0 ? this.tokens / elapsed : 0;
    const width = String(this.total).length;
    const text = `${String(step).padStart(width)}/${this.total} loss ${loss.toFixed(4)} | ${formatRate(rate)} tok/s | ETA ${formatDuration(eta)}`;
    if (this.out.isTTY) {
      const barWidth = 20;
      const filled = Math.round((barWidth * step) / this.total);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${text}`;
      const cols = this.out.columns ?? 0;
      this.out.write(`\r${cols > 1 ? line.slice(0, cols - 1) : line}\x1b[K`);
      this.drawn = true;
      return;
    }
    const decile = Math.floor((10 * step) / this.total);
    if (decile > this.lastDecile || step === this.total) {
      this.lastDecile = decile;
      this.out.write(`step ${text}\n`);
    }
  }

  /** A line of its own (a skipped step), leaving the progress line to be redrawn after it. */
  note(text: string): void {
    this.done();
    this.out.write(`${text}\n`);
  }

  /** Ends the redrawn line so later output starts on a fresh one. */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
