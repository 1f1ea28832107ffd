/**
 * Supervised fine-tuning: from a model that continues text to one that
 * answers. The pretrained model reads conversations rendered with its chat
 * template and learns, by the same next-token cross-entropy as pretraining,
 * to write the assistant's turns — and only those (sft_data.ts masks the
 * rest out of the loss).
 *
 * The loop is `attn train`'s (runTraining): progress, evaluation on the
 * held-out rows, atomic checkpoints, exact --resume and the NaN guard. With
 * LoRA the base weights are frozen and only the adapters train
 * (nn/lora.ts); the checkpoint then holds the base and the adapter in PEFT's
 * layout side by side.
 */
import { createHash } from 'node:crypto';
import { chatTemplateOf } from '../chat/for_tokenizer.js';
import type { ChatTemplate } from '../chat/template.js';
import type { ChatRow } from '../data/instructions_file.js';
import type { DecoderLM } from '../models/causal_lm.js';
import { Llama } from '../models/llama.js';
import type { Parameter } from '../nn/module.js';
import { addLoRA, loraLayers, loraParameters } from '../nn/lora.js';
import { AdamW } from '../optim/adamw.js';
import { backend } from '../backend/index.js';
import { moveToBackend } from '../nn/placement.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { inEvalMode } from '../nn/eval_mode.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng, type RngState } from '../util/rng.js';
import { runTraining, runTrainingAsync, type LoopResult, type LoopStep, type TrainingEvents, type TrainingLoop } from './loop.js';
import { loadDecoder, readTrainerState, restoreMoments, saveFineTuneCheckpoint, saveFineTuneCheckpointAsync } from './sft_checkpoint.js';
import { encodeConversation, heldOutSplit, lengthBatches, plainTextExamples, promptKey, sftBatch, type ChatExample, type SftBatch } from './sft_data.js';
import { fineTuneSchedule, type FineTuneOptions } from './sft_options.js';
import { chatVocabulary, CHATML_MARKERS } from './sft_vocabulary.js';
import type { Objective } from './step.js';

/** LoRA settings of a fine-tuning run (the --lora-* flags). */
export interface LoRASettings {
  r: number;
  alpha: number;
  /** Linear names to adapt; default c_attn,c_fc (GPT) or q_proj,v_proj (Llama family). */
  targets?: string[];
  dropout: number;
}

/** What an SFT checkpoint records besides weights (sft.json). */
export interface SftState {
  kind: 'sft';
  step: number;
  options: FineTuneOptions;
  lora: LoRASettings | null;
  data: { path: string; sha256: string; rows: number };
  /** Plain text rehearsed beside the rows (SftRun.rehearsal), if any; `chars` per window (absent in checkpoints before it was recorded). */
  rehearsal?: { path: string; sha256: string; windows: number; chars?: number };
  /** The held-out rows (1-based row numbers), so `attn sft eval` scores the same ones. */
  heldOut: number[];
  rng: { batch: { s: RngState; spare: number | null }; model: { s: RngState; spare: number | null } };
  history: Array<{ step: number; val_loss: number }>;
  seconds: number;
  tokens: number;
}

export const SFT_STATE_FILE = 'sft.json';

export interface SftRun {
  rows: ChatRow[];
  /** Where the rows came from (recorded, and checked on resume). */
  dataPath: string;
  dataText: string;
  options: FineTuneOptions;
  /** Start from this model directory … */
  init?: string;
  /** … or continue this checkpoint. */
  resume?: string;
  out?: string;
  lora?: LoRASettings;
  /**
   * Plain text learned beside the rows, every token counted (plainTextExamples):
   * windows of `chars` characters, batched apart from the conversations, a
   * training step drawing either kind in proportion to their batches.
   */
  rehearsal?: { path: string; text: string; chars: number };
}

export interface SftEval {
  step: number;
  valLoss: number;
}

export interface SftEvents extends TrainingEvents<{ params: number; trainable: number; trainRows: number; valRows: number; resumedFrom: number; added: string[]; lora: string[] }, SftEval, LoopStep> {}

export interface SftSummary {
  step: number;
  train_loss: number;
  val_loss: number;
  tokens_per_s: number;
  seconds: number;
}

/** The parameters a run trains: the adapters when the model has LoRA layers, else every weight. */
export function trainableParameters(model: DecoderLM): Array<[string, Parameter]> {
  return loraLayers(model).length ? loraParameters(model) : model.namedParameters();
}

/** Put LoRA adapters on the model (a target naming no layer is a UserError from addLoRA). */
export function applyLoRA(model: DecoderLM, lora: LoRASettings, seed: number): string[] {
  const targets = lora.targets ?? (model instanceof Llama ? ['q_proj', 'v_proj'] : ['c_attn', 'c_fc']);
  return addLoRA(model, { r: lora.r, alpha: lora.alpha, targets, dropout: lora.dropout, rng: new Rng(seed + 200) });
}

export function newFineTuneOptimizer(model: DecoderLM, o: FineTuneOptions): AdamW {
  return new AdamW(trainableParameters(model), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The masked next-token loss of a padded batch: cross-entropy over assistant tokens only (targets −1 elsewhere). */
export function sftObjective(model: DecoderLM): Objective<SftBatch> {
  return { loss: (b) => model.forward(b.x, [b.B, b.T], b.y).loss! };
}

/** Mean loss per learned token over all `batches` (no gradients). */
export function sftLoss(model: DecoderLM, batches: readonly SftBatch[]): number {
  return inEvalMode(model, () => valuesNow(heldOutLosses(model, batches)));
}

/** sftLoss on any backend: on a device each batch's pass is scratch and reads back one number, its loss. */
export function sftLossAsync(model: DecoderLM, batches: readonly SftBatch[]): Promise<number> {
  return inEvalMode(model, () => valuesAwaited(heldOutLosses(model, batches)));
}

/** Each batch's mean loss yielded to be read (tensor/value_reads.ts); the token-weighted mean returned. */
function* heldOutLosses(model: DecoderLM, batches: readonly SftBatch[]): ValueReads<number> {
  let sum = 0;
  let tokens = 0;
  for (const b of batches) {
    if (b.tokens === 0) continue;
    const loss = withDeviceScratch(() => noGrad(() => model.forward(b.x, [b.B, b.T], b.y).loss!), (l) => [l.storage]);
    const [value] = yield [loss];
    sum += value![0]! * b.tokens;
    tokens += b.tokens;
  }
  return tokens ? sum / tokens : NaN;
}

/** Encode rows with the template, refusing any longer than the model's context. */
export function encodeRows(template: ChatTemplate, tokenizer: Tokenizer, rows: readonly ChatRow[], blockSize: number, source: string): ChatExample[] {
  return rows.map((r) => {
    const e = encodeConversation(template, tokenizer, r.messages, r.row);
    if (e.ids.length > blockSize + 1) throw new UserError(`${source}: row ${r.row} is ${e.ids.length} tokens once rendered, longer than the model's context of ${blockSize}`);
    return e;
  });
}

/** Fine-tune on conversations. Host backends; sftAsync fine-tunes on any backend. */
export function sft(run: SftRun, events: SftEvents = {}): SftSummary {
  const t = sftTrainingRun(run, events);
  return t.summary(runTraining(t.loop));
}

/**
 * sft on any backend. On a device backend (webgpu) the whole model (the
 * frozen base too) is uploaded once and the steps run there, each step's
 * loss read back; so does the held-out loss (one number read back a
 * batch), and a checkpoint reads the weights and the Adam moments back once.
 */
export async function sftAsync(run: SftRun, events: SftEvents = {}): Promise<SftSummary> {
  const t = sftTrainingRun(run, events);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function sftTrainingRun(run: SftRun, events: SftEvents): { loop: TrainingLoop<SftBatch>; summary(result: LoopResult): SftSummary } {
  if (!run.init === !run.resume) throw new Error('sft: exactly one of init and resume');
  let state: SftState;
  let model: DecoderLM;
  let tokenizer: Tokenizer;
  let added: string[] = [];
  const template = (t: Tokenizer): ChatTemplate => chatTemplateOf(t);
  if (run.resume) {
    state = readTrainerState<SftState>(run.resume, SFT_STATE_FILE, 'attn sft');
    if (state.data.sha256 !== sha256(run.dataText)) throw new UserError(`--resume ${run.resume}: the data differs from the one this checkpoint was trained on (${state.data.path})`);
    if ((state.rehearsal?.sha256 ?? null) !== (run.rehearsal ? sha256(run.rehearsal.text) : null)) throw new UserError(`--resume ${run.resume}: the rehearsal text differs from the one this checkpoint was trained with (${state.rehearsal?.path ?? 'none'})`);
    // Recorded where they are found now (older checkpoints kept the paths as typed).
    state.data.path = run.dataPath;
    if (state.rehearsal && run.rehearsal) state.rehearsal = { ...state.rehearsal, path: run.rehearsal.path, chars: run.rehearsal.chars };
    state.options = { ...state.options, maxIters: run.options.maxIters };
    ({ model, tokenizer } = loadDecoder(run.resume, '--resume', { keepAdapter: true }));
    model.rng.setState(state.rng.model);
  } else {
    const loaded = loadDecoder(run.init!, '--init');
    const t0 = template(loaded.tokenizer);
    const texts = run.rows.map((r) => t0.render(r.messages));
    ({ model, tokenizer, added } = chatVocabulary(loaded.model, loaded.tokenizer, texts, t0.isDefault ? CHATML_MARKERS : []));
    model.rng.setState(new Rng(run.options.seed).getState());
    if (run.lora) applyLoRA(model, run.lora, run.options.seed);
    const split = heldOutSplit(run.rows.length, run.options.valFraction, run.options.seed, run.rows.map((r) => promptKey(r.messages)));
    state = {
      kind: 'sft', step: 0, options: run.options, lora: run.lora ?? null,
      data: { path: run.dataPath, sha256: sha256(run.dataText), rows: run.rows.length },
      ...(run.rehearsal ? { rehearsal: { path: run.rehearsal.path, sha256: sha256(run.rehearsal.text), windows: 0, chars: run.rehearsal.chars } } : {}),
      heldOut: split.val.map((i) => run.rows[i]!.row),
      rng: { batch: new Rng(run.options.seed + 100).getState(), model: model.rng.getState() },
      history: [], seconds: 0, tokens: 0,
    };
  }
  const o = state.options;
  const chat = template(tokenizer);
  const held = new Set(state.heldOut);
  const examples = encodeRows(chat, tokenizer, run.rows, model.config.block_size, run.dataPath);
  const train = examples.filter((e) => !held.has(e.row));
  const val = examples.filter((e) => held.has(e.row));
  if (train.length === 0) throw new UserError(`${run.dataPath}: no rows left to train on after holding out ${val.length}`);
  const rehearsed = run.rehearsal ? plainTextExamples(tokenizer, run.rehearsal.text, run.rehearsal.chars, model.config.block_size) : [];
  if (state.rehearsal) state.rehearsal.windows = rehearsed.length;
  const trainBatches = [...lengthBatches(train, o.batchSize), ...lengthBatches(rehearsed, o.batchSize)].map(sftBatch);
  const valBatches = lengthBatches(val, o.batchSize).map(sftBatch);
  const batchRng = new Rng();
  batchRng.setState(state.rng.batch);
  const onDevice = backend().device !== undefined;
  moveToBackend(model); // the frozen weights too (the optimizer uploads only what it trains); nothing on a host backend
  const opt = newFineTuneOptimizer(model, o);
  if (run.resume) restoreMoments(opt, run.resume);

  events.onStart?.({
    params: model.numParameters(), trainable: opt.params.reduce((n, [, p]) => n + p.size, 0), trainRows: train.length, valRows: val.length,
    resumedFrom: state.step, added, lora: loraLayers(model).map(([n]) => n),
  });
  let last: SftEval | null = null;
  model.train();
  const loop: TrainingLoop<SftBatch> = {
    opt,
    objective: sftObjective(model),
    step0: state.step,
    maxSteps: o.maxIters,
    schedule: fineTuneSchedule(o),
    gradClip: o.gradClip,
    nextBatches: () => Array.from({ length: o.gradAccum }, () => trainBatches[batchRng.int(trainBatches.length)]!),
    size: (b) => b.tokens,
    evalInterval: o.evalInterval,
    evaluate: (step) => {
      const record = (valLoss: number): number[] => {
        last = { step, valLoss };
        state.history.push({ step, val_loss: valLoss });
        events.onEval?.(last);
        return [valLoss];
      };
      // On a device the held-out batches run there, one number read back a batch.
      return backend().device ? sftLossAsync(model, valBatches).then(record) : record(sftLoss(model, valBatches));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: () => {
            state.rng = { batch: batchRng.getState(), model: model.rng.getState() };
            return onDevice
              ? saveFineTuneCheckpointAsync(run.out!, model, tokenizer, opt, SFT_STATE_FILE, state)
              : saveFineTuneCheckpoint(run.out!, model, tokenizer, opt, SFT_STATE_FILE, state);
          },
        }
      : undefined,
    savedIn: run.resume,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      state.step = p.step;
      state.seconds += p.seconds;
      state.tokens += p.items;
      events.onStep?.(p);
    },
  };
  const summary = (result: LoopResult): SftSummary => {
    const final = last as SftEval | null;
    return { step: result.step, train_loss: result.loss, val_loss: final?.valLoss ?? NaN, tokens_per_s: result.steps ? result.items / result.seconds : 0, seconds: state.seconds };
  };
  return { loop, summary };
}
