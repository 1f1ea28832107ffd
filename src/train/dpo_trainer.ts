/**
 * `attn dpo`: Direct Preference Optimization over preference rows, on the
 * shared loop (runTraining: progress, held-out evaluation, atomic
 * checkpoints, --resume, the NaN guard). The math is train/dpo.ts.
 *
 * The reference model is the policy as it starts, so its log-probabilities
 * are computed once, before the first update, by the policy itself — no
 * second copy of the model is kept (with LoRA the adapters start at zero, so
 * the same holds). They are saved with each checkpoint so a resumed run
 * compares against the same reference.
 *
 * Only reply tokens count: log π(reply | prompt) sums the log-probabilities
 * of the assistant's tokens (and its end-of-turn marker), the prompt and the
 * template around it are given.
 *
 * On any backend (dpoAsync; dpo is the host driver of the same loop): what
 * the trainer reports — preference accuracy, reward margins, the held-out
 * loss — is computed on the host from the policy's log-probabilities, two
 * numbers a pair (pairStatistics), so a device reads back only those and
 * the loss.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chatTemplateOf } from '../chat/for_tokenizer.js';
import type { PreferenceRow } from '../data/preferences_file.js';
import type { DecoderLM } from '../models/causal_lm.js';
import { padBatch } from '../models/pad_batch.js';
import { readSafetensors, serializeSafetensors, SafetensorsError } from '../io/safetensors.js';
import { backend } from '../backend/index.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { moveToBackend } from '../nn/placement.js';
import { noGrad } from '../tensor/autograd.js';
import { add, mul, scale, sub } from '../tensor/ops/elementwise.js';
import { sum } from '../tensor/ops/reduce.js';
import { slice } from '../tensor/ops/shape.js';
import { allocStorage, copyStorage, readStorage, releaseStorage, Tensor, withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng, type RngState } from '../util/rng.js';
import { sequenceLogProbs, type ResponseBatch } from './dpo.js';
import { runTraining, runTrainingAsync, type LoopResult, type LoopStep, type TrainingEvents, type TrainingLoop } from './loop.js';
import { bradleyTerryLoss, encodePreferences } from './reward_trainer.js';
import { applyLoRA, newFineTuneOptimizer, type LoRASettings } from './sft.js';
import { loadDecoder, readTrainerState, restoreMoments, saveFineTuneCheckpoint, saveFineTuneCheckpointAsync } from './sft_checkpoint.js';
import { heldOutSplit, preferenceTexts, type ChatExample, type PreferenceExample } from './sft_data.js';
import { fineTuneSchedule, type FineTuneOptions } from './sft_options.js';
import { chatVocabulary, CHATML_MARKERS } from './sft_vocabulary.js';

export const DPO_STATE_FILE = 'dpo.json';
export const DPO_REFERENCE_FILE = 'dpo_reference.safetensors';

export interface DpoState {
  kind: 'dpo';
  step: number;
  beta: number;
  nllWeight: number;
  options: FineTuneOptions;
  lora: LoRASettings | null;
  /** The model DPO started from (the reference). */
  init: string;
  data: { path: string; sha256: string; rows: number };
  heldOut: number[];
  rng: { batch: { s: RngState; spare: number | null }; model: { s: RngState; spare: number | null } };
  history: Array<{ step: number; val_loss: number; val_accuracy: number; val_margin: number }>;
  seconds: number;
}

export interface DpoRun {
  rows: PreferenceRow[];
  dataPath: string;
  dataText: string;
  options: FineTuneOptions;
  beta: number;
  /**
   * Weight of an extra term: the chosen replies' mean negative log-likelihood
   * per token (RPO, Pang et al. 2024). 0 is plain DPO. DPO alone can satisfy
   * its loss by pushing the rejected reply down while the chosen one stays
   * improbable — the margin grows, the model's greedy reply does not change;
   * the NLL term also pulls the chosen reply up.
   */
  nllWeight?: number;
  init?: string;
  resume?: string;
  out?: string;
  lora?: LoRASettings;
}

/** How the policy ranks pairs against the reference: DPO loss, preference accuracy, mean reward margin. */
export interface DpoEval {
  step: number;
  loss: number;
  accuracy: number;
  /** Mean of β·((log π(c) − log ref(c)) − (log π(r) − log ref(r))). */
  margin: number;
  /** Mean implicit rewards β·(log π − log ref) of the chosen and the rejected replies. */
  chosenReward: number;
  rejectedReward: number;
}

export interface DpoStepInfo extends LoopStep {
  /** This step's pairs: fraction ranked right, and mean margin. */
  accuracy: number;
  margin: number;
}

export interface DpoEvents extends TrainingEvents<{ params: number; trainable: number; trainRows: number; valRows: number; resumedFrom: number }, DpoEval, DpoStepInfo> {}

/** Chosen and rejected replies of `pairs` as one right-padded batch [chosen…, rejected…] with its reply mask. */
export function responseBatch(pairs: readonly PreferenceExample[]): ResponseBatch {
  const rows: ChatExample[] = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  const { ids, B, T } = padBatch(rows.map((r) => r.ids), Infinity);
  const responseMask = new Uint8Array(B * T);
  rows.forEach((r, b) => responseMask.set(r.mask, b * T));
  return { ids, shape: [B, T], responseMask };
}

/** log π(reply | prompt) of the chosen and rejected replies, [n] each, with the graph; `all` is both, [2n]. */
export function pairLogProbs(model: DecoderLM, pairs: readonly PreferenceExample[]): { all: Tensor; chosen: Tensor; rejected: Tensor } {
  const n = pairs.length;
  const all = sequenceLogProbs(model, responseBatch(pairs));
  return { all, chosen: slice(all, 0, 0, n), rejected: slice(all, 0, n, 2 * n) };
}

/**
 * The policy's log-probabilities of every pair, [chosen, rejected] by row
 * number, `batch` pairs at a time, without a graph, as a computation that
 * yields each batch's values to be read (tensor/value_reads.ts): on a device
 * each batch's pass is scratch, and only its 2·batch numbers come back.
 */
function* pairLogProbReads(model: DecoderLM, pairs: readonly PreferenceExample[], batch: number): ValueReads<Map<number, [number, number]>> {
  const out = new Map<number, [number, number]>();
  for (let i = 0; i < pairs.length; i += batch) {
    const part = pairs.slice(i, i + batch);
    const all = withDeviceScratch(() => noGrad(() => pairLogProbs(model, part).all), (t) => [t.storage]);
    const [values] = yield [all];
    part.forEach((p, j) => out.set(p.row, [values![j]!, values![part.length + j]!]));
  }
  return out;
}

/** The reference log-probabilities of every pair, by row number (no gradients). Host backends. */
export function referenceLogProbs(model: DecoderLM, pairs: readonly PreferenceExample[], batch = 16): Map<number, [number, number]> {
  return inEvalMode(model, () => valuesNow(pairLogProbReads(model, pairs, batch)));
}

/** referenceLogProbs on any backend. */
export function referenceLogProbsAsync(model: DecoderLM, pairs: readonly PreferenceExample[], batch = 16): Promise<Map<number, [number, number]>> {
  return inEvalMode(model, () => valuesAwaited(pairLogProbReads(model, pairs, batch)));
}

/**
 * The DPO loss, −log σ(β·(log π(c) − log ref(c)) − β·(log π(r) − log ref(r))):
 * the Bradley–Terry loss of the two implicit rewards. Computed here through
 * bradleyTerryLoss (a two-way cross-entropy) rather than dpo.ts's dpoLoss,
 * whose −log σ via |z| has a zero gradient at z = 0 — exactly where every
 * pair starts, the policy being its own reference — so training never moves.
 */
export function implicitRewardLoss(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor, refRejected: Tensor, beta: number): Tensor {
  return bradleyTerryLoss(scale(sub(policyChosen, refChosen), beta), scale(sub(policyRejected, refRejected), beta));
}

/** Mean over pairs of −log π(chosen) / (its reply tokens): the NLL term of RPO (`weights`: chosenNllWeights(pairs)). */
export function chosenNll(policyChosen: Tensor, pairs: readonly PreferenceExample[], weights = chosenNllWeights(pairs)): Tensor {
  return sum(mul(policyChosen, weights));
}

/** −1 / (reply tokens) / (pairs) per pair: what chosenNll weighs each log-probability by. */
export function chosenNllWeights(pairs: readonly PreferenceExample[]): Tensor {
  return Tensor.from(pairs.map((p) => -1 / Math.max(1, p.chosen.mask.reduce((n, m) => n + m, 0)) / pairs.length), [pairs.length]);
}

function refTensors(ref: Map<number, [number, number]>, pairs: readonly PreferenceExample[]): { chosen: Tensor; rejected: Tensor } {
  return {
    chosen: Tensor.from(pairs.map((p) => ref.get(p.row)![0]), [pairs.length]),
    rejected: Tensor.from(pairs.map((p) => ref.get(p.row)![1]), [pairs.length]),
  };
}

/**
 * What a trainer reports of pairs whose policy and reference
 * log-probabilities are known (host numbers, no graph): the implicit rewards
 * β·(log π − log ref), their margins (a tie counts as ranked wrong) and the
 * DPO loss −log σ(margin), summed over the pairs.
 */
export function pairStatistics(policy: Map<number, [number, number]>, ref: Map<number, [number, number]>, beta: number): { n: number; right: number; loss: number; margin: number; chosenReward: number; rejectedReward: number } {
  const s = { n: 0, right: 0, loss: 0, margin: 0, chosenReward: 0, rejectedReward: 0 };
  for (const [row, [pc, pr]] of policy) {
    const [rc, rr] = ref.get(row)!;
    const chosen = beta * (pc - rc);
    const rejected = beta * (pr - rr);
    const m = chosen - rejected;
    s.n++;
    if (m > 0) s.right++;
    s.loss += Math.max(-m, 0) + Math.log1p(Math.exp(-Math.abs(m))); // −log σ(m), stable
    s.margin += m;
    s.chosenReward += chosen;
    s.rejectedReward += rejected;
  }
  return s;
}

function evaluation(stats: ReturnType<typeof pairStatistics>): Omit<DpoEval, 'step'> {
  const n = Math.max(1, stats.n);
  return { loss: stats.loss / n, accuracy: stats.right / n, margin: stats.margin / n, chosenReward: stats.chosenReward / n, rejectedReward: stats.rejectedReward / n };
}

/** DPO loss and statistics of the policy on `pairs` against the reference (no gradients). Host backends. */
export function dpoEvaluate(model: DecoderLM, pairs: readonly PreferenceExample[], ref: Map<number, [number, number]>, beta: number, batch = 16): Omit<DpoEval, 'step'> {
  return evaluation(pairStatistics(referenceLogProbs(model, pairs, batch), ref, beta));
}

/** dpoEvaluate on any backend. */
export async function dpoEvaluateAsync(model: DecoderLM, pairs: readonly PreferenceExample[], ref: Map<number, [number, number]>, beta: number, batch = 16): Promise<Omit<DpoEval, 'step'>> {
  return evaluation(pairStatistics(await referenceLogProbsAsync(model, pairs, batch), ref, beta));
}

function referenceFile(ref: Map<number, [number, number]>): Uint8Array {
  const rows = [...ref.keys()].sort((a, b) => a - b);
  return serializeSafetensors(
    new Map([
      ['rows', { dtype: 'I32', shape: [rows.length], data: Int32Array.from(rows) }],
      ['chosen', { dtype: 'F32', shape: [rows.length], data: Float32Array.from(rows, (r) => ref.get(r)![0]) }],
      ['rejected', { dtype: 'F32', shape: [rows.length], data: Float32Array.from(rows, (r) => ref.get(r)![1]) }],
    ]),
    { format: 'attn-dpo-reference' },
  );
}

function readReferenceFile(dir: string): Map<number, [number, number]> {
  const path = join(dir, DPO_REFERENCE_FILE);
  if (!existsSync(path)) throw new UserError(`--resume ${dir}: no ${DPO_REFERENCE_FILE} (the reference log-probabilities)`);
  try {
    const t = readSafetensors(path).tensors;
    const rows = t.get('rows')!.data as Int32Array;
    const c = t.get('chosen')!.data as Float32Array;
    const r = t.get('rejected')!.data as Float32Array;
    return new Map(Array.from(rows, (row, i) => [row, [c[i]!, r[i]!]]));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Prepare a model for DPO on these rows: its vocabulary grown to encode them if needed. */
export function dpoPolicy(init: string, rows: readonly PreferenceRow[]): { model: DecoderLM; tokenizer: Tokenizer } {
  const loaded = loadDecoder(init, '--init');
  const t0 = chatTemplateOf(loaded.tokenizer);
  const grown = chatVocabulary(loaded.model, loaded.tokenizer, rows.flatMap((r) => preferenceTexts(t0, r)), t0.isDefault ? CHATML_MARKERS : []);
  return { model: grown.model, tokenizer: grown.tokenizer };
}

export interface DpoSummary { step: number; train_loss: number; val_loss: number; val_accuracy: number; val_margin: number; seconds: number }

/** DPO on a host backend; dpoAsync runs on any backend. */
export function dpo(run: DpoRun, events: DpoEvents = {}): DpoSummary {
  const setup = dpoSetup(run);
  const ref = setup.ref ?? referenceLogProbs(setup.model, setup.pairs);
  const t = dpoTrainingRun(setup, ref, events, false);
  return t.summary(runTraining(t.loop));
}

/**
 * dpo on any backend. On a device backend (webgpu) the whole model (a frozen
 * base too) is uploaded once; the reference log-probabilities, each step and
 * the held-out evaluation run there, and only numbers come back: a pass's
 * log-probabilities (2 a pair) and the loss. A checkpoint reads the weights
 * and the Adam moments back once.
 */
export async function dpoAsync(run: DpoRun, events: DpoEvents = {}): Promise<DpoSummary> {
  const setup = dpoSetup(run);
  const ref = setup.ref ?? (await referenceLogProbsAsync(setup.model, setup.pairs));
  const t = dpoTrainingRun(setup, ref, events, true);
  return t.summary(await runTrainingAsync(t.loop));
}

interface DpoSetup {
  run: DpoRun;
  state: DpoState;
  model: DecoderLM;
  tokenizer: Tokenizer;
  pairs: PreferenceExample[];
  /** The saved reference of a resumed run; null when it is still to be computed (the policy before its first update). */
  ref: Map<number, [number, number]> | null;
}

/** The model, its state and the encoded pairs of a new or resumed run. */
function dpoSetup(run: DpoRun): DpoSetup {
  if (!run.init === !run.resume) throw new Error('dpo: exactly one of init and resume');
  if (!(run.beta > 0 && Number.isFinite(run.beta))) throw new UserError(`--beta must be a positive number (got ${run.beta})`);
  if (!((run.nllWeight ?? 0) >= 0)) throw new UserError(`--nll-weight must be ≥ 0 (got ${run.nllWeight})`);
  let state: DpoState;
  let model: DecoderLM;
  let tokenizer: Tokenizer;
  let ref: Map<number, [number, number]> | null = null;
  if (run.resume) {
    state = readTrainerState<DpoState>(run.resume, DPO_STATE_FILE, 'attn dpo');
    if (state.data.sha256 !== sha256(run.dataText)) throw new UserError(`--resume ${run.resume}: the data differs from the one this checkpoint was trained on (${state.data.path})`);
    state.options = { ...state.options, maxIters: run.options.maxIters };
    ({ model, tokenizer } = loadDecoder(run.resume, '--resume', { keepAdapter: true }));
    model.rng.setState(state.rng.model);
    ref = readReferenceFile(run.resume);
  } else {
    ({ model, tokenizer } = dpoPolicy(run.init!, run.rows));
    model.rng.setState(new Rng(run.options.seed).getState());
    if (run.lora) applyLoRA(model, run.lora, run.options.seed);
    const split = heldOutSplit(run.rows.length, run.options.valFraction, run.options.seed, run.rows.map((r) => r.prompt));
    state = {
      kind: 'dpo', step: 0, beta: run.beta, nllWeight: run.nllWeight ?? 0, options: run.options, lora: run.lora ?? null, init: run.init!,
      data: { path: run.dataPath, sha256: sha256(run.dataText), rows: run.rows.length },
      heldOut: split.val.map((i) => run.rows[i]!.row),
      rng: { batch: new Rng(run.options.seed + 100).getState(), model: model.rng.getState() },
      history: [], seconds: 0,
    };
  }
  const pairs = encodePreferences(tokenizer, run.rows, model.config.block_size, run.dataPath);
  moveToBackend(model); // the frozen weights too (the optimizer uploads only what it trains); nothing on a host backend
  return { run, state, model, tokenizer, pairs, ref };
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function dpoTrainingRun(setup: DpoSetup, ref: Map<number, [number, number]>, events: DpoEvents, async: boolean): { loop: TrainingLoop<PreferenceExample[]>; summary(result: LoopResult): DpoSummary } {
  const { run, state, model, tokenizer, pairs } = setup;
  const o = state.options;
  const beta = state.beta;
  const nllWeight = state.nllWeight ?? 0;
  const held = new Set(state.heldOut);
  const train = pairs.filter((p) => !held.has(p.row));
  const val = pairs.filter((p) => held.has(p.row));
  const batchRng = new Rng();
  batchRng.setState(state.rng.batch);
  const onDevice = backend().device !== undefined;
  const opt = newFineTuneOptimizer(model, o);
  if (run.resume) restoreMoments(opt, run.resume);
  events.onStart?.({ params: model.numParameters(), trainable: opt.params.reduce((n, [, p]) => n + p.size, 0), trainRows: train.length, valRows: val.length, resumedFrom: state.step });

  let stepStats = { right: 0, n: 0, margin: 0 };
  const tally = (policy: Map<number, [number, number]>): void => {
    const s = pairStatistics(policy, ref, beta);
    stepStats.right += s.right;
    stepStats.n += s.n;
    stepStats.margin += s.margin;
  };
  let last: DpoEval | null = null;
  model.train();
  const loop: TrainingLoop<PreferenceExample[]> = {
    opt,
    objective: {
      loss: (batch: PreferenceExample[]) => {
        const pol = pairLogProbs(model, batch);
        const r = refTensors(ref, batch);
        let loss = implicitRewardLoss(pol.chosen, pol.rejected, r.chosen, r.rejected, beta);
        // (The reference values and weights are uploads of this micro-batch's pass: the step gives them back after its backward.)
        if (nllWeight > 0) loss = add(loss, scale(chosenNll(pol.chosen, batch, chosenNllWeights(batch)), nllWeight));
        // The step's statistics come from the policy's 2n log-probabilities, copied before backward frees them.
        const logProbs = allocStorage(2 * batch.length, false);
        copyStorage(pol.all.storage, 0, logProbs, 0, 2 * batch.length);
        const byRow = (v: Float32Array) => new Map(batch.map((p, j) => [p.row, [v[j]!, v[batch.length + j]!] as [number, number]]));
        if (!onDevice) tally(byRow(logProbs as Float32Array));
        else {
          // Read without waiting (the step stays queued); it resolves, in queue order, before the loss read
          // that prints the progress line.
          void readStorage(logProbs).then((v) => {
            tally(byRow(v));
            releaseStorage(logProbs);
          }, () => {} /* a lost device is reported by the loss read */);
        }
        return loss;
      },
    },
    step0: state.step,
    maxSteps: o.maxIters,
    schedule: fineTuneSchedule(o),
    gradClip: o.gradClip,
    nextBatches: () => {
      stepStats = { right: 0, n: 0, margin: 0 };
      return Array.from({ length: o.gradAccum }, () => Array.from({ length: Math.min(o.batchSize, train.length) }, () => train[batchRng.int(train.length)]!));
    },
    size: (b) => b.length,
    evalInterval: o.evalInterval,
    evaluate: (step) => {
      const record = (e: Omit<DpoEval, 'step'>): number[] => {
        last = { step, ...e };
        state.history.push({ step, val_loss: last.loss, val_accuracy: last.accuracy, val_margin: last.margin });
        events.onEval?.(last);
        return [last.loss];
      };
      return async ? dpoEvaluateAsync(model, val, ref, beta).then(record) : record(dpoEvaluate(model, val, ref, beta));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: () => {
            state.rng = { batch: batchRng.getState(), model: model.rng.getState() };
            const extra = { [DPO_REFERENCE_FILE]: referenceFile(ref) };
            return onDevice
              ? saveFineTuneCheckpointAsync(run.out!, model, tokenizer, opt, DPO_STATE_FILE, state, extra)
              : saveFineTuneCheckpoint(run.out!, model, tokenizer, opt, DPO_STATE_FILE, state, extra);
          },
        }
      : undefined,
    savedIn: run.resume,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      state.step = p.step;
      state.seconds += p.seconds;
      events.onStep?.({ ...p, accuracy: stepStats.right / Math.max(1, stepStats.n), margin: stepStats.margin / Math.max(1, stepStats.n) });
    },
  };
  const summary = (result: LoopResult): DpoSummary => {
    const final = last as DpoEval | null;
    return { step: result.step, train_loss: result.loss, val_loss: final?.loss ?? NaN, val_accuracy: final?.accuracy ?? NaN, val_margin: final?.margin ?? NaN, seconds: state.seconds };
  };
  return { loop, summary };
}
