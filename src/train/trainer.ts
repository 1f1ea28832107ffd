import { checkDecoderFits } from './training_memory.js';
import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { loadModel } from '../io/model_dir.js';
import { dequantize } from '../nn/quantized_linear.js';
import type { CausalLM } from '../models/causal_lm.js';
import { GPT } from '../models/gpt.js';
import { Llama } from '../models/llama.js';
import { parseLlamaConfig } from '../models/llama_config.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { AdamW } from '../optim/adamw.js';
import { Muon } from '../optim/muon.js';
import { buildTokenizer } from '../tokenizers/index.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { withPrecision } from '../tensor/precision.js';
import { Rng } from '../util/rng.js';
import { backend } from '../backend/index.js';
import { WeightAverage, withAverage, type AverageRule } from '../optim/weight_average.js';
import { loadCheckpoint, restoreOptimizer, restoreTrainedWeights, saveCheckpoint, saveCheckpointAsync, type TrainerState } from './checkpoint.js';
import { TokenDataset } from './data.js';
import { queueEstimateLoss, queueValidationLoss, type EvalResult } from './evaluate.js';
import { runTraining, runTrainingAsync, tokenStepInfo, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
import type { Batch } from './data.js';
import { distillationObjective } from './distill.js';
import { nextTokenObjective } from './next_token.js';
import type { TrainOptions } from './options.js';

export interface EvalInfo {
  step: number;
  trainLoss: number;
  valLoss: number;
}

export interface TrainEvents extends TrainingEvents<{ params: number; resumedFrom: number; maxIters: number; vocabSize: number; trainTokens: number; valTokens: number }, EvalInfo> {
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
   * quantized one, a Hugging Face GPT-2 or Llama/Qwen2/Mistral) instead of
   * random ones: fine-tuning. The model's family and sizes come from it; the
   * options' training settings apply.
   */
  init?: string;
  /**
   * Distillation: train toward this model's next-token distributions
   * (distill.ts) instead of the text's next tokens alone; a fresh model then
   * takes the teacher's tokenizer, so the two score the same vocabulary.
   */
  teacher?: { model: CausalLM; tokenizer: Tokenizer; textWeight?: number };
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * Train a GPT on `run.text`: next-token prediction on random windows of the
 * text (gradAccum micro-batches per step), through the shared loop — which
 * evaluates and checkpoints every evalInterval steps and at the end. Host
 * backends; trainAsync trains on any backend.
 */
export function train(run: TrainRun, events: TrainEvents = {}): TrainSummary {
  const t = trainingRun(run, events);
  return t.summary(runTraining(t.loop));
}

/**
 * train on any backend. On a device backend (webgpu) the weights and the
 * optimizer state live on the device from the first step to the last: the
 * loss is read back every logInterval steps, an evaluation reads back only
 * its losses, a checkpoint reads the weights once, and a resumed run uploads
 * them once.
 */
export async function trainAsync(run: TrainRun, events: TrainEvents = {}): Promise<TrainSummary> {
  const t = trainingRun(run, events);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function trainingRun(run: TrainRun, events: TrainEvents): { loop: TrainingLoop<Batch>; summary(result: LoopResult): TrainSummary } {
  const setup = run.resume ? resumeSetup(run) : run.init ? initSetup(run) : freshSetup(run, events);
  const { model, tokenizer, opt, batchRng, state, average } = setup;
  const o = state.options;
  const onDevice = backend().device !== undefined;
  // Special tokens in the training text (e.g. <|endoftext|> between documents) mean themselves.
  const data = new TokenDataset(tokenizer.encode(run.text, { allowedSpecial: 'all' }), o.blockSize);
  state.data.tokens = data.train.length + data.val.length;
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: o.warmupIters, decayIters: o.lrDecayIters ?? o.maxIters };
  events.onStart?.({ params: model.numParameters(), resumedFrom: state.step, maxIters: o.maxIters, vocabSize: tokenizer.vocabSize, trainTokens: data.train.length, valTokens: data.val.length });

  let last: EvalInfo | null = null;
  model.train();
  // Checkpoints written before these options existed trained in FP32, storing every activation.
  const precision = o.precision ?? 'fp32';
  model.recompute = o.recompute ?? false;
  const objective = run.teacher ? distillationObjective(model, run.teacher.model, o.blockSize, run.teacher.textWeight) : nextTokenObjective(model, o.blockSize);
  const record = (step: number, sampled: EvalResult, full: number | null): number[] => {
    const r = full === null ? sampled : { train: sampled.train, val: full };
    last = { step, trainLoss: r.train, valLoss: r.val };
    state.history.push({ step, train_loss: r.train, val_loss: r.val });
    events.onEval?.(last);
    return [r.train, r.val];
  };
  const clock: Pick<TrainingLoop<Batch>, 'stopBefore' | 'scheduleStep'> = o.timeLimit !== undefined ? timeLimited(o.timeLimit, data.val.length + o.evalIters * o.batchSize * o.blockSize, o.batchSize * o.blockSize * o.gradAccum, o.maxIters) : {};
  const loop: TrainingLoop<Batch> = {
    opt,
    objective: { loss: (batch) => withPrecision(precision, () => objective.loss(batch)) },
    step0: state.step,
    maxSteps: o.maxIters,
    schedule,
    gradClip: o.gradClip,
    nextBatches: () => Array.from({ length: o.gradAccum }, () => data.batch('train', o.batchSize, batchRng)),
    size: (b) => b.x.length,
    evalInterval: o.evalInterval,
    readInterval: o.logInterval,
    evaluate: (step) => {
      // Queued on the backend (the forward passes in the run's precision), then read: at once on a host, after one wait on a device.
      // With a weight average, the average is what is evaluated (and saved): the run's result.
      const { sampled, full } = withAverage(average, () => withPrecision(precision, () => ({
        sampled: queueEstimateLoss(model, data, o.batchSize, o.evalIters, o.seed),
        full: o.fullValidation ? queueValidationLoss(model, data, o.batchSize) : null,
      })));
      if (!onDevice) return record(step, sampled.now(), full?.now() ?? null);
      return (async () => record(step, await sampled.read(), full ? await full.read() : null))();
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: () => {
            state.rng = { batch: batchRng.getState(), model: model.rng.getState() };
            if (average) state.average = { count: average.count };
            return onDevice ? saveCheckpointAsync(run.out!, model, tokenizer, opt, state, average) : saveCheckpoint(run.out!, model, tokenizer, opt, state, average);
          },
        }
      : undefined,
    savedIn: run.resume,
    onCheckpoint: events.onCheckpoint,
    ...clock,
    onStep: (p) => {
      // The share of the run done, as the schedule counts it (the clock's share in a time-limited run).
      average?.update((clock.scheduleStep?.(p.step) ?? p.step) / o.maxIters);
      state.step = p.step;
      state.seconds += p.seconds;
      state.tokens += p.items;
      events.onStep?.(tokenStepInfo(p));
    },
  };
  const summary = (result: LoopResult): TrainSummary => {
    const final = last as EvalInfo | null;
    return {
      step: result.step,
      train_loss: final?.trainLoss ?? NaN,
      val_loss: final?.valLoss ?? NaN,
      tokens_per_s: result.steps ? result.items / result.seconds : 0,
      seconds: state.seconds,
    };
  };
  return { loop, summary };
}

/**
 * A run that must end `limit` seconds after the process started (performance.now()'s
 * origin), final evaluation included. It stops before a step when the step
 * (as long as the last one) and the evaluation would not fit; the evaluation's
 * cost is estimated from the step time: a forward pass costs about a third of
 * a training step per token, 0.6 is assumed for margin, over the validation
 * tokens plus the sampled training batches, plus 3 s for saving. (A first
 * run on a machine loaded 12× over overran by 8 s with 0.5 and no sample.) The learning-rate schedule reads
 * the larger of the step and the share of the training time spent so far
 * (times maxIters), so a run the clock cuts short still decays to minLr.
 */
function timeLimited(limit: number, evalTokens: number, tokensPerStep: number, maxIters: number) {
  const deadline = limit * 1000;
  const start = performance.now();
  let reserve = 0;
  return {
    stopBefore: (lastStepSeconds: number) => {
      reserve = ((lastStepSeconds * 1000 * evalTokens) / tokensPerStep) * 0.6 + 3000;
      return performance.now() + lastStepSeconds * 1000 + reserve > deadline;
    },
    scheduleStep: (step: number) => Math.max(step, Math.floor(((performance.now() - start) / Math.max(1, deadline - reserve - start)) * maxIters)),
  };
}

interface Setup {
  model: CausalLM & { readonly rng: Rng };
  tokenizer: Tokenizer;
  opt: AdamW;
  batchRng: Rng;
  state: TrainerState;
  /** The weight average the run evaluates and saves (--ema, --average-from), if any. */
  average?: WeightAverage;
}

function averageRule(o: TrainOptions): AverageRule | null {
  if (o.ema !== undefined) return { kind: 'ema', decay: o.ema };
  if (o.averageFrom !== undefined) return { kind: 'tail', from: o.averageFrom };
  return null;
}

/** The run's weight average, started from the arena's weights (on resume: the saved average, before the trained weights return). */
function newAverage(opt: AdamW, o: TrainOptions, count = 0): WeightAverage | undefined {
  const rule = averageRule(o);
  return rule ? new WeightAverage(opt.arena, rule, { values: opt.arena.data, count }) : undefined;
}

/** AdamW, or Muon for the blocks' matrices beside AdamW (checkpoints written before --optimizer trained with AdamW). */
function newOptimizer(model: CausalLM, o: TrainOptions): AdamW {
  const adamw = { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay };
  if (o.optimizer !== 'muon') return new AdamW(model.namedParameters(), adamw);
  return new Muon(model.namedParameters(), adamw, {
    lr: o.muonLr ?? 0.02, momentum: o.muonMomentum ?? 0.95, nsSteps: o.muonNsSteps ?? 5, weightDecay: o.muonWeightDecay ?? 0,
    bf16: o.precision === 'bf16',
  });
}

/**
 * Fine-tuning: the loaded model and its tokenizer; the options are made to
 * describe them. A Llama-family model stays one (saved as attn-llama, with
 * its Hugging Face tokenizer files), whatever --arch says.
 */
function initSetup(run: TrainRun): Setup {
  const { model, tokenizer } = loadModel(run.init!);
  if (!tokenizer) throw new UserError(`--init ${run.init}: the model has no tokenizer to encode the training text with`);
  dequantize(model); // an int8 model trains as fp32 Linears holding its dequantized weights
  const c = model.config;
  const family = model instanceof Llama ? { arch: 'llama' as const, nKvHead: model.config.n_kv_head, bias: false } : { arch: 'gpt' as const, bias: (model as GPT).config.bias };
  const o: TrainOptions = {
    ...run.options,
    ...family,
    nLayer: c.n_layer, nHead: c.n_head, nEmbd: c.n_embd,
    blockSize: Math.min(run.options.blockSize, c.block_size),
    tokenizer: tokenizer.type === 'char' || tokenizer.type === 'digits' || tokenizer.type === 'word' ? tokenizer.type : 'bpe',
  };
  if (o.arch === 'gpt') delete o.nKvHead;
  delete (o as { vocabSize?: number }).vocabSize;
  model.rng.setState(new Rng(o.seed).getState());
  model.train();
  return startFrom(run, o, model, tokenizer);
}

/** Step-0 training state for a model that is about to be trained (fresh or from --init). */
function startFrom(run: TrainRun, o: TrainOptions, model: CausalLM & { readonly rng: Rng }, tokenizer: Tokenizer): Setup {
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
  const opt = newOptimizer(model, o);
  return { model, tokenizer, opt, batchRng, state, average: newAverage(opt, o) };
}

function freshSetup(run: TrainRun, events: TrainEvents): Setup {
  const o = run.options;
  const tokenizer = run.teacher?.tokenizer ?? buildTokenizer(o.tokenizer, run.text, o.vocabSize, events.onTokenizerProgress);
  checkDecoderFits(o, tokenizer.vocabSize); // before a weight is allocated: one line, not a RangeError or a swapping machine
  if (o.arch === 'llama') return startFrom(run, o, new Llama(llamaConfig(o, tokenizer.vocabSize), new Rng(o.seed)), tokenizer);
  const config = parseGPTConfig({
    n_layer: o.nLayer, n_head: o.nHead, n_embd: o.nEmbd, block_size: o.blockSize,
    vocab_size: tokenizer.vocabSize, dropout: o.dropout, bias: o.bias, position_encoding: o.positions,
  });
  return startFrom(run, o, new GPT(config, new Rng(o.seed)), tokenizer);
}

/**
 * A Llama-family model of the options' sizes: the SwiGLU width is Llama's
 * 8/3·n_embd (the gate makes three matrices cost what GPT's two of 4·n_embd
 * do), rounded up to a multiple of 32; the head tied to the embedding.
 */
function llamaConfig(o: TrainOptions, vocabSize: number) {
  return parseLlamaConfig({
    n_layer: o.nLayer, n_head: o.nHead, n_kv_head: o.nKvHead ?? o.nHead, n_embd: o.nEmbd, head_dim: o.nEmbd / o.nHead,
    intermediate_size: Math.ceil((8 * o.nEmbd) / 3 / 32) * 32, vocab_size: vocabSize, block_size: o.blockSize,
    dropout: o.dropout, tie_word_embeddings: true,
  }, 'train options');
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
  const average = newAverage(opt, state.options, state.average?.count);
  if (average) restoreTrainedWeights(opt, ck.moments, dir);
  return { model, tokenizer: ck.tokenizer, opt, batchRng, state, average };
}
