/**
 * One progress bar per lane of a race on stderr. On a terminal the block of lines is redrawn in
 * place (cursor up, one line per lane); otherwise each lane prints a line per 25% so logs stay short.
 */
import { formatRate } from './progress';
import type { ProgressStream } from './progress';

interface Row {
  name: string;
  step: number;
  loss: number;
  tokensPerSec: number;
  note: string;
  quarter: number;
}

export class RaceProgress {
  private readonly rows = new Map<string, Row>();
  private drawnLines = 0;

  constructor(
    private readonly steps: number,
    private readonly out: ProgressStream = process.stderr,
  ) {}

  lane(id: string, name: string): void {
    this.rows.set(id, { name, step: 0, loss: NaN, tokensPerSec: NaN, note: '', quarter: 0 });
    this.draw();
  }

  update(id: string, step: number, loss: number, tokensPerSec: number): void {
    const r = this.rows.get(id);
    if (!r) return;
    Object.assign(r, { step, loss, tokensPerSec });
    if (this.out.isTTY) return this.draw();
    const q = Math.floor((4 * step) / this.steps);
    if (q > r.quarter) {
      r.quarter = q;
      this.out.write(`${this.text(r)}\n`);
    }
  }

  note(id: string, note: string): void {
    const r = this.rows.get(id);
    if (!r) return;
    r.note = note;
    if (this.out.isTTY) this.draw();
    else this.out.write(`${r.name}: ${note}\n`);
  }

  private text(r: Row): string {
    const width = String(this.steps).length;
    const loss = Number.isFinite(r.loss) ? r.loss.toFixed(4) : '-';
    const rate = Number.isFinite(r.tokensPerSec) ? `${formatRate(r.tokensPerSec)} tok/s` : '';
    return `${r.name.padEnd(16)} ${String(r.step).padStart(width)}/${this.steps} loss ${loss} ${rate} ${r.note}`.trimEnd();
  }

  private draw(): void {
    if (!this.out.isTTY) return;
    const cols = Math.max(20, (this.out.columns ?? 100) - 1);
    const barWidth = 16;
    const lines = [...this.rows.values()].map((r) => {
      const filled = Math.round((barWidth * r.step) / this.steps);
      return `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${this.text(r)}`.slice(0, cols);
    });
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    this.out.write(`${up}${lines.map((l) => `\r${l}\x1b[K`).join('\n')}\n`);
    this.drawnLines = lines.length;
  }
}
