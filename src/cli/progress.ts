import type { StepInfo } from '../train/loop.js';
import type { EvalInfo } from '../train/trainer.js';

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * Training progress on stderr: a bar redrawn in place on a terminal, or one
 * line every `logInterval` steps when the output is a file or a pipe.
 */
export class Progress {
  private readonly tty: boolean;

  constructor(private readonly logInterval: number, private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(stream.isTTY);
  }

  step(s: StepInfo): void {
    const width = 24;
    const filled = Math.round((width * s.step) / Math.max(1, s.maxIters));
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const text = `step ${s.step}/${s.maxIters} ${bar} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(s.tokensPerSecond)} tok/s ETA ${formatSeconds(s.eta)}`;
    if (this.tty) this.stream.write(`\r\x1b[2K${text}`);
    else if (s.step % this.logInterval === 0 || s.step === s.maxIters) this.stream.write(text + '\n');
  }

  eval(e: EvalInfo): void {
    const line = `val step ${e.step}: train loss ${e.trainLoss.toFixed(4)} (ppl ${Math.exp(e.trainLoss).toFixed(2)}), val loss ${e.valLoss.toFixed(4)} (ppl ${Math.exp(e.valLoss).toFixed(2)})`;
    this.line(line);
  }

  line(text: string): void {
    this.stream.write(this.tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
  }
}
