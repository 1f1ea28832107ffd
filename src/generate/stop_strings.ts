/**
 * Watches one row's generated text for stop strings. Text that could still be
 * the beginning of a stop string is held back, so what has been released
 * never contains (a part of) a stop string that later completes.
 */
export class StopStrings {
  private text = '';
  private released = 0;
  stopped = false;

  constructor(private readonly stops: readonly string[]) {
    if (stops.some((s) => s.length === 0)) throw new Error('stop strings must not be empty');
  }

  /** Add newly decoded text; returns the part that is now safe to show. */
  push(piece: string): string {
    if (this.stopped) return '';
    this.text += piece;
    const from = Math.max(0, this.released - Math.max(0, ...this.stops.map((s) => s.length)));
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      return this.take(cut);
    }
    return this.take(this.text.length - this.heldBack());
  }

  /** The rest, when the row ends without a stop string. */
  flush(): string {
    return this.stopped ? '' : this.take(this.text.length);
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.text.length); n > hold; n--) {
        if (this.text.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }

  private take(end: number): string {
    const out = end > this.released ? this.text.slice(this.released, end) : '';
    this.released = Math.max(this.released, end);
    return out;
  }
}
