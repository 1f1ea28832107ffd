import { decoderHeadWith, type DecoderHeadWeights, type DecoderLayerWeights, type DecoderStepCache, type StepMatrix } from '../decoder_step.js';
import { GGML_TYPE, INTERLEAVE, quantRowBytes } from '../quantized_matrix.js';
import type { Backend } from '../backend.js';
import { interleaveOnce, type Addon } from './index.js';

/** decoder_step.h's StepLinearKind: fp32 and int8 rows, or a ggml quant type's number. */
const KIND_F32 = -1;
const KIND_INT8 = -2;

/** A prepared layer: the addon's External of raw pointers, and the arrays it points into (kept alive with it). */
interface Plan {
  handle: unknown;
  arrays: Array<Float32Array | Int8Array | Uint8Array | null>;
  scratch: Float32Array;
}

/** One matrix's addon arguments (kind, N, K, interleave; w, scale|null, bias|null), appended to ints and arrays. */
function addMatrix(a: Addon, ints: number[], arrays: Plan['arrays'], m: StepMatrix): void {
  if (m.kind === 'quant') {
    const w = m.matrix;
    if (w.data.length !== w.rows * quantRowBytes(w.type, w.cols)) throw new Error(`decoderLayerStep: ${w.data.length} bytes for a ${w.rows}×${w.cols} ${w.type} matrix`);
    interleaveOnce(a, w);
    ints.push(GGML_TYPE[w.type], w.rows, w.cols, w.layout === 'rows16' ? INTERLEAVE : 0);
    arrays.push(w.data, null, m.bias);
  } else {
    ints.push(m.kind === 'f32' ? KIND_F32 : KIND_INT8, m.rows, m.cols, 0);
    arrays.push(m.weight, m.kind === 'int8' ? m.scale : null, m.bias);
  }
}

/** addon.cc's decoderLayerPrepare arguments for one layer: sizes and kinds as ints, the arrays in order. */
function describe(a: Addon, s: DecoderLayerWeights): Pick<Plan, 'arrays'> & { ints: Int32Array } {
  const ints = [s.nEmbd, s.nHead, s.nKvHead, s.headDim, s.hidden, s.ropeLayout === 'half' ? 1 : 0];
  const arrays: Plan['arrays'] = [s.inputNorm, s.postNorm];
  for (const m of [s.q, s.k, s.v, s.o, s.gate, s.up, s.down]) addMatrix(a, ints, arrays, m);
  return { ints: Int32Array.from(ints), arrays };
}

/**
 * The native backend's decoderLayerStep and decoderLayersStep: each layer's
 * weights are turned into the addon's pointer record the first time the layer
 * runs (a WeakMap keyed by the weights object, which the caller keeps for as
 * long as the model), then every token is one addon call per layer, or one
 * for the whole stack (one hand-off to the thread pool a token; layers whose
 * sizes or matrix types differ go one by one).
 */
export function nativeDecoderSteps(a: Addon, self: () => Backend<Float32Array>): Pick<Backend<Float32Array>, 'decoderLayerStep' | 'decoderLayersStep'> {
  const plans = new WeakMap<DecoderLayerWeights, Plan>();
  const heads = new WeakMap<DecoderHeadWeights, Omit<Plan, 'scratch'>>();
  const headOf = (h: DecoderHeadWeights) => {
    let plan = heads.get(h);
    if (!plan) {
      const ints: number[] = [];
      const arrays: Plan['arrays'] = [h.norm];
      addMatrix(a, ints, arrays, h.out);
      plan = { handle: a.decoderHeadPrepare(Int32Array.from(ints), arrays, h.eps), arrays };
      heads.set(h, plan);
    }
    return plan;
  };
  const planOf = (s: DecoderLayerWeights): Plan => {
    let plan = plans.get(s);
    if (!plan) {
      const { ints, arrays } = describe(a, s);
      const handle = a.decoderLayerPrepare(ints, arrays, s.eps);
      plan = { handle, arrays, scratch: new Float32Array(a.decoderStepScratch(handle)) };
      plans.set(s, plan);
    }
    return plan;
  };
  const check = (s: DecoderLayerWeights, kv: DecoderStepCache) => {
    if ((kv.past + 1) * s.nKvHead * s.headDim > kv.k.length) throw new Error(`KV cache overflow: slot ${kv.past} of a cache of ${kv.cap}`);
  };
  const decoderLayerStep = (s: DecoderLayerWeights, x: Float32Array, kv: DecoderStepCache, cos: Float32Array, sin: Float32Array): void => {
    const plan = planOf(s);
    check(s, kv);
    a.decoderLayerStep(plan.handle, x, kv.k, kv.v, kv.cap, kv.past, kv.start, cos, sin, plan.scratch);
  };
  // A decode loop passes the same layers and the same caches every token (fused_decode keeps one array of
  // cache records a KVCache): the addon's stack of their pointers is prepared once for such an array and
  // kept with it (weakly: dropped with the cache), then checked each token by identity alone. After a
  // token's weights have streamed through the caches, every object the JS between tokens touches is a
  // miss: unpacking 30 plans and 60 cache arrays a token cost more than the call's own work
  // (docs/quantized_inference.md, ninth pass).
  interface Stack { layers: readonly DecoderLayerWeights[]; elems: DecoderLayerWeights[]; ks: Float32Array[]; vs: Float32Array[]; room: number; ps: Plan[]; handle: unknown }
  const stacks = new WeakMap<readonly DecoderStepCache[], Stack>();
  const stackFor = (layers: readonly DecoderLayerWeights[], kvs: readonly DecoderStepCache[]): Stack => {
    const st = stacks.get(kvs);
    if (st && st.layers === layers) {
      let same = true;
      for (let i = 0; same && i < layers.length; i++) same = layers[i] === st.elems[i] && kvs[i]!.k === st.ks[i] && kvs[i]!.v === st.vs[i];
      if (same) return st;
    }
    const ps = layers.map(planOf);
    const ks = kvs.map((kv) => kv.k), vs = kvs.map((kv) => kv.v);
    // Slots every layer's cache holds (check's bound, once).
    let room = Infinity;
    layers.forEach((s, i) => { room = Math.min(room, Math.floor(Math.min(ks[i]!.length, vs[i]!.length) / (s.nKvHead * s.headDim))); });
    const fresh = { layers, elems: [...layers], ks, vs, room, ps, handle: a.decoderStackPrepare(ps.map((p) => p.handle), ks, vs) };
    stacks.set(kvs, fresh);
    return fresh;
  };
  const decoderLayersStep = (layers: readonly DecoderLayerWeights[], x: Float32Array, kvs: readonly DecoderStepCache[], cos: Float32Array, sin: Float32Array, head?: { weights: DecoderHeadWeights; logits: Float32Array }): void => {
    if (layers.length === 0) return;
    if (kvs.length !== layers.length) throw new Error(`decoderLayersStep: ${kvs.length} caches for ${layers.length} layers`);
    const kv0 = kvs[0]!;
    let same = true;
    for (let i = 1; same && i < kvs.length; i++) {
      const kv = kvs[i]!;
      same = kv.past === kv0.past && kv.cap === kv0.cap && kv.start === kv0.start;
    }
    let ran = false;
    if (same) {
      const st = stackFor(layers, kvs);
      if (kv0.past + 1 > st.room) throw new Error(`KV cache overflow: slot ${kv0.past} of a cache of ${kv0.cap}`);
      ran = head
        ? a.decoderStackStep(st.handle, x, kv0.cap, kv0.past, kv0.start, cos, sin, st.ps[0]!.scratch, headOf(head.weights).handle, head.logits)
        : a.decoderStackStep(st.handle, x, kv0.cap, kv0.past, kv0.start, cos, sin, st.ps[0]!.scratch);
    }
    if (ran) return;
    layers.forEach((s, i) => decoderLayerStep(s, x, kvs[i]!, cos, sin));
    if (head) decoderHeadWith(self(), head.weights, x, head.logits);
  };
  return { decoderLayerStep, decoderLayersStep };
}
