import type { Backend } from './backend.js';
import type { QuantizedMatrix } from './quantized_matrix.js';

/**
 * One decoder layer of a pre-norm Llama-family model (RMSNorm, grouped-query
 * attention with RoPE, SwiGLU) run for ONE new token, as one backend call.
 *
 * Why a fused entry point: decoding one token at batch 1 is, per layer, a
 * dozen small matrix–vector products and element-wise steps. Issued one by one
 * through tensors and ops, the JavaScript around each (a tensor, its storage,
 * autograd's bookkeeping, the call into the addon) costs more than the
 * arithmetic — a 576×192 q4_0 product takes about 5 µs. The native backend
 * runs the whole layer in C++ (native/src/decoder_step.cc);
 * `decoderLayerStepWith` below is the same sequence as calls of any host
 * backend, the js backend's implementation and the reference in tests.
 *
 * The weights are described once (DecoderLayerWeights, built by
 * generate/fused_decode.ts from the model's modules); the step reads the
 * residual stream x [C] and updates it in place.
 */

/** The matrix W [rows = N, cols = K] of y = x·Wᵀ + bias, in any of the formats a decoder layer may hold. */
export type StepMatrix =
  | { kind: 'f32'; weight: Float32Array; rows: number; cols: number; bias: Float32Array | null }
  | { kind: 'int8'; weight: Int8Array; scale: Float32Array; rows: number; cols: number; bias: Float32Array | null }
  | { kind: 'quant'; matrix: QuantizedMatrix; bias: Float32Array | null };

export interface DecoderLayerWeights {
  /** RMSNorm gains before attention and before the MLP, [nEmbd] each. */
  inputNorm: Float32Array;
  postNorm: Float32Array;
  eps: number;
  q: StepMatrix;
  k: StepMatrix;
  v: StepMatrix;
  o: StepMatrix;
  gate: StepMatrix;
  up: StepMatrix;
  down: StepMatrix;
  nEmbd: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  /** The MLP's hidden width (intermediate_size). */
  hidden: number;
  /** How RoPE pairs a head's channels: 'half' (Hugging Face's rotate_half) or 'interleaved'. */
  ropeLayout: 'half' | 'interleaved';
}

/** The output head after the last layer: logits = RMSNorm(x)·Wᵀ (+ bias), W [vocab, nEmbd]. */
export interface DecoderHeadWeights {
  norm: Float32Array;
  eps: number;
  out: StepMatrix;
}

/** One layer's one-row KV cache [cap, nKvHead·headDim]: the new key and value go to slot `past`; attention sees slots start … past. */
export interface DecoderStepCache<F = Float32Array> {
  k: F;
  v: F;
  cap: number;
  past: number;
  start: number;
}

export const stepMatrixRows = (m: StepMatrix): number => (m.kind === 'quant' ? m.matrix.rows : m.rows);

/** y = x·Wᵀ + bias for the one row x, through backend b. */
function linearRow(b: Backend<Float32Array>, m: StepMatrix, x: Float32Array): Float32Array {
  const y = new Float32Array(stepMatrixRows(m));
  switch (m.kind) {
    case 'f32':
      b.gemm({ transA: false, transB: true, M: 1, N: m.rows, K: m.cols, a: x, b: m.weight, c: y, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0, aOffset: 0, bOffset: 0, cOffset: 0, lda: m.cols, ldb: m.cols, ldc: m.rows, bias: m.bias });
      break;
    case 'int8':
      b.linearInt8(x, 1, m.cols, m.weight, m.scale, m.bias, y, m.rows);
      break;
    case 'quant':
      b.linearQuantized(x, 1, m.matrix, m.bias, y);
      break;
  }
  return y;
}

/**
 * The layer step as calls of backend b (the js twin of the native kernel):
 *   x += o_proj(attention(rope(q_proj(n)), cache + rope(k_proj(n)), cache + v_proj(n))),  n = RMSNorm(x)
 *   x += down_proj(silu(gate_proj(n)) · up_proj(n)),                                       n = RMSNorm(x)
 * cos and sin [headDim/2] are the rotation's angles at the token's position.
 */
export function decoderLayerStepWith(b: Backend<Float32Array>, s: DecoderLayerWeights, x: Float32Array, kv: DecoderStepCache, cos: Float32Array, sin: Float32Array): void {
  const C = s.nEmbd;
  const kvWidth = s.nKvHead * s.headDim;
  const n = new Float32Array(C);
  const rstd = new Float32Array(1);

  b.rmsNormForward(x, s.inputNorm, n, rstd, 1, C, s.eps);
  const q = linearRow(b, s.q, n);
  const k = linearRow(b, s.k, n);
  const v = linearRow(b, s.v, n);
  b.rope(q, q, cos, sin, { B: 1, T: 1, nHead: s.nHead, headDim: s.headDim, layout: s.ropeLayout }, 1, false);
  b.rope(k, k, cos, sin, { B: 1, T: 1, nHead: s.nKvHead, headDim: s.headDim, layout: s.ropeLayout }, 1, false);
  kv.k.set(k, kv.past * kvWidth);
  kv.v.set(v, kv.past * kvWidth);
  const att = new Float32Array(s.nHead * s.headDim);
  b.attentionCached(q, kv.k, kv.v, att, Int32Array.of(kv.start), { B: 1, Tq: 1, past: kv.past, cap: kv.cap, nHead: s.nHead, nKvHead: s.nKvHead, headDim: s.headDim, scale: 1 / Math.sqrt(s.headDim) });
  b.binary('add', x, [C], linearRow(b, s.o, att), [C], x, [C]);

  b.rmsNormForward(x, s.postNorm, n, rstd, 1, C, s.eps);
  const gate = linearRow(b, s.gate, n);
  b.swigluForward(gate, linearRow(b, s.up, n), gate);
  b.binary('add', x, [C], linearRow(b, s.down, gate), [C], x, [C]);
}

/** The head as calls of backend b (the js twin of the native stack call's last phase): logits [vocab] from the final x [C]. */
export function decoderHeadWith(b: Backend<Float32Array>, h: DecoderHeadWeights, x: Float32Array, logits: Float32Array): void {
  const n = new Float32Array(x.length);
  b.rmsNormForward(x, h.norm, n, new Float32Array(1), 1, x.length, h.eps);
  logits.set(linearRow(b, h.out, n));
}
