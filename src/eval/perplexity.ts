import { UserError } from '../util/errors.js';
import type { CausalLM } from '../models/causal_lm.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';

export interface PerplexityOptions {
  /** Tokens of context per window (default and maximum: block_size). */
  window?: number;
  /**
   * New tokens scored per window (default: window, i.e. non-overlapping
   * windows). Smaller strides give every scored token more context, as in
   * Hugging Face's perplexity guide, at window/stride times the cost.
   */
  stride?: number;
  /** Windows per forward pass. */
  batchSize?: number;
}

export interface PerplexityResult {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  /** e^loss: the model is as unsure as a uniform choice among this many tokens. */
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
}

/**
 * Cross-entropy of a model on a token stream, each token predicted from the
 * tokens before it in its window. Every token after the first is scored
 * exactly once. Host backends; perplexityAsync runs on any backend.
 */
export function perplexity(model: CausalLM, ids: Int32Array, opts: PerplexityOptions = {}): PerplexityResult {
  return inEvalMode(model, () => valuesNow(windowLosses(model, ids, opts)));
}

/** perplexity on any backend: on a device each batch of windows reads back one number, its loss. */
export function perplexityAsync(model: CausalLM, ids: Int32Array, opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  return inEvalMode(model, () => valuesAwaited(windowLosses(model, ids, opts)));
}

/** The windows in batches, each batch's mean loss yielded to be read (tensor/value_reads.ts); returns the result. */
function* windowLosses(model: CausalLM, ids: Int32Array, opts: PerplexityOptions): ValueReads<PerplexityResult> {
  const T = opts.window ?? model.config.block_size;
  const stride = opts.stride ?? T;
  const batch = opts.batchSize ?? 4;
  if (!(Number.isInteger(T) && T >= 1 && T <= model.config.block_size)) throw new UserError(`window must be an integer in 1 … ${model.config.block_size} (got ${T})`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= T)) throw new UserError(`stride must be an integer in 1 … ${T} (got ${stride})`);
  if (ids.length < 2) throw new UserError(`the text has ${ids.length} token${ids.length === 1 ? '' : 's'}; perplexity needs at least 2`);
  const windows = planWindows(ids.length, T, stride);
  let sum = 0;
  let count = 0;
  for (let w0 = 0; w0 < windows.length; w0 += batch) {
    const group = windows.slice(w0, w0 + batch);
    const len = Math.max(...group.map((w) => w.end - w.begin));
    const x = new Int32Array(group.length * len);
    const y = new Int32Array(group.length * len).fill(-1); // -1: not scored (padding, or context already scored)
    group.forEach((w, g) => {
      for (let t = 0; t < w.end - w.begin; t++) {
        x[g * len + t] = ids[w.begin + t]!;
        if (w.begin + t + 1 >= w.firstScored) y[g * len + t] = ids[w.begin + t + 1]!;
      }
    });
    const n = y.reduce((c, v) => c + (v >= 0 ? 1 : 0), 0);
    // On a device the pass is scratch: everything but the loss goes back to the pool at once.
    const loss = withDeviceScratch(() => noGrad(() => model.forward(x, [group.length, len], y).loss!), (t) => [t.storage]);
    const [value] = yield [loss];
    sum += value![0]! * n;
    count += n;
  }
  const loss = sum / count;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}

/** Windows [begin, end) of inputs; targets from index firstScored on are new in this window. */
function planWindows(n: number, T: number, stride: number): Array<{ begin: number; end: number; firstScored: number }> {
  const out = [];
  let scored = 1; // token 0 has no context and is never predicted
  while (scored < n) {
    const end = Math.min(n - 1, scored - 1 + stride); // inputs up to end−1 predict targets up to end
    const begin = Math.max(0, end - T);
    out.push({ begin, end, firstScored: scored });
    scored = end + 1;
  }
  return out;
}
