/**
 * Training a reward model on preferences with the Bradley–Terry loss.
 *
 * Bradley and Terry (1952) model "A beats B" as σ(r_A − r_B): only the
 * difference of two scores matters. Fitting it by maximum likelihood on
 * pairs (chosen beats rejected) gives the loss
 *
 *   loss = mean( −log σ(r(chosen) − r(rejected)) )
 *
 * which is small when every chosen reply scores well above its rejected
 * twin. The scores themselves have no unit or zero point — a reward model
 * ranks. Held-out accuracy is the fraction of pairs it ranks correctly.
 *
 * The loop is the shared one (runTraining): progress, held-out evaluation,
 * atomic checkpoints, --resume, the NaN guard.
 */
import { createHash } from 'node:crypto';
import { chatTemplateOf } from '../chat/for_tokenizer.js';
import type { PreferenceRow } from '../data/preferences_file.js';
import { backend } from '../backend/index.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { loraParameters } from '../nn/lora.js';
import { moveToBackend, withHostValues } from '../nn/placement.js';
import type { Parameter } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { concat, reshape, slice } from '../tensor/ops/shape.js';
import { withDeviceScratch, type Tensor } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng, type RngState } from '../util/rng.js';
import { runTraining, runTrainingAsync, type LoopResult, type LoopStep, type TrainingEvents, type TrainingLoop } from './loop.js';
import { loadRewardModel, REWARD_HEAD_FILE, RewardModel } from './reward_model.js';
import { applyLoRA, type LoRASettings } from './sft.js';
import { loadDecoder, readTrainerState, restoreMoments, saveFineTuneCheckpoint, saveFineTuneCheckpointAsync } from './sft_checkpoint.js';
import { encodePreference, heldOutSplit, preferenceTexts, type PreferenceExample } from './sft_data.js';
import { fineTuneSchedule, type FineTuneOptions } from './sft_options.js';
import { chatVocabulary, CHATML_MARKERS } from './sft_vocabulary.js';

export const REWARD_STATE_FILE = 'reward.json';

export interface RewardState {
  kind: 'reward';
  step: number;
  options: FineTuneOptions;
  lora: LoRASettings | null;
  data: { path: string; sha256: string; rows: number };
  heldOut: number[];
  rng: { batch: { s: RngState; spare: number | null }; model: { s: RngState; spare: number | null } };
  history: Array<{ step: number; val_loss: number; val_accuracy: number }>;
  seconds: number;
}

export interface RewardRun {
  rows: PreferenceRow[];
  dataPath: string;
  dataText: string;
  options: FineTuneOptions;
  init?: string;
  resume?: string;
  out?: string;
  lora?: LoRASettings;
}

/** How well a reward model ranks pairs. */
export interface RewardEval {
  step: number;
  loss: number;
  /** Fraction of pairs with r(chosen) > r(rejected). */
  accuracy: number;
  /** Mean r(chosen) − r(rejected). */
  margin: number;
}

export interface RewardEvents extends TrainingEvents<{ params: number; trainable: number; trainRows: number; valRows: number; resumedFrom: number }, RewardEval, LoopStep> {}

/** Scores of the chosen and rejected replies of `pairs`: [chosen…, rejected…] in one batch, split in two. */
export function pairScores(model: RewardModel, pairs: readonly PreferenceExample[]): { chosen: Tensor; rejected: Tensor } {
  const n = pairs.length;
  const all = model.scores([...pairs.map((p) => p.chosen.ids), ...pairs.map((p) => p.rejected.ids)]);
  return { chosen: slice(all, 0, 0, n), rejected: slice(all, 0, n, 2 * n) };
}

/**
 * The Bradley–Terry loss of a batch of pairs: −log σ(r_c − r_r), written as
 * what it is — a two-way softmax over the scores [r_c, r_r] whose right
 * answer is the first (e^r_c / (e^r_c + e^r_r) = σ(r_c − r_r)) — so the
 * fused, overflow-safe cross-entropy op computes it, with the exact gradient
 * everywhere (also at r_c = r_r, where DPO starts).
 */
export function bradleyTerryLoss(chosen: Tensor, rejected: Tensor): Tensor {
  const n = chosen.size;
  const logits = concat([reshape(chosen, [n, 1]), reshape(rejected, [n, 1])], 1); // [n, 2]
  return crossEntropy(logits, new Int32Array(n)); // target 0: the chosen reply
}

/** Loss, accuracy and mean margin over pairs (no gradients), `batch` pairs at a time. Host backends. */
export function rankPairs(model: RewardModel, pairs: readonly PreferenceExample[], batch = 16): Omit<RewardEval, 'step'> {
  return inEvalMode(model, () => valuesNow(pairRanking(model, pairs, batch)));
}

/** rankPairs on any backend: a device reads back two scores a pair. */
export function rankPairsAsync(model: RewardModel, pairs: readonly PreferenceExample[], batch = 16): Promise<Omit<RewardEval, 'step'>> {
  return inEvalMode(model, () => valuesAwaited(pairRanking(model, pairs, batch)));
}

/**
 * The ranking as a computation that yields each batch's scores to be read
 * (tensor/value_reads.ts); the Bradley–Terry loss −log σ(m) of each margin is
 * then computed on the host, in its overflow-safe form.
 */
function* pairRanking(model: RewardModel, pairs: readonly PreferenceExample[], batch: number): ValueReads<Omit<RewardEval, 'step'>> {
  let loss = 0;
  let right = 0;
  let margin = 0;
  for (let i = 0; i < pairs.length; i += batch) {
    const part = pairs.slice(i, i + batch);
    const all = withDeviceScratch(() => noGrad(() => model.scores([...part.map((p) => p.chosen.ids), ...part.map((p) => p.rejected.ids)])), (t) => [t.storage]);
    const [scores] = yield [all];
    part.forEach((_, j) => {
      const m = scores![j]! - scores![part.length + j]!;
      loss += Math.max(-m, 0) + Math.log1p(Math.exp(-Math.abs(m)));
      margin += m;
      if (m > 0) right++;
    });
  }
  const n = Math.max(1, pairs.length);
  return { loss: loss / n, accuracy: right / n, margin: margin / n };
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Encode preference rows, refusing any longer than the model's context. */
export function encodePreferences(tokenizer: Tokenizer, rows: readonly PreferenceRow[], blockSize: number, source: string): PreferenceExample[] {
  const template = chatTemplateOf(tokenizer);
  return rows.map((r) => {
    const e = encodePreference(template, tokenizer, r);
    const longest = Math.max(e.chosen.ids.length, e.rejected.ids.length);
    if (longest > blockSize) throw new UserError(`${source}: row ${r.row} is ${longest} tokens once rendered, longer than the model's context of ${blockSize}`);
    return e;
  });
}

export interface RewardSummary { step: number; train_loss: number; val_loss: number; val_accuracy: number; seconds: number }

/** Train a reward model: a decoder (usually the SFT model) with a new scalar head. Host backends; trainRewardModelAsync runs on any. */
export function trainRewardModel(run: RewardRun, events: RewardEvents = {}): RewardSummary {
  const t = rewardTrainingRun(run, events, false);
  return t.summary(runTraining(t.loop));
}

/**
 * trainRewardModel on any backend. On a device backend (webgpu) the body and
 * the head are uploaded once and the steps run there, each step's loss read
 * back; the held-out ranking reads two scores a pair; a checkpoint reads the
 * weights and the Adam moments back once.
 */
export async function trainRewardModelAsync(run: RewardRun, events: RewardEvents = {}): Promise<RewardSummary> {
  const t = rewardTrainingRun(run, events, true);
  return t.summary(await runTrainingAsync(t.loop));
}

function rewardTrainingRun(run: RewardRun, events: RewardEvents, async: boolean): { loop: TrainingLoop<PreferenceExample[]>; summary(result: LoopResult): RewardSummary } {
  if (!run.init === !run.resume) throw new Error('trainRewardModel: exactly one of init and resume');
  let state: RewardState;
  let model: RewardModel;
  let tokenizer: Tokenizer;
  if (run.resume) {
    state = readTrainerState<RewardState>(run.resume, REWARD_STATE_FILE, 'attn reward train');
    if (state.data.sha256 !== sha256(run.dataText)) throw new UserError(`--resume ${run.resume}: the data differs from the one this checkpoint was trained on (${state.data.path})`);
    state.options = { ...state.options, maxIters: run.options.maxIters };
    ({ model, tokenizer } = loadRewardModel(run.resume));
    if (state.lora) {
      // Resuming a LoRA run: the body's adapters come back trainable.
      const body = loadDecoder(run.resume, '--resume', { keepAdapter: true }).model;
      model.body = body;
    }
    model.body.rng.setState(state.rng.model);
  } else {
    const loaded = loadDecoder(run.init!, '--init');
    const t0 = chatTemplateOf(loaded.tokenizer);
    const grown = chatVocabulary(loaded.model, loaded.tokenizer, run.rows.flatMap((r) => preferenceTexts(t0, r)), t0.isDefault ? CHATML_MARKERS : []);
    tokenizer = grown.tokenizer;
    grown.model.rng.setState(new Rng(run.options.seed).getState());
    model = new RewardModel(grown.model, new Rng(run.options.seed + 300));
    if (run.lora) applyLoRA(model.body, run.lora, run.options.seed);
    const split = heldOutSplit(run.rows.length, run.options.valFraction, run.options.seed, run.rows.map((r) => r.prompt));
    state = {
      kind: 'reward', step: 0, options: run.options, lora: run.lora ?? null,
      data: { path: run.dataPath, sha256: sha256(run.dataText), rows: run.rows.length },
      heldOut: split.val.map((i) => run.rows[i]!.row),
      rng: { batch: new Rng(run.options.seed + 100).getState(), model: model.body.rng.getState() },
      history: [], seconds: 0,
    };
  }
  const o = state.options;
  const held = new Set(state.heldOut);
  const pairs = encodePreferences(tokenizer, run.rows, model.body.config.block_size, run.dataPath);
  const train = pairs.filter((p) => !held.has(p.row));
  const val = pairs.filter((p) => held.has(p.row));
  const batchRng = new Rng();
  batchRng.setState(state.rng.batch);
  const onDevice = backend().device !== undefined;
  moveToBackend(model); // the frozen body too (the optimizer uploads only what it trains); nothing on a host backend
  const lora = loraParameters(model.body);
  // With LoRA the body's adapters and the new head train; without, everything.
  const params: Array<[string, Parameter]> = lora.length
    ? [...lora.map(([n, p]): [string, Parameter] => [`body.${n}`, p]), ...model.score.namedParameters('score.')]
    : model.namedParameters();
  const opt = new AdamW(params, { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
  if (run.resume) restoreMoments(opt, run.resume);
  events.onStart?.({ params: model.numParameters(), trainable: params.reduce((n, [, p]) => n + p.size, 0), trainRows: train.length, valRows: val.length, resumedFrom: state.step });

  let last: RewardEval | null = null;
  model.train();
  const loop: TrainingLoop<PreferenceExample[]> = {
    opt,
    objective: {
      loss: (batch: PreferenceExample[]) => {
        const { chosen, rejected } = pairScores(model, batch);
        return bradleyTerryLoss(chosen, rejected);
      },
    },
    step0: state.step,
    maxSteps: o.maxIters,
    schedule: fineTuneSchedule(o),
    gradClip: o.gradClip,
    nextBatches: () => Array.from({ length: o.gradAccum }, () => Array.from({ length: Math.min(o.batchSize, train.length) }, () => train[batchRng.int(train.length)]!)),
    size: (b) => b.length,
    evalInterval: o.evalInterval,
    evaluate: (step) => {
      const record = (r: Omit<RewardEval, 'step'>): number[] => {
        last = { step, ...r };
        state.history.push({ step, val_loss: last.loss, val_accuracy: last.accuracy });
        events.onEval?.(last);
        return [last.loss];
      };
      return async ? rankPairsAsync(model, val).then(record) : record(rankPairs(model, val));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: () => {
            state.rng = { batch: batchRng.getState(), model: model.body.rng.getState() };
            if (!onDevice) return saveFineTuneCheckpoint(run.out!, model.body, tokenizer, opt, REWARD_STATE_FILE, state, { [REWARD_HEAD_FILE]: model.headFile() });
            // The head's two tensors read back first; the body and the moments by saveFineTuneCheckpointAsync.
            return withHostValues(model.score.parameters(), () => model.headFile()).then((head) =>
              saveFineTuneCheckpointAsync(run.out!, model.body, tokenizer, opt, REWARD_STATE_FILE, state, { [REWARD_HEAD_FILE]: head }));
          },
        }
      : undefined,
    savedIn: run.resume,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      state.step = p.step;
      state.seconds += p.seconds;
      events.onStep?.(p);
    },
  };
  const summary = (result: LoopResult): RewardSummary => {
    const final = last as RewardEval | null;
    return { step: result.step, train_loss: result.loss, val_loss: final?.loss ?? NaN, val_accuracy: final?.accuracy ?? NaN, seconds: state.seconds };
  };
  return { loop, summary };
}
