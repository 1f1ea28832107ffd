/**
 * Direct Preference Optimization (Rafailov et al. 2023): learn from pairs
 * "for this prompt, answer `chosen` is better than `rejected`" without a
 * reward model or reinforcement learning. The policy π is pushed to raise
 * the log-probability of the chosen answer, relative to a frozen reference
 * model, more than that of the rejected one:
 *
 *   loss = mean( −log σ( β · ((log π(c) − log ref(c)) − (log π(r) − log ref(r))) ) )
 *
 * β·(log π − log ref) is the "implicit reward" of an answer; the loss is the
 * Bradley–Terry loss of the two rewards. A sequence's log-probability is the
 * sum over its response tokens only: the prompt is given, not generated.
 *
 * This file is the math (differentiable, on Tensors); the training command
 * that batches preference rows and runs the loop builds on it.
 */
import type { CausalLM } from '../models/causal_lm.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { abs } from '../tensor/ops/abs.js';
import { add, exp, log, neg, scale, sub } from '../tensor/ops/elementwise.js';
import { mean } from '../tensor/ops/reduce.js';
import { concat, reshape, slice } from '../tensor/ops/shape.js';
import { allocStorage, copyStorage, Tensor } from '../tensor/tensor.js';

/** B sequences of T tokens (right-padded), and which of their tokens are the response. */
export interface ResponseBatch {
  /** B·T token ids, row-major. */
  ids: Int32Array;
  shape: [number, number];
  /** B·T flags: 1 where the token at that slot is a response token whose log-probability counts. */
  responseMask: Uint8Array;
}

/**
 * The response mask of sequences whose first promptLen[i] tokens are the
 * prompt and whose tokens from lengths[i] on are padding (lengths default T).
 */
export function responseMask(promptLen: ArrayLike<number>, [B, T]: [number, number], lengths?: ArrayLike<number>): Uint8Array {
  const mask = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    const end = lengths ? lengths[b]! : T;
    // The first token has nothing before it to be predicted from: a response starts at position ≥ 1.
    for (let t = Math.max(promptLen[b]!, 1); t < end; t++) mask[b * T + t] = 1;
  }
  return mask;
}

/**
 * log p(response | prompt) of every sequence: [B], the sum over response
 * tokens of the log-probability the model gives each one from the tokens
 * before it. Differentiable (gradients reach whatever in the model trains).
 *
 * Per row it is −count · (mean cross-entropy over the response tokens): the
 * fused cross-entropy op with every other target ignored.
 */
export function sequenceLogProbs(model: CausalLM, batch: ResponseBatch): Tensor {
  const [B, T] = batch.shape;
  if (batch.ids.length !== B * T || batch.responseMask.length !== B * T) throw new Error(`sequenceLogProbs: ids and responseMask need ${B}×${T} entries`);
  const logits = model.forward(batch.ids, [B, T]).logits; // [B, T, V]
  const V = logits.shape[2]!;
  const rows: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    // Position t predicts token t + 1: its target is that token if it is a response token, else ignored.
    const targets = new Int32Array(T).fill(-1);
    let count = 0;
    for (let t = 0; t + 1 < T; t++) {
      if (batch.responseMask[b * T + t + 1]) {
        targets[t] = batch.ids[b * T + t + 1]!;
        count++;
      }
    }
    if (batch.responseMask[b * T]) throw new Error(`sequenceLogProbs: row ${b}'s first token cannot be a response token (nothing predicts it)`);
    const rowLogits = reshape(slice(logits, 0, b, b + 1), [T, V]);
    rows.push(reshape(scale(crossEntropy(rowLogits, targets), -count), [1]));
  }
  return concat(rows, 0);
}

/** What dpoLoss returns: the loss to minimise, and the statistics a trainer reports. */
export interface DPOResult {
  /** Scalar mean DPO loss, with its graph (backward reaches the policy). */
  loss: Tensor;
  /** β·(log π(c) − log ref(c)) per pair, [B] (values only, no graph). */
  chosenRewards: Tensor;
  /** β·(log π(r) − log ref(r)) per pair, [B]. */
  rejectedRewards: Tensor;
  /** chosenRewards − rejectedRewards, [B]; preferenceAccuracy(values) is the fraction ranked right. */
  margins: Tensor;
}

/**
 * The implicit rewards of B pairs and their margins (chosen − rejected),
 * [B] each, with the graph back to the policy's log-probabilities.
 */
export function implicitRewards(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor, refRejected: Tensor, beta: number): { chosen: Tensor; rejected: Tensor; margins: Tensor } {
  const B = policyChosen.size;
  for (const t of [policyRejected, refChosen, refRejected]) if (t.size !== B) throw new Error(`dpoLoss: log-probabilities of ${B} and ${t.size} pairs`);
  if (!(beta > 0)) throw new Error(`dpoLoss: beta must be positive, got ${beta}`);
  const chosen = scale(sub(policyChosen, refChosen.detach()), beta);
  const rejected = scale(sub(policyRejected, refRejected.detach()), beta);
  return { chosen, rejected, margins: sub(chosen, rejected) };
}

/**
 * The DPO loss over B preference pairs. policy* carry gradients; ref* are
 * the frozen reference model's log-probabilities (computed once, no graph).
 * The statistics are copies in the backend's storage, so they stay valid
 * after a backward pass that frees the activations (on a device backend,
 * `await t.read()` them).
 */
export function dpoLoss(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor, refRejected: Tensor, beta: number): DPOResult {
  const r = implicitRewards(policyChosen, policyRejected, refChosen, refRejected, beta);
  const loss = mean(negLogSigmoid(r.margins));
  return { loss, chosenRewards: valuesOf(r.chosen), rejectedRewards: valuesOf(r.rejected), margins: valuesOf(r.margins) };
}

/** The fraction of pairs whose chosen reward is above the rejected one (margin > 0; a tie counts as wrong). */
export function preferenceAccuracy(margins: ArrayLike<number>): number {
  let wins = 0;
  for (let i = 0; i < margins.length; i++) if (margins[i]! > 0) wins++;
  return margins.length ? wins / margins.length : NaN;
}

/** A copy of t's values, cut from the graph, where the backend keeps values. */
function valuesOf(t: Tensor): Tensor {
  const copy = allocStorage(t.size, false);
  copyStorage(t.storage, 0, copy, 0, t.size);
  return new Tensor(copy, [...t.shape]);
}

/**
 * −log σ(z) = log(1 + e^(−z)), written as (|z| − z)/2 + log(1 + e^(−|z|)) so
 * that no exponential overflows for large |z| (PyTorch's logsigmoid does the
 * same). (|z| − z)/2 is max(−z, 0), but spelled with |z| its gradient at z = 0
 * is the true −½ (with |z|'s gradient 0 there), where relu's kink would give 0
 * — and every DPO pair starts at z = 0, since the policy begins as its own reference.
 */
export function negLogSigmoid(z: Tensor): Tensor {
  const one = Tensor.from([1]);
  const a = abs(z);
  return add(scale(sub(a, z), 0.5), log(add(one, exp(neg(a)))));
}
