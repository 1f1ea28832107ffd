import { backend } from '../backend/index.js';
import { UserError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** Divide logits by T: < 1 sharpens the distribution, > 1 flattens it. 0 means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probabilities sum to ≥ p (nucleus sampling). */
  topP?: number;
  /** Always take the most likely token (ignores the options above). */
  greedy?: boolean;
  /**
   * Discourage tokens already in the context (CTRL, Keskar et al. 2019, as in
   * Hugging Face): their logits are divided by this when positive and
   * multiplied by it when negative. 1 = off.
   */
  repetitionPenalty?: number;
}

/** Reject parameters that have no meaning, with a message naming the option. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (what: string) => {
    throw new UserError(what);
  };
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) bad(`temperature must be a finite number ≥ 0 (got ${o.temperature})`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 1)) bad(`top-k must be an integer ≥ 1 (got ${o.topK})`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad(`top-p must be in (0, 1] (got ${o.topP})`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) bad(`repetition penalty must be a finite number > 0 (got ${o.repetitionPenalty})`);
}

const picked = new Float32Array(1);

/**
 * Index of the largest value; the first one on ties, as torch.argmax (a NaN
 * never wins; a first value of NaN gives 0). A vocabulary's scores on a host
 * backend go to its argmaxRows (native: AVX-512, ~40× this loop; the same
 * answer, test/argmax_native.test.ts): for SmolLM2-135M the loop over 49 152
 * scores was 0.1 ms of a 3.6 ms token (docs/quantized_inference.md, ninth pass).
 */
export function argmax(x: ArrayLike<number>): number {
  if (x instanceof Float32Array && x.length >= 4096) {
    const b = backend();
    if (!b.device) {
      b.argmaxRows(x, 1, x.length, picked);
      return picked[0]!;
    }
  }
  let best = 0;
  let top = x[0]!; // kept in a local: re-reading x[best] made this 5× slower over 50k logits
  for (let i = 1; i < x.length; i++) {
    const v = x[i]!;
    if (v > top) {
      top = v;
      best = i;
    }
  }
  return best;
}

/** Apply the repetition penalty to `logits` in place for every distinct id in `context`. */
export function penalizeRepeats(logits: Float32Array, context: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(context)) {
    const l = logits[id]!;
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** The k-th largest value of x (1-based), by quickselect on a copy: O(n), no full sort. */
function kthLargest(x: Float32Array, k: number): number {
  const a = Float32Array.from(x);
  let lo = 0;
  let hi = a.length - 1;
  const want = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want]!;
  }
  return a[want]!;
}

/**
 * Token ids worth considering, most likely first (ties: lower id first): at
 * most topK of them, and none whose probability is below e^-40 of the best
 * (their total mass is far below float precision), so a 50k vocabulary is
 * not sorted in full on every step.
 */
function candidates(logits: Float32Array, t: number, topK: number | undefined): number[] {
  const max = logits[argmax(logits)]!;
  let threshold = max - 40 * t;
  if (topK !== undefined && topK < logits.length) threshold = Math.max(threshold, kthLargest(logits, topK));
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i]! >= threshold) ids.push(i);
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK !== undefined && ids.length > topK) ids.length = topK;
  return ids;
}

/**
 * The tokens sampling may choose from one row of logits, most likely first,
 * with their unnormalized probabilities (after temperature, top-k and top-p)
 * and the sum of those: what sampleToken draws from, and what
 * tokenDistribution spreads over the vocabulary.
 */
function kept(logits: Float32Array, opts: SamplingOptions): { order: number[]; probs: number[]; total: number } {
  const t = opts.temperature ?? 1;
  const order = candidates(logits, t, opts.topK !== undefined && opts.topK > 0 ? opts.topK : undefined);
  // Softmax over the candidates, largest first so the max is order[0].
  const max = logits[order[0]!]!;
  const probs = order.map((i) => Math.exp((logits[i]! - max) / t));
  let total = probs.reduce((a, b) => a + b, 0);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0;
    let n = 0;
    while (n < probs.length && cum < opts.topP * total) cum += probs[n++]!;
    probs.length = Math.max(1, n);
    total = probs.reduce((a, b) => a + b, 0);
  }
  return { order, probs, total };
}

/** Choose the next token id from one row of logits. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.greedy || opts.temperature === 0) return argmax(logits);
  const { order, probs, total } = kept(logits, opts);
  let r = rng.random() * total;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[probs.length - 1]!;
}

/**
 * The probability sampleToken gives every token of the vocabulary (greedy:
 * all of it on the argmax). Speculative decoding compares the draft's and the
 * target's distributions token by token, so it needs them whole.
 */
export function tokenDistribution(logits: Float32Array, opts: SamplingOptions): Float64Array {
  const p = new Float64Array(logits.length);
  if (opts.greedy || opts.temperature === 0) {
    p[argmax(logits)] = 1;
    return p;
  }
  const { order, probs, total } = kept(logits, opts);
  probs.forEach((q, i) => (p[order[i]!] = q / total));
  return p;
}

/** Draw an index from weights w (≥ 0, not all 0; they need not sum to 1). */
export function sampleIndex(w: ArrayLike<number>, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < w.length; i++) total += w[i]!;
  let r = rng.random() * total;
  let last = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i]! <= 0) continue;
    last = i;
    r -= w[i]!;
    if (r < 0) return i;
  }
  return last; // rounding left r a hair above 0: the last token with weight
}
