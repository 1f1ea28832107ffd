import { distinctKeys, groupOf, type Pair } from '../data/positive_pairs.js';
import { shuffled } from '../data/image_set.js';
import { evaluateRecall, evaluateRecallAsync, reportDims } from '../eval/recall.js';
import { saveEmbedder } from '../io/embedder_dir.js';
import { UserError } from '../util/errors.js';
import { Embedder } from '../models/embedder.js';
import { parseEmbedderConfig } from '../models/embedder_config.js';
import { padBatch, type PaddedBatch } from '../models/pad_batch.js';
import { AdamW } from '../optim/adamw.js';
import { onHost } from '../nn/placement.js';
import { backend } from '../backend/index.js';
import { slice } from '../tensor/ops/shape.js';
import { buildTokenizer, DEFAULT_VOCAB_SIZE } from '../tokenizers/index.js';
import { WordTokenizer } from '../tokenizers/word.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { Rng } from '../util/rng.js';
import { MASKED, matryoshkaInfoNCE } from './contrastive.js';
import { trainedPrefixes, type EmbedderOptions } from './embedder_options.js';
import { runTraining, runTrainingAsync, tokenStepInfo, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
import type { Objective } from './step.js';

export interface EmbedderRun {
  train: readonly Pair[];
  heldOut: readonly Pair[];
  /** How the pairs were made, recorded in training.json as "pairs" (so an evaluation can rebuild the held-out split). */
  pairs?: unknown;
  options: EmbedderOptions;
  /** Checkpoint directory, written at every evaluation and at the end. */
  out?: string;
}

export interface RecallInfo {
  step: number;
  /** Mean training loss since the previous evaluation. */
  loss: number;
  /** Held-out recall@1 by prefix dimension. */
  recall: Map<number, number>;
}

export type EmbedderEvents = TrainingEvents<{ params: number; vocabSize: number; trainPairs: number; evalPairs: number; dims: number[] }, RecallInfo>;

export interface EmbedderSummary {
  model: Embedder;
  tokenizer: Tokenizer;
  step: number;
  recall: Map<number, number>;
  seconds: number;
}

/**
 * Contrastive training of an Embedder: each step embeds B anchors and their
 * B positives in one forward pass, sums InfoNCE over the Matryoshka prefixes,
 * and takes an AdamW step on the warm-up + cosine schedule. Held-out recall@1
 * at every reported prefix is measured every evalInterval steps.
 * Host backends; trainEmbedderAsync trains on any backend.
 */
export function trainEmbedder(run: EmbedderRun, events: EmbedderEvents = {}): EmbedderSummary {
  const t = embedderTrainingRun(run, events);
  return t.summary(runTraining(t.loop));
}

/**
 * trainEmbedder on any backend. On a device backend (webgpu) the steps run
 * on the device (each step's loss is read back, for the evaluation lines'
 * mean loss), and so does the recall evaluation (only the vectors read
 * back); the checkpoint is saved from host copies of the weights, read back
 * once each time (onHost).
 */
export async function trainEmbedderAsync(run: EmbedderRun, events: EmbedderEvents = {}): Promise<EmbedderSummary> {
  const t = embedderTrainingRun(run, events);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function embedderTrainingRun(run: EmbedderRun, events: EmbedderEvents): { loop: TrainingLoop<EmbedderBatch>; summary(result: LoopResult): EmbedderSummary } {
  const o = run.options;
  const { model, tokenizer } = buildModel(run);
  const dims = model.config.matryoshka_dims;
  const evalSet = distinctKeys(run.heldOut, o.evalPairs);
  if (evalSet.length < 2) throw new UserError(`only ${evalSet.length} distinct held-out pair: recall needs at least 2`);
  const reported = reportDims(model.config.d_model, dims);
  const encoded = run.train.map((p) => [tokenizer.encode(p.anchor), tokenizer.encode(p.positive)] as const);
  // Hard negatives (Pair.negative): every pair has one, or none is used.
  const withNegatives = run.train.length > 0 && run.train.every((p) => p.negative !== undefined);
  const negatives = withNegatives ? run.train.map((p) => tokenizer.encode(p.negative!)) : [];
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: o.weightDecay });
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: o.warmupSteps, decayIters: o.steps };
  const batchRng = new Rng(o.seed + 100);
  const groups = groupIndex(run.train);
  const history: Array<{ step: number; loss: number; recall: Record<string, number> }> = [];
  events.onStart?.({ params: model.numParameters(), vocabSize: tokenizer.vocabSize, trainPairs: run.train.length, evalPairs: evalSet.length, dims: reported });

  let seconds = 0;
  let lossSum = 0;
  let lossCount = 0;
  let recall = new Map<number, number>();
  // A batch is B anchors then their B positives (then their B hard negatives), embedded in one forward pass.
  const objective: Objective<EmbedderBatch> = {
    loss: (batch) => {
      const B = batch.pairs;
      const emb = model.forward(batch.ids, [batch.B, batch.T], batch.padding);
      return matryoshkaInfoNCE(slice(emb, 0, 0, B), slice(emb, 0, B, batch.B), dims, o, batch.mask).loss;
    },
  };
  model.train();
  const loop: TrainingLoop<EmbedderBatch> = {
    opt,
    objective,
    maxSteps: o.steps,
    schedule,
    gradClip: o.gradClip,
    nextBatches: () => {
      const rows = sampleBatch(run.train, groups, Math.min(o.batchSize, run.train.length), batchRng);
      const seqs = [...rows.map((i) => encoded[i]![0]), ...rows.map((i) => encoded[i]![1]), ...(withNegatives ? rows.map((i) => negatives[i]!) : [])];
      return [{ ...padBatch(seqs, model.config.max_len), pairs: rows.length, ...(withNegatives ? { mask: negativeMask(run.train, rows) } : {}) }];
    },
    size: (b) => b.padding.reduce((n, f) => n + (f ? 0 : 1), 0),
    evalInterval: o.evalInterval,
    evaluate: (step) => {
      const record = (r: Map<number, number>): void => {
        recall = r;
        const loss = lossCount ? lossSum / lossCount : NaN;
        lossSum = lossCount = 0;
        history.push({ step, loss, recall: Object.fromEntries(recall) });
        events.onEval?.({ step, loss, recall });
      };
      // On a device the held-out pairs are embedded there (the weights stay put).
      return backend().device ? evaluateRecallAsync(model, tokenizer, evalSet, reported).then(record) : record(evaluateRecall(model, tokenizer, evalSet, reported));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const record = { model_type: 'embedder', pairs: run.pairs ?? null, options: o, step, seconds, history };
            return onHost(model.parameters(), () => saveEmbedder(run.out!, model, tokenizer, { 'training.json': JSON.stringify(record, null, 2) + '\n' }));
          },
        }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      // Report the loss per prefix (mean over prefixes) so runs with and without Matryoshka read alike.
      const loss = p.loss / dims.length;
      lossSum += loss;
      lossCount++;
      seconds += p.seconds;
      events.onStep?.(tokenStepInfo({ ...p, loss }));
    },
  };
  return { loop, summary: (result) => ({ model, tokenizer, step: result.step, recall, seconds }) };
}

/** A fresh model and a tokenizer learned from the pairs' text (vocabulary only: no labels are used). */
function buildModel(run: EmbedderRun): { model: Embedder; tokenizer: Tokenizer } {
  const o = run.options;
  const text = [...run.train, ...run.heldOut].map((p) => `${p.anchor}\n${p.positive}\n`).join('');
  const tokenizer = o.spaceTokens && !o.lowercase ? buildTokenizer(o.tokenizer, text, o.vocabSize) : WordTokenizer.fromText(text, o.vocabSize ?? DEFAULT_VOCAB_SIZE.word!, o.spaceTokens, o.lowercase);
  let config;
  try {
    config = parseEmbedderConfig({
      vocab_size: tokenizer.vocabSize, d_model: o.dModel, n_layer: o.layers, n_head: o.heads, max_len: o.maxLen,
      positions: o.positions, dropout: o.dropout, matryoshka_dims: trainedPrefixes(o),
      ...(o.pooling === 'idf' ? { token_weights: inverseDocumentFrequency(tokenizer, [...run.train, ...run.heldOut]) } : {}),
    });
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  return { model: new Embedder(config, new Rng(o.seed)), tokenizer };
}

/**
 * Each token's weight for IDF pooling: BM25's inverse document frequency,
 * ln(1 + (N − df + ½) / (df + ½)), over the distinct texts of the pairs (N of
 * them; df: how many hold the token). Text only, as the tokenizer's
 * vocabulary: no pairing is used. A token in every text weighs about 0
 * (the spaces a word tokenizer keeps), a rare name the most; a token never
 * seen (`<unk>`, specials) weighs as a token seen once.
 */
export function inverseDocumentFrequency(tokenizer: Tokenizer, pairs: readonly Pair[]): number[] {
  const texts = new Set<string>();
  for (const p of pairs) texts.add(p.anchor).add(p.positive);
  const df = new Float64Array(tokenizer.vocabSize);
  for (const t of texts) for (const id of new Set(tokenizer.encode(t))) df[id]!++;
  const N = texts.size;
  const idf = (n: number) => Math.log(1 + (N - n + 0.5) / (n + 0.5));
  return Array.from(df, (n) => Math.round(idf(n === 0 ? 1 : n) * 1e4) / 1e4);
}

/** A training batch: `pairs` anchors, their positives, and (with hard negatives) theirs; `mask` hides negatives about an anchor's own key. */
export type EmbedderBatch = PaddedBatch & { pairs: number; mask?: Float32Array };

/**
 * The additive mask of a batch with hard negatives, [B, 2B] for B = rows:
 * MASKED where the hard negative of pair j (column B + j) is about pair i's
 * key — a passage of anchor i's own document is no negative for it — and
 * 0 elsewhere (the positives' columns are never masked: a batch holds one
 * pair per key).
 */
export function negativeMask(pairs: readonly Pair[], rows: readonly number[]): Float32Array {
  const B = rows.length;
  const mask = new Float32Array(B * 2 * B);
  rows.forEach((i, a) => {
    rows.forEach((j, c) => {
      if (pairs[j]!.negativeKey === pairs[i]!.key) mask[a * 2 * B + B + c] = MASKED;
    });
  });
  return mask;
}

/** Pair indices by group, so a batch can take a meaning together with its near misses. */
export function groupIndex(pairs: readonly Pair[]): number[][] {
  const groups = new Map<string, number[]>();
  pairs.forEach((p, i) => {
    const g = groupOf(p);
    const list = groups.get(g);
    if (list) list.push(i);
    else groups.set(g, [i]);
  });
  return [...groups.values()];
}

/**
 * About B training pairs: whole groups drawn at random (their members are
 * each other's hard negatives), never two pairs with the same key — a second
 * pair of the same meaning would be a "negative" that is really a positive.
 * A group is read in a random order, so where several pairs share a key
 * each is as likely to be the one taken: read in order, a group whose pairs
 * all share one key (an inverse-cloze document keyed by document) gave the
 * same first pair every time, and the rest of its pairs were never trained
 * on (the demo trained on 300 of its 17 902 pairs).
 */
export function sampleBatch(pairs: readonly Pair[], groups: readonly number[][], B: number, rng: Rng): number[] {
  const rows: number[] = [];
  const keys = new Set<string>();
  for (let tries = 0; rows.length < B && tries < B * 20; tries++) {
    const group = groups[rng.int(groups.length)]!;
    for (const j of shuffled(group.length, rng)) {
      const i = group[j]!;
      if (rows.length >= B || keys.has(pairs[i]!.key)) continue;
      keys.add(pairs[i]!.key);
      rows.push(i);
    }
  }
  return rows;
}
