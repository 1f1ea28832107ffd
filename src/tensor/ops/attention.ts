import type { AttentionDims, AttentionSaved, Backend } from '../../backend/backend.js';
import { backend } from '../../backend/index.js';
import { attentionWeights as weightsReference } from '../../backend/js/attention.js';
import type { Rng } from '../../util/rng.js';
import { record } from '../autograd.js';
import { matmulPrecision } from '../precision.js';
import type { Storage } from '../../backend/storage.js';
import { Tensor, viewStorage } from '../tensor.js';

export interface AttentionOptions {
  nHead: number;
  /** Key/value heads (default nHead); fewer shares each among nHead/nKvHead query heads (grouped-query; 1 = multi-query). */
  nKvHead?: number;
  /** Query i sees keys j ≤ i + (Tk − Tq): itself and earlier positions in self-attention. */
  causal?: boolean;
  /** B·Tk flags, 1 where a key is padding: no query attends to it. */
  keyPadding?: Uint8Array;
  /** Attention-probability dropout; pass only while training. The op draws the seed from rng. */
  dropout?: { p: number; rng: Rng } | null;
  /** Defaults to 1/√headDim, which keeps the scores' variance near 1. */
  scale?: number;
}

/**
 * The backend's dims for queries [B, Tq, nHead·D] against keys [B, Tk, nKvHead·D]
 * (qWidth and kvWidth: the widths of their heads together). Draws the dropout
 * seed, so call it once per forward.
 */
function attentionDims(B: number, Tq: number, Tk: number, qWidth: number, kvWidth: number, o: AttentionOptions): AttentionDims {
  const nHead = o.nHead;
  const nKvHead = o.nKvHead ?? nHead;
  if (!(nHead > 0 && nKvHead > 0 && nHead % nKvHead === 0)) throw new Error(`attention: ${nKvHead} key/value heads do not divide ${nHead} query heads`);
  if (qWidth % nHead !== 0) throw new Error(`attention: ${qWidth} query channels do not split into ${nHead} heads`);
  const headDim = qWidth / nHead;
  if (kvWidth !== nKvHead * headDim) throw new Error(`attention: keys and values have ${kvWidth} channels, expected ${nKvHead} heads × ${headDim}`);
  if (o.keyPadding && o.keyPadding.length !== B * Tk) throw new Error(`key padding mask has ${o.keyPadding.length} flags, expected ${B}×${Tk}`);
  const p = o.dropout?.p ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`attention dropout must be in [0, 1), got ${p}`);
  return {
    B, Tq, Tk, nHead, nKvHead, headDim,
    causal: o.causal ?? false,
    scale: o.scale ?? 1 / Math.sqrt(headDim),
    keyPadding: o.keyPadding ?? null,
    // One draw from the model's generator seeds the whole mask (so resuming a run replays it exactly).
    dropout: p > 0 ? { p, seed: o.dropout!.rng.nextUint32() } : null,
    // The scope's precision, kept in the dims the backward pass reuses (so it runs in the forward's).
    bf16: matmulPrecision() === 'bf16',
  };
}

/**
 * softmax(q·kᵀ·scale)·v for every head, as one fused op. q [B, Tq, nHead·D],
 * k and v [B, Tk, nKvHead·D] → [B, Tq, nHead·D]. Self-attention (k, v from the
 * same positions as q), causal, cross-attention (Tq ≠ Tk), padded keys and
 * grouped-query heads are all this one op. The same result can be composed
 * from matmul, softmax and a mask (test/attention.test.ts); fusing lets a
 * backend skip storing the Tq×Tk weights.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  if (q.rank !== 3 || k.rank !== 3 || k.shape.join() !== v.shape.join() || q.shape[0] !== k.shape[0]) {
    throw new Error(`attention expects q [B, Tq, ·] and k, v [B, Tk, ·]; got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [B, Tq, C] = q.shape as [number, number, number];
  const d = attentionDims(B, Tq, k.shape[1]!, C, k.shape[2]!, o);
  const out = Tensor.empty([B, Tq, C]);
  const be = backend();
  const saved = be.attentionForward(q.storage, k.storage, v.storage, out.storage, d);
  return keptForBackward(be, saved, record(out, [q, k, v], 'attention', () => {
    // The kernel may overwrite fresh gradients only when q, k and v are three tensors (not x, x, x) without one yet.
    const fresh = q !== k && k !== v && q !== v && !q.gradStorage && !k.gradStorage && !v.gradStorage;
    const [dq, dk, dv] = [q, k, v].map((t) => (fresh ? t.gradSink().grad : t.ensureGradStorage())) as [Storage, Storage, Storage];
    be.attentionBackward(saved, q.storage, k.storage, v.storage, out.storage, out.gradStorage!, dq, dk, dv, d, !fresh);
  }));
}

/**
 * Self-attention read in place from one projection: qkv [B, T, (nHead + 2·nKvHead)·D]
 * holds each position's query, key and value side by side, as GPT-2's c_attn
 * makes them. Equal to splitting qkv and calling attention(), without copying
 * the three parts out (or their gradients back in): the kernel reads them with
 * a row stride of the whole width.
 */
export function packedAttention(qkv: Tensor, o: AttentionOptions): Tensor {
  const nKvHead = o.nKvHead ?? o.nHead;
  const [B, T, W] = qkv.shape as [number, number, number];
  const heads = o.nHead + 2 * nKvHead;
  if (qkv.rank !== 3 || W % heads !== 0) throw new Error(`packed attention expects [B, T, (nHead + 2·nKvHead)·headDim] with ${heads} heads; got [${qkv.shape}]`);
  const headDim = W / heads;
  const [C, Ckv] = [o.nHead * headDim, nKvHead * headDim];
  const d = { ...attentionDims(B, T, T, C, Ckv, o), qStride: W, kvStride: W };
  const parts = (a: Storage) => [a, viewStorage(a, C, a.length - C), viewStorage(a, C + Ckv, a.length - C - Ckv)] as const; // q, k, v: the same rows, offset
  const out = Tensor.empty([B, T, C]);
  const be = backend();
  const saved = be.attentionForward(...parts(qkv.storage), out.storage, d);
  return keptForBackward(be, saved, record(out, [qkv], 'attention', () => {
    const g = qkv.gradSink();
    be.attentionBackward(saved, ...parts(qkv.storage), out.storage, out.gradStorage!, ...parts(g.grad), d, g.accumulate);
  }));
}

/** `out`, after giving back what the forward kept when no backward was recorded (a pass without gradients). */
function keptForBackward(be: Backend, saved: AttentionSaved, out: Tensor): Tensor {
  if (!out.gradFn) be.attentionDiscard(saved);
  return out;
}

/**
 * The attention weights [B, nHead, Tq, Tk] of q against k (after the masks,
 * before dropout), computed by the js reference's loops: for display
 * (--show-attention, the playground's maps); no graph.
 */
export function attentionWeights(q: Tensor, k: Tensor, o: AttentionOptions): Float32Array {
  const [B, Tq, C] = q.shape as [number, number, number];
  const d = attentionDims(B, Tq, k.shape[1]!, C, k.shape[2]!, { ...o, dropout: null });
  return weightsReference(q.data, k.data, d);
}
