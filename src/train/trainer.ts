import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { loadGPT } from '../io/model_dir.js';
import { dropInt8 } from '../nn/int8.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { learningRate } from '../optim/schedule.js';
import { backward } from '../tensor/autograd.js';
import { buildTokenizer } from '../tokenizers/index.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { Rng } from '../util/rng.js';
import { loadCheckpoint, restoreOptimizer, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { TokenDataset } from './data.js';
import { estimateLoss } from './evaluate.js';
import type { TrainOptions } from './options.js';

export interface StepInfo {
  step: number;
  maxIters: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** Seconds left at the current pace. */
  eta: number;
}

export interface EvalInfo {
  step: number;
  trainLoss: number;
  valLoss: number;
}

export interface TrainEvents {
  onStart?(info: { params: number; resumedFrom: number; maxIters: number; vocabSize: number; trainTokens: number; valTokens: number }): void;
  onStep?(info: StepInfo): void;
  onEval?(info: EvalInfo): void;
  onCheckpoint?(info: { step: number; dir: string }): void;
  /** Progress of training the tokenizer (BPE merges done of total) before the model. */
  onTokenizerProgress?(done: number, total: number): void;
}

export interface TrainSummary {
  step: number;
  train_loss: number;
  val_loss: number;
  tokens_per_s: number;
  seconds: number;
}

export interface TrainRun {
  /** The text to train on and where it came from (recorded so resume can check it). */
  text: string;
  dataPath: string;
  options: TrainOptions;
  out?: string;
  /** Continue from this checkpoint directory instead of starting fresh. */
  resume?: string;
  /**
   * Start from the weights and tokenizer of this model directory (ours, a
   * quantized one, or a Hugging Face GPT-2) instead of random ones: fine-tuning.
   * The model's sizes come from it; the options' training settings apply.
   */
  init?: string;
}

/** Thrown when the loss stops being a number; the last good checkpoint is kept. */
export class DivergedError extends UserError {}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * Train a GPT on `run.text`: sample batches, forward, backward, clip, AdamW,
 * with the learning-rate schedule; evaluate and checkpoint every
 * evalInterval steps and at the end.
 */
export function train(run: TrainRun, events: TrainEvents = {}): TrainSummary {
  const setup = run.resume ? resumeSetup(run) : run.init ? initSetup(run) : freshSetup(run, events);
  const { model, tokenizer, opt, batchRng, state } = setup;
  const o = state.options;
  // Special tokens in the training text (e.g. <|endoftext|> between documents) mean themselves.
  const data = new TokenDataset(tokenizer.encode(run.text, { allowedSpecial: 'all' }), o.blockSize);
  state.data.tokens = data.train.length + data.val.length;
  const params = model.parameters();
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: o.warmupIters, decayIters: o.lrDecayIters ?? o.maxIters };
  const tokensPerStep = o.batchSize * o.blockSize * o.gradAccum;
  events.onStart?.({ params: model.numParameters(), resumedFrom: state.step, maxIters: o.maxIters, vocabSize: tokenizer.vocabSize, trainTokens: data.train.length, valTokens: data.val.length });

  let lastLoss = NaN;
  let last: EvalInfo | null = null;
  let stepSeconds = 0;
  let stepsTimed = 0;
  const evaluate = (): EvalInfo => {
    const r = estimateLoss(model, data, o.batchSize, o.evalIters, o.seed);
    last = { step: state.step, trainLoss: r.train, valLoss: r.val };
    if (!Number.isFinite(r.train) || !Number.isFinite(r.val)) diverged(state.step, run.out);
    state.history.push({ step: state.step, train_loss: r.train, val_loss: r.val });
    events.onEval?.(last);
    return last;
  };
  const checkpoint = (): void => {
    if (!run.out) return;
    state.rng = { batch: batchRng.getState(), model: model.rng.getState() };
    saveCheckpoint(run.out, model, tokenizer, opt, state);
    events.onCheckpoint?.({ step: state.step, dir: run.out });
  };

  model.train();
  while (state.step < o.maxIters) {
    const t0 = performance.now();
    const lr = learningRate(state.step, schedule);
    opt.zeroGrad();
    let lossSum = 0;
    for (let micro = 0; micro < o.gradAccum; micro++) {
      const { x, y } = data.batch('train', o.batchSize, batchRng);
      const { loss } = model.forward(x, [o.batchSize, o.blockSize], y);
      lossSum += loss!.item();
      // Scale so that accumulated gradients are the mean over micro-batches.
      backward(loss!, Float32Array.of(1 / o.gradAccum), { freeActivations: true });
    }
    lastLoss = lossSum / o.gradAccum;
    if (!Number.isFinite(lastLoss)) diverged(state.step, run.out);
    const gradNorm = clipGradNorm(params, o.gradClip);
    opt.update(lr);
    state.step++;
    const dt = (performance.now() - t0) / 1000;
    state.seconds += dt;
    state.tokens += tokensPerStep;
    stepSeconds += dt;
    stepsTimed++;
    const tokensPerSecond = (stepsTimed * tokensPerStep) / stepSeconds;
    events.onStep?.({ step: state.step, maxIters: o.maxIters, loss: lastLoss, lr, gradNorm, tokensPerSecond, eta: ((o.maxIters - state.step) * stepSeconds) / stepsTimed });
    if (state.step % o.evalInterval === 0 || state.step === o.maxIters) {
      evaluate();
      checkpoint();
    }
  }
  const final: EvalInfo = last && (last as EvalInfo).step === state.step ? last : evaluate();
  return {
    step: state.step,
    train_loss: final.trainLoss,
    val_loss: final.valLoss,
    tokens_per_s: stepsTimed ? (stepsTimed * tokensPerStep) / stepSeconds : 0,
    seconds: state.seconds,
  };
}

function diverged(step: number, out: string | undefined): never {
  const kept = out ? ` The last good checkpoint is kept in ${out}.` : '';
  throw new DivergedError(`training diverged: loss is not finite at step ${step + 1} (try a lower --lr).${kept}`);
}

interface Setup {
  model: GPT;
  tokenizer: Tokenizer;
  opt: AdamW;
  batchRng: Rng;
  state: TrainerState;
}

function newOptimizer(model: GPT, o: TrainOptions): AdamW {
  return new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
}

/** Fine-tuning: the loaded model and its tokenizer; the options are made to describe them. */
function initSetup(run: TrainRun): Setup {
  const { model, tokenizer } = loadGPT(run.init!, 'attn train --init');
  if (!tokenizer) throw new UserError(`--init ${run.init}: the model has no tokenizer to encode the training text with`);
  dropInt8(model); // training updates the fp32 weights (they hold the dequantized values)
  const c = model.config;
  const o: TrainOptions = {
    ...run.options,
    nLayer: c.n_layer, nHead: c.n_head, nEmbd: c.n_embd, bias: c.bias,
    blockSize: Math.min(run.options.blockSize, c.block_size),
    tokenizer: tokenizer.type === 'char' || tokenizer.type === 'word' ? tokenizer.type : 'bpe',
  };
  delete (o as { vocabSize?: number }).vocabSize;
  model.rng.setState(new Rng(o.seed).getState());
  model.train();
  return startFrom(run, o, model, tokenizer);
}

/** Step-0 training state for a model that is about to be trained (fresh or from --init). */
function startFrom(run: TrainRun, o: TrainOptions, model: GPT, tokenizer: Tokenizer): Setup {
  const batchRng = new Rng(o.seed + 100);
  const state: TrainerState = {
    step: 0,
    options: o,
    data: { path: run.dataPath, sha256: sha256(run.text), tokens: 0 },
    rng: { batch: batchRng.getState(), model: model.rng.getState() },
    history: [],
    seconds: 0,
    tokens: 0,
  };
  return { model, tokenizer, opt: newOptimizer(model, o), batchRng, state };
}

function freshSetup(run: TrainRun, events: TrainEvents): Setup {
  const o = run.options;
  const tokenizer = buildTokenizer(o.tokenizer, run.text, o.vocabSize, events.onTokenizerProgress);
  const config = parseGPTConfig({
    n_layer: o.nLayer, n_head: o.nHead, n_embd: o.nEmbd, block_size: o.blockSize,
    vocab_size: tokenizer.vocabSize, dropout: o.dropout, bias: o.bias, position_encoding: o.positions,
  });
  return startFrom(run, o, new GPT(config, new Rng(o.seed)), tokenizer);
}

function resumeSetup(run: TrainRun): Setup {
  const dir = run.resume!;
  const ck = loadCheckpoint(dir);
  const state = ck.state;
  if (state.data.sha256 !== sha256(run.text)) {
    throw new UserError(`--resume ${dir}: the training text differs from the one this checkpoint was trained on (${state.data.path})`);
  }
  // Only the length of training may change on resume; everything else is the checkpoint's.
  state.options = { ...state.options, maxIters: run.options.maxIters };
  const model = ck.model;
  model.rng.setState(state.rng.model);
  const batchRng = new Rng();
  batchRng.setState(state.rng.batch);
  const opt = newOptimizer(model, state.options);
  restoreOptimizer(opt, ck.moments, ck.optimizerStep, dir);
  return { model, tokenizer: ck.tokenizer, opt, batchRng, state };
}
