import { backend } from '../backend/index.js';
import type { DecoderHeadWeights, DecoderLayerWeights, DecoderStepCache, StepMatrix } from '../backend/decoder_step.js';
import { isHost } from '../backend/storage.js';
import { Llama, type LlamaDecoderLayer } from '../models/llama.js';
import { BlockQuantizedLinear } from '../nn/block_quantized.js';
import { GatedFeedForward } from '../nn/feed_forward.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { QuantizedLinear } from '../nn/quantized_linear.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { ropeAngles } from '../tensor/ops/rope.js';
import { reshape } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv_cache.js';

/**
 * Batch-1 decoding of a Llama-family model with each decoder layer as one
 * backend call (backend/decoder_step.ts says why): the token's embedding, then
 * backend().decoderLayerStep for every layer on one residual-stream buffer
 * (decoderLayersStep: all of them, and the final RMSNorm and the output head
 * when the head is a matrix it knows, in one call, where the backend has it;
 * else the final RMSNorm and the head as usual). The same arithmetic as
 * the model's forward (a test compares the two), used by forwardCached for one
 * new token of one row when the model and backend allow it:
 *   - a Llama in eval mode, gradients off, on a backend with decoderLayerStep
 *     (js, native) and a host KV cache;
 *   - every projection a plain Linear, QuantizedLinear (int8 rows) or
 *     BlockQuantizedLinear (GGUF blocks), so a LoRA-wrapped or otherwise
 *     replaced layer falls back to the op-by-op path;
 *   - `ATTN_FUSED_DECODE=0` (or setFusedDecode(false)) turns it off, for A/B
 *     measurements and the per-op profile.
 */

let enabled = process.env.ATTN_FUSED_DECODE !== '0';

/** Turn the fused decode path on or off (default on; ATTN_FUSED_DECODE=0 starts it off). Returns the previous setting. */
export function setFusedDecode(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * A model's layers described for decoderLayerStep (null: a layer the fused
 * step does not know), with the modules they were read from, to notice a
 * layer replaced since (quantized, wrapped by an adapter, restored).
 */
interface Described {
  layers: DecoderLayerWeights[] | null;
  /** The final RMSNorm and lm_head, for decoderLayersStep (null: a head it does not know). */
  head: DecoderHeadWeights | null;
  modules: Module[];
}

const described = new WeakMap<Llama, Described>();

/** The matrix of a projection, or null when the layer is of a kind the fused step does not know. */
function matrixOf(m: Module): StepMatrix | null {
  const cls = m.constructor;
  if (cls === Linear) {
    const l = m as Linear;
    const [rows, cols] = l.weight.shape as [number, number];
    return { kind: 'f32', weight: l.weight.data, rows, cols, bias: l.bias?.data ?? null };
  }
  if (cls === QuantizedLinear) {
    const l = m as QuantizedLinear;
    const [rows, cols] = l.weight.shape;
    return { kind: 'int8', weight: l.weight.data, scale: l.weight.scale, rows, cols, bias: l.bias?.data ?? null };
  }
  if (cls === BlockQuantizedLinear) {
    const l = m as BlockQuantizedLinear;
    return { kind: 'quant', matrix: l.matrix, bias: l.bias?.data ?? null };
  }
  return null;
}

/** The modules a layer's step reads, in order: the two norms, q, k, v, o, gate, up, down. */
function partsOf(layer: LlamaDecoderLayer): Module[] {
  const a = layer.self_attn;
  const f = layer.mlp;
  return [layer.input_layernorm, layer.post_attention_layernorm, a.q_proj, a.k_proj, a.v_proj, a.o_proj, f.gate_proj, f.up_proj, f.down_proj];
}

function describe(model: Llama, modules: Module[]): DecoderLayerWeights[] | null {
  const c = model.config;
  const layers: DecoderLayerWeights[] = [];
  for (const [i, layer] of model.model.layers.entries()) {
    if (!(layer.mlp instanceof GatedFeedForward) || layer.mlp.activation !== 'silu' || layer.mlp.hidden_dropout) return null;
    const [inputNorm, postNorm, ...projections] = modules.slice(9 * i, 9 * i + 9);
    if (inputNorm !== layer.input_layernorm || postNorm !== layer.post_attention_layernorm) return null;
    const m = projections.map(matrixOf);
    if (m.some((x) => x === null)) return null;
    const [q, k, v, o, gate, up, down] = m as StepMatrix[];
    if (layer.input_layernorm.eps !== layer.post_attention_layernorm.eps) return null;
    layers.push({
      inputNorm: layer.input_layernorm.weight.data, postNorm: layer.post_attention_layernorm.weight.data, eps: layer.input_layernorm.eps,
      q: q!, k: k!, v: v!, o: o!, gate: gate!, up: up!, down: down!,
      nEmbd: c.n_embd, nHead: c.n_head, nKvHead: c.n_kv_head, headDim: c.head_dim, hidden: c.intermediate_size, ropeLayout: 'half',
    });
  }
  return layers;
}

function describeHead(model: Llama, layers: DecoderLayerWeights[] | null): DecoderHeadWeights | null {
  const norm = model.model.norm;
  const out = matrixOf(model.lm_head as Module);
  if (!layers || !out || norm.constructor !== model.model.layers[0]?.input_layernorm.constructor) return null;
  return { norm: norm.weight.data, eps: norm.eps, out };
}

/** Whether the model still holds the modules `d` was read from (in partsOf's order, without building any list: this runs every token). */
function unchanged(model: Llama, d: Described): boolean {
  const layers = model.model.layers;
  const m = d.modules;
  if (m.length !== 9 * layers.length + 2) return false;
  let j = 0;
  for (const layer of layers) {
    const a = layer.self_attn;
    const f = layer.mlp;
    if (m[j] !== layer.input_layernorm || m[j + 1] !== layer.post_attention_layernorm || m[j + 2] !== a.q_proj || m[j + 3] !== a.k_proj || m[j + 4] !== a.v_proj ||
      m[j + 5] !== a.o_proj || m[j + 6] !== f.gate_proj || m[j + 7] !== f.up_proj || m[j + 8] !== f.down_proj) return false;
    j += 9;
  }
  return m[j++] === model.model.norm && m[j] === (model.lm_head as Module);
}

/** The model's description, built once and again whenever one of the modules it reads was replaced. */
function describedModel(model: Llama): Described {
  const d = described.get(model);
  if (d && unchanged(model, d)) return d;
  const modules = [...model.model.layers.flatMap(partsOf), model.model.norm, model.lm_head as Module];
  const layers = describe(model, modules);
  const fresh = { layers, head: describeHead(model, layers), modules };
  described.set(model, fresh);
  return fresh;
}

/** Each layer's cache as decoderLayerStep reads it: one array of records a cache, refreshed in place every token (no new objects a token). */
const stepCachesOf = new WeakMap<KVCache, DecoderStepCache[]>();
function stepCaches(cache: KVCache, n: number, start: number): DecoderStepCache[] {
  let kvs = stepCachesOf.get(cache);
  if (!kvs || kvs.length !== n) {
    kvs = Array.from({ length: n }, () => ({ k: new Float32Array(0), v: new Float32Array(0), cap: 0, past: 0, start: 0 }));
    stepCachesOf.set(cache, kvs);
  }
  for (let i = 0; i < n; i++) {
    const kv = cache.layers[i]!, r = kvs[i]!;
    r.k = kv.k as Float32Array; // host storage: fusedDecodeStep checked
    r.v = kv.v as Float32Array;
    r.cap = kv.cap;
    r.past = kv.past;
    r.start = start;
  }
  return kvs;
}

/**
 * Scores [1, vocab] for the token after `id`, which goes to the cache's next
 * slot; null (and nothing done) when the fused path does not apply, so that
 * the caller runs the model's forward instead. `into` (vocab floats, the
 * caller's): where the scores go when the whole step is one backend call,
 * instead of a new array a token (for SmolLM2, a fresh 196 KB array cost
 * about 0.5 ms of CPU a token, ~1/8 of a 1-thread step: docs/quantized_inference.md, sixth pass).
 */
export function fusedDecodeStep(model: unknown, id: number, cache: KVCache, into?: Float32Array): Tensor | null {
  const step = backend().decoderLayerStep;
  if (!enabled || !step || !(model instanceof Llama) || model.training || isGradEnabled() || cache.batch !== 1) return null;
  const kv0 = cache.layers[0];
  if (!kv0 || !isHost(kv0.k)) return null;
  const { layers, head } = describedModel(model);
  if (!layers) return null;
  const c = model.config;
  const slot = cache.length;
  if (slot >= cache.capacity) throw new Error(`KV cache overflow: ${slot} + 1 positions > capacity ${cache.capacity}`);
  const { cos, sin } = ropeAngles([cache.position(0, slot)], c.head_dim, c.rope_theta, c.rope_scaling ?? null);
  // The residual stream: a copy of the token's embedding row, updated in place by every layer.
  const x = Float32Array.from(model.model.embed_tokens.forward(Int32Array.of(id), [1, 1]).data);
  const start = cache.start[0]!;
  const kvs = stepCaches(cache, layers.length, start);
  // The whole stack in one backend call where the backend has it (native: one thread-pool job a token).
  const stack = backend().decoderLayersStep;
  if (stack && head) {
    // ... and the head in the same call: the token's whole forward is one hand-off to the native pool.
    const logits = into?.length === c.vocab_size ? into : new Float32Array(c.vocab_size);
    stack.call(backend(), layers, x, kvs, cos, sin, { weights: head, logits });
    cache.advance(1);
    return new Tensor(logits, [1, c.vocab_size]);
  }
  if (stack) stack.call(backend(), layers, x, kvs, cos, sin);
  else layers.forEach((layer, i) => step.call(backend(), layer, x, kvs[i]!, cos, sin));
  cache.advance(1);
  const h = model.model.norm.forward(new Tensor(x, [1, 1, c.n_embd]));
  return reshape(model.lm_head.forward(h), [1, c.vocab_size]);
}
