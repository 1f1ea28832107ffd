/**
 * How many tokens the draft should propose per speculative round (k), chosen
 * as decoding goes from what the rounds so far measured.
 *
 * If each drafted token is kept with probability α (independently, once the
 * ones before it were kept), a round of k drafts emits on average
 * 1 + α + α² + … + α^k = (1 − α^(k+1)) / (1 − α) tokens, and costs k draft
 * steps plus one verifying pass of the target: k·d + v. The best k maximises
 * tokens per second, (1 − α^(k+1)) / ((1 − α)·(k·d + v)): long drafts when
 * the draft agrees with the target and is cheap, short ones when it is not.
 *
 * α is estimated as kept / examined drafts, where a round examines its kept
 * drafts and, if it stopped early, the one refused (the maximum-likelihood
 * estimate for that geometric model); d and v are the measured seconds per
 * draft step and per verifying pass. All three are running averages that
 * forget old rounds (DECAY), so k follows a text that gets easier or harder.
 *
 * Greedy output does not depend on k. Sampled output is distributed exactly
 * as the target's whatever k is, but which tokens a seed gives depends on k:
 * with an adaptive k (timed, so machine-dependent) a seed no longer
 * reproduces a run exactly.
 */
const DECAY = 0.9;

export class DraftLength {
  private kept = 1; // a prior of one kept draft in two examined
  private examined = 2;
  private draftSeconds = 0; // per draft step; 0 until measured
  private verifySeconds = 0; // per verifying pass
  private k: number;

  /** `max`: the longest draft allowed; `initial`: k until the first round is measured. */
  constructor(readonly max: number, initial = Math.min(4, max)) {
    this.k = Math.max(1, Math.min(max, initial));
  }

  /** The draft length for the next round. */
  get next(): number {
    return this.k;
  }

  /** The running acceptance estimate α. */
  get acceptance(): number {
    return this.kept / this.examined;
  }

  /** After a round, for each of its rows: drafts proposed and drafts kept. */
  observeRow(drafted: number, kept: number): void {
    this.kept = DECAY * this.kept + kept;
    this.examined = DECAY * this.examined + kept + (kept < drafted ? 1 : 0);
  }

  /** After a round: its draft steps (one per drafted position, shared by the rows), their seconds, and the verifying pass's. Then picks the next k. */
  observeTimes(draftSteps: number, draftSeconds: number, verifySeconds: number): void {
    const avg = (old: number, x: number) => (old === 0 ? x : DECAY * old + (1 - DECAY) * x);
    if (draftSteps > 0) this.draftSeconds = avg(this.draftSeconds, draftSeconds / draftSteps);
    this.verifySeconds = avg(this.verifySeconds, verifySeconds);
    if (this.verifySeconds > 0) this.k = bestDraftLength(this.acceptance, this.draftSeconds / this.verifySeconds, this.max);
  }
}

/** argmax over k in 1 … max of expected tokens per unit of time, with α the acceptance and r = draft step / verifying pass. */
export function bestDraftLength(alpha: number, r: number, max: number): number {
  let best = 1;
  let bestRate = -Infinity;
  for (let k = 1; k <= max; k++) {
    const tokens = alpha >= 1 ? k + 1 : (1 - alpha ** (k + 1)) / (1 - alpha);
    const rate = tokens / (k * r + 1);
    if (rate > bestRate) [best, bestRate] = [k, rate];
  }
  return best;
}
