import { backend } from '../backend/index.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { linear, type LinearEpilogue } from '../tensor/ops/linear.js';
import { adjoinedStorage, Tensor, toBackend, viewStorage } from '../tensor/tensor.js';
import { envCount } from '../util/env.js';
import { Linear } from './linear.js';
import type { Module, Parameter } from './module.js';
import type { LinearLayer } from './quantized_linear.js';

/**
 * Projections that read the same input — a Llama layer's q_proj, k_proj and
 * v_proj, or its gate_proj and up_proj — run as ONE product when their
 * weights lie end to end in one device allocation: rows [Nq | Nk | Nv] of
 * one [Nq + Nk + Nv, K] matrix, whose product is [q | k | v] side by side,
 * the layout GPT-2's packed c_attn gives (attention reads it in place).
 *
 * On a GPU a decode step is a few dozen small products, each costing a
 * dispatch and the host's time to record it more than the GPU's to run it:
 * three products in one is two dispatches fewer. The values are the same,
 * column for column: each output is the same dot product of the same row
 * of weights with the same input.
 *
 * moveToBackend (placement.ts) lays each group out together; the training
 * arena (arena.ts) keeps a layer's matrices in order, and its biases, so it
 * does too. Each call checks that the storages still adjoin; when they do
 * not (a host backend, a layer replaced by LoRA or int8, weights moved
 * apart) the layers run one by one, as before. Inference only: the joined
 * product records no gradient for the separate weights.
 */
export interface JoinsProjections {
  /** Groups of projections that read one input, each in the order its outputs are laid side by side. */
  readonly joinable: ReadonlyArray<readonly LinearLayer[]>;
}

/** Whether joinedLinear may join (ATTN_JOIN_PROJECTIONS=0 turns it off, for an A/B on a GPU); read when first asked. */
let enabled: boolean | null = null;

/** Turn joining on or off (null: back to ATTN_JOIN_PROJECTIONS, default on); returns the previous setting. */
export function setJoinProjections(on: boolean | null): boolean {
  const was = (enabled ??= envCount('ATTN_JOIN_PROJECTIONS', 1, 'flag') !== 0);
  enabled = on;
  return was;
}

const joined = new WeakMap<LinearLayer, { parts: Tensor[]; weight: Tensor; bias: Tensor | null }>();

/**
 * The layers as one product, x → [x·W₀ᵀ + b₀ | x·W₁ᵀ + b₁ | …], when they are
 * plain Linear layers of one input size whose weights (and biases, if any)
 * adjoin on the device and no gradient is being recorded; else null.
 */
export function joinedLinear(layers: readonly LinearLayer[]): { forward(x: Tensor, then?: LinearEpilogue): Tensor } | null {
  enabled ??= envCount('ATTN_JOIN_PROJECTIONS', 1, 'flag') !== 0;
  if (!enabled || !backend().device || isGradEnabled() || layers.length < 2 || !layers.every((l): l is Linear => l.constructor === Linear)) return null;
  const K = layers[0]!.weight.shape[1]!;
  if (layers.some((l) => l.weight.shape[1] !== K)) return null;
  const withBias = layers[0]!.bias !== null;
  if (layers.some((l) => (l.bias !== null) !== withBias)) return null;
  const parts = layers.flatMap((l) => (l.bias ? [l.weight, l.bias] : [l.weight]));
  let hit = joined.get(layers[0]!);
  if (!hit || hit.parts.length !== parts.length || hit.parts.some((t, i) => t.storage !== parts[i]!.storage)) {
    const weight = adjoinedStorage(layers.map((l) => l.weight.storage));
    const bias = withBias ? adjoinedStorage(layers.map((l) => l.bias!.storage)) : null;
    if (!weight || (withBias && !bias)) return null;
    const N = layers.reduce((n, l) => n + l.weight.shape[0]!, 0);
    // Each part remembered by its storage: a layer whose storage is replaced (moved, re-homed in an arena) is checked again.
    hit = { parts: parts.map((p) => new Tensor(p.storage, p.shape)), weight: new Tensor(weight, [N, K]), bias: bias ? new Tensor(bias, [N]) : null };
    joined.set(layers[0]!, hit);
  }
  const { weight, bias } = hit;
  return { forward: (x, then = {}) => linear(x, weight, bias, then) };
}

/**
 * On a device backend, lay out each joinable group's weights end to end in
 * one allocation, and its biases in another (each parameter then a view of
 * its part), so that joinedLinear can run them as one product. Groups whose
 * parameters are not all on the host, or are not plain Linear layers, are
 * left to be uploaded one by one.
 */
export function placeJoined(module: Module): void {
  for (const [, m] of module.namedModules()) {
    for (const layers of (m as Partial<JoinsProjections>).joinable ?? []) {
      if (!layers.every((l): l is Linear => l.constructor === Linear)) continue;
      placeTogether(layers.map((l) => l.weight));
      if (layers.every((l) => l.bias !== null)) placeTogether(layers.map((l) => l.bias!));
    }
  }
}

/** Parameters copied into one device allocation, in order, each then a view of its part. */
function placeTogether(params: Parameter[]): void {
  if (!params.every((p) => p.storage instanceof Float32Array)) return;
  const host = new Float32Array(params.reduce((n, p) => n + p.size, 0));
  let at = 0;
  for (const p of params) {
    host.set(p.storage as Float32Array, at);
    at += p.size;
  }
  const all = toBackend(host);
  at = 0;
  for (const p of params) {
    p.storage = viewStorage(all, at, p.size);
    at += p.size;
  }
}
