import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { encodedRows, type Encoded, type Transformer } from './transformer.js';

/**
 * Log-probabilities [n, vocab] of the next token for n hypotheses: hypothesis
 * i continues source row rows[i] and has read prefixes[i·t … i·t + t) so far
 * (BOS first). Decoding needs nothing else from a model, so the search below
 * can be tested on hand-made distributions.
 */
export type NextTokenLogProbs = (rows: Int32Array, prefixes: Int32Array, t: number) => Float32Array;

/**
 * NextTokenLogProbs for a model on any backend: a computation
 * (tensor/value_reads.ts) that yields the tensors whose values it needs —
 * a device's scores are read back, awaited — and returns the
 * log-probabilities. The searches below are written once over it: driven
 * by valuesNow on a host (greedyDecode, beamSearch), by valuesAwaited on a
 * device (translateAsync).
 */
export type NextTokenReads = (rows: Int32Array, prefixes: Int32Array, t: number) => ValueReads<Float32Array>;

export interface DecodeOptions {
  bos: number;
  eos: number;
  /** Most tokens to generate, EOS included. */
  maxLength: number;
}

export interface BeamOptions extends DecodeOptions {
  beamWidth: number;
  /** α of the length penalty; 0 ranks by total log-probability. */
  lengthPenalty: number;
}

export interface Hypothesis {
  /** Generated tokens, without BOS and EOS. */
  tokens: number[];
  /** Sum of the log-probabilities of the tokens, EOS included when finished. */
  logProb: number;
  /** logProb / lengthPenalty(length): what beam search ranks by. */
  score: number;
  /** Whether the model ended it with EOS (rather than reaching maxLength). */
  finished: boolean;
}

/**
 * GNMT's length penalty (Wu et al. 2016): lp(len) = ((5 + len) / 6)^α, len
 * counting the generated tokens with EOS. Log-probabilities only fall as a
 * sequence grows, so without it beam search favours short outputs; α = 0 turns
 * it off, α = 1 is close to ranking by the mean log-probability per token.
 */
export function lengthPenalty(length: number, alpha: number): number {
  return Math.pow((5 + length) / 6, alpha);
}

/** Pick the most likely token at every step, for all sources at once. */
export function greedyDecode(next: NextTokenLogProbs, nSources: number, o: DecodeOptions): Hypothesis[] {
  return valuesNow(greedyReads(hostReads(next), nSources, o));
}

/** greedyDecode over log-probabilities from any backend. */
export function* greedyReads(next: NextTokenReads, nSources: number, o: DecodeOptions): ValueReads<Hypothesis[]> {
  const hyps: Hypothesis[] = Array.from({ length: nSources }, () => ({ tokens: [], logProb: 0, score: 0, finished: false }));
  let alive = Array.from({ length: nSources }, (_, i) => i);
  for (let t = 1; t <= o.maxLength && alive.length; t++) {
    const lp = yield* next(Int32Array.from(alive), prefixes(alive.map((i) => hyps[i]!.tokens), o.bos), t);
    const V = lp.length / alive.length;
    alive = alive.filter((src, k) => {
      const row = lp.subarray(k * V, (k + 1) * V);
      const tok = argmax(row);
      const h = hyps[src]!;
      h.logProb += row[tok]!;
      if (tok === o.eos) h.finished = true;
      else h.tokens.push(tok);
      return !h.finished;
    });
  }
  for (const h of hyps) h.score = h.logProb;
  return hyps;
}

/**
 * Beam search for one source: keep the beamWidth best prefixes; extend each
 * by every token and rank the extensions by total log-probability; a
 * candidate ending in EOS among the best beamWidth is set aside as finished,
 * the best others form the next beam. Stops at maxLength, or once beamWidth
 * hypotheses have finished and the best of them scores at least as well as
 * every prefix still open (exact for α = 0, where scores only fall as a
 * prefix grows; a heuristic otherwise). Returns the best finished hypothesis
 * by length-penalised score. With beamWidth 1 this is exactly greedy decoding.
 */
export function beamSearch(next: NextTokenLogProbs, source: number, o: BeamOptions): Hypothesis {
  return valuesNow(beamReads(hostReads(next), source, o));
}

/** beamSearch over log-probabilities from any backend. */
export function* beamReads(next: NextTokenReads, source: number, o: BeamOptions): ValueReads<Hypothesis> {
  const K = Math.max(1, Math.floor(o.beamWidth));
  let beam: Hypothesis[] = [{ tokens: [], logProb: 0, score: 0, finished: false }];
  const done: Hypothesis[] = [];
  const best = (hs: Hypothesis[]): Hypothesis => hs.reduce((a, h) => (h.score > a.score ? h : a));
  for (let t = 1; t <= o.maxLength && beam.length; t++) {
    const lp = yield* next(new Int32Array(beam.length).fill(source), prefixes(beam.map((h) => h.tokens), o.bos), t);
    const V = lp.length / beam.length;
    const totals = lp.map((v, flat) => v + beam[Math.floor(flat / V)]!.logProb);
    const parents = beam;
    beam = [];
    topK(totals, 2 * K).forEach((flat, rank) => {
      const parent = parents[Math.floor(flat / V)]!;
      const tok = flat % V;
      const h = { tokens: parent.tokens, logProb: totals[flat]!, score: totals[flat]! / lengthPenalty(t, o.lengthPenalty), finished: tok === o.eos };
      if (h.finished) {
        if (rank < K) done.push(h);
      } else if (beam.length < K) beam.push({ ...h, tokens: [...parent.tokens, tok] });
    });
    if (done.length >= K && (!beam.length || best(done).score >= best(beam).score)) break;
  }
  return best(done.length ? done : beam);
}

/** The NextTokenLogProbs of a trained Transformer for encoded sources (encode once, decode many; host backends). */
export function modelLogProbs(model: Transformer, enc: Encoded): NextTokenLogProbs {
  const reads = modelLogProbReads(model, enc);
  return (rows, pre, t) => valuesNow(reads(rows, pre, t));
}

/**
 * modelLogProbs on any backend. A step's pass is scratch on a device
 * (everything but the scores goes back to the pool at once); the scores
 * [n, vocab] are read back and normalised on the host, where the search
 * ranks them.
 */
export function modelLogProbReads(model: Transformer, enc: Encoded): NextTokenReads {
  return function* (rows, pre, t) {
    const logits = withDeviceScratch(() => noGrad(() => model.decodeStep(encodedRows(enc, rows), { ids: pre, shape: [rows.length, t] })), (l) => [l.storage]);
    const [z] = yield [logits];
    return logSoftmaxRows(z!, model.config.vocab_size);
  };
}

/** A host callback as a computation that reads nothing. */
function hostReads(next: NextTokenLogProbs): NextTokenReads {
  // eslint-disable-next-line require-yield
  return function* (rows, pre, t) {
    return next(rows, pre, t);
  };
}

/** BOS then each token list, as one [n, t] row-major array (all lists the same length). */
function prefixes(lists: number[][], bos: number): Int32Array {
  const t = (lists[0]?.length ?? 0) + 1;
  const out = new Int32Array(lists.length * t);
  lists.forEach((l, i) => {
    out[i * t] = bos;
    out.set(l, i * t + 1);
  });
  return out;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Indices of the k largest values, largest first (ties: lower index first, as argmax). */
function topK(a: Float32Array, k: number): number[] {
  const idx = Array.from(a.keys());
  idx.sort((x, y) => a[y]! - a[x]! || x - y);
  return idx.slice(0, k);
}

function logSoftmaxRows(z: Float32Array, V: number): Float32Array {
  const out = new Float32Array(z.length);
  for (let r = 0; r < z.length / V; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, z[r * V + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[r * V + v]! - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < V; v++) out[r * V + v] = z[r * V + v]! - lse;
  }
  return out;
}
