import type { Seq2SeqTask } from '../data/seq2seq_task.js';
import { saveSeq2Seq } from '../io/seq2seq_dir.js';
import { runTraining, runTrainingAsync, tokenStepInfo, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
import type { Objective } from './step.js';
import { Transformer } from '../models/transformer.js';
import { parseTransformerConfig } from '../models/transformer_config.js';
import { AdamW } from '../optim/adamw.js';
import { onHost } from '../nn/placement.js';
import { backend } from '../backend/index.js';
import { PAD, PieceTokenizer } from '../tokenizers/piece.js';
import { Rng } from '../util/rng.js';
import { makeBatch, type Seq2SeqBatch } from '../models/seq2seq_batch.js';
import { exactMatch, exactMatchAsync, type ExactMatch } from './seq2seq_eval.js';
import type { Seq2SeqOptions } from './seq2seq_options.js';

export interface Seq2SeqEvalInfo extends ExactMatch {
  step: number;
}

export type Seq2SeqEvents = TrainingEvents<{ params: number; vocabSize: number; maxLength: number; steps: number }, Seq2SeqEvalInfo>;

export interface Seq2SeqSummary {
  step: number;
  loss: number;
  /** Exact match on the held-out pairs at the end (greedy decoding); null when none were held out. */
  exact_match: number | null;
  eval_pairs: number;
  tokens_per_s: number;
  seconds: number;
}

export interface Seq2SeqRun {
  task: Seq2SeqTask;
  options: Seq2SeqOptions;
  /** Checkpoint directory, written at each evaluation and at the end. */
  out?: string;
}

/** The tokenizer and model a run starts from. */
export function buildSeq2Seq(task: Seq2SeqTask, o: Seq2SeqOptions): { model: Transformer; tokenizer: PieceTokenizer } {
  const tokenizer = PieceTokenizer.fromTexts(task.texts(), task.pieces);
  // Room for the longest text plus BOS/EOS, and for numbers or sentences a little longer than any seen.
  const longest = Math.max(...task.texts().map((t) => tokenizer.encode(t).length));
  const config = parseTransformerConfig({
    vocab_size: tokenizer.vocabSize, pad_id: PAD,
    n_encoder_layers: o.layers, n_decoder_layers: o.layers, d_model: o.dModel, n_head: o.heads, d_ff: o.dFf,
    dropout: o.dropout, norm: o.norm, activation: o.activation, positions: o.positions,
    share_embeddings: o.shareEmbeddings, max_length: Math.max(64, 2 * longest + 2),
  });
  return { model: new Transformer(config, new Rng(o.seed)), tokenizer };
}

/**
 * Train with teacher forcing: each step draws a batch of pairs, pads it,
 * and minimises the (label-smoothed) cross-entropy of every target token
 * given the source and the true target before it; AdamW with warm-up and
 * cosine decay, gradient clipping. Every evalInterval steps it translates
 * the held-out pairs and saves a checkpoint. Host backends;
 * trainSeq2SeqAsync trains on any backend.
 */
export function trainSeq2Seq(run: Seq2SeqRun, events: Seq2SeqEvents = {}): Seq2SeqSummary {
  const t = seq2seqTrainingRun(run, events);
  return t.summary(runTraining(t.loop));
}

/**
 * trainSeq2Seq on any backend. On a device backend (webgpu) the steps run on
 * the device (each step's loss read back); so does the held-out translation
 * (greedy decoding, each step's scores read back). The checkpoint is saved
 * from host copies of the weights, read back once each time (onHost).
 * Label smoothing runs in
 * the fused cross-entropy kernel, its loss kept on the device like the rest.
 */
export async function trainSeq2SeqAsync(run: Seq2SeqRun, events: Seq2SeqEvents = {}): Promise<Seq2SeqSummary> {
  const t = seq2seqTrainingRun(run, events);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function seq2seqTrainingRun(run: Seq2SeqRun, events: Seq2SeqEvents): { loop: TrainingLoop<Seq2SeqBatch>; summary(result: LoopResult): Seq2SeqSummary } {
  const o = run.options;
  const { model, tokenizer } = buildSeq2Seq(run.task, o);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-9, weightDecay: o.weightDecay });
  const rng = new Rng(o.seed + 100);
  const heldOut = run.task.heldOut(o.evalSize);
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: o.warmup, decayIters: o.steps };
  const history: Array<{ step: number; loss: number; exact_match?: number }> = [];
  events.onStart?.({ params: model.numParameters(), vocabSize: tokenizer.vocabSize, maxLength: model.config.max_length, steps: o.steps });

  let loss = NaN;
  let seconds = 0;
  let last: Seq2SeqEvalInfo | null = null;
  const objective: Objective<Seq2SeqBatch> = {
    loss: (b) => model.forward(b.src, b.tgtIn, b.targets, { labelSmoothing: o.labelSmoothing }).loss!,
  };
  model.train();
  const loop: TrainingLoop<Seq2SeqBatch> = {
    opt,
    objective,
    maxSteps: o.steps,
    schedule,
    gradClip: o.gradClip,
    nextBatches: () => [makeBatch(tokenizer, run.task.sample(rng, o.batchSize), model.config.max_length)],
    size: (b) => b.tokens,
    evalInterval: o.evalInterval,
    evaluate: (step) => {
      const record = (m: ExactMatch): void => {
        last = { step, ...m };
        history.push({ step, loss, exact_match: last.accuracy });
        events.onEval?.(last);
      };
      // On a device the held-out pairs are translated there (the weights stay put).
      return backend().device ? exactMatchAsync(model, tokenizer, heldOut).then(record) : record(exactMatch(model, tokenizer, heldOut));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const trainer = { step, options: o, seconds, history };
            return onHost(model.parameters(), () => saveSeq2Seq(run.out!, { model, tokenizer, task: run.task.source }, { 'trainer.json': JSON.stringify(trainer, null, 2) + '\n' }));
          },
        }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      loss = p.loss;
      seconds += p.seconds;
      events.onStep?.(tokenStepInfo(p));
    },
  };
  const summary = (result: LoopResult): Seq2SeqSummary => {
    const final = last! as Seq2SeqEvalInfo;
    return { step: result.step, loss: result.loss, exact_match: final.total ? final.accuracy : null, eval_pairs: final.total, tokens_per_s: result.seconds ? result.items / result.seconds : 0, seconds: result.seconds };
  };
  return { loop, summary };
}
