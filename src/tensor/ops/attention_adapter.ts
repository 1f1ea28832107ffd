/**
 * PROVISIONAL (drop at merge). The attention op API that src/tensor/ops/attention.ts
 * is being given on another branch (attention, packedAttention, attentionWeights with
 * AttentionOptions), implemented here over the old entry points for the cases they
 * support, so that the layers in src/nn/ can be written against the new API now.
 * At merge: delete this file and change the imports of `./attention_adapter.js`
 * (src/nn/attention.ts, src/generate/*, web/lib/session.ts) to `./attention.js`.
 * Not supported here: nKvHead ≠ nHead (grouped-query attention needs the new kernels).
 */
import type { Rng } from '../../util/rng.js';
import { noGrad } from '../autograd.js';
import { packedAttention as packedOld, scaledDotProductAttention } from './attention.js';
import { add, scale as scaleBy } from './elementwise.js';
import { dropout as dropoutOp } from './dropout.js';
import { maskedAttention } from './masked_attention.js';
import { matmul } from './matmul.js';
import { concat, slice, split, transpose } from './shape.js';
import { softmax } from './softmax.js';
import { Tensor } from '../tensor.js';

export interface AttentionOptions {
  nHead: number;
  nKvHead?: number;
  causal?: boolean;
  keyPadding?: Uint8Array;
  /** On the attention probabilities, only while training. */
  dropout?: { p: number; rng: Rng } | null;
  scale?: number;
}

function checkHeads(o: AttentionOptions): void {
  if ((o.nKvHead ?? o.nHead) !== o.nHead) throw new Error('grouped-query attention (nKvHead ≠ nHead) needs the new attention op (provisional adapter)');
}

const dropping = (o: AttentionOptions): boolean => !!o.dropout && o.dropout.p > 0;

/** q [B, Tq, nHead·D], k and v [B, Tk, nKvHead·D] → [B, Tq, nHead·D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  checkHeads(o);
  if (dropping(o)) return composedWithDropout(q, k, v, o);
  const causal = o.causal ?? false;
  if (!o.keyPadding && q.shape.join() === k.shape.join() && k.shape.join() === v.shape.join()) {
    return scaledDotProductAttention(q, k, v, o.nHead, { causal, scale: o.scale });
  }
  return maskedAttention(q, k, v, o.nHead, { causal, keyPadding: o.keyPadding, scale: o.scale }).out;
}

/** qkv [B, T, (nHead + 2·nKvHead)·D], queries then keys then values, read in place. */
export function packedAttention(qkv: Tensor, o: AttentionOptions): Tensor {
  checkHeads(o);
  if (!dropping(o) && !o.keyPadding) return packedOld(qkv, o.nHead, { causal: o.causal ?? false, scale: o.scale });
  const [q, k, v] = split(qkv, 3, -1) as [Tensor, Tensor, Tensor];
  return attention(q, k, v, o);
}

/** The attention probabilities [B, nHead, Tq, Tk], for display. */
export function attentionWeights(q: Tensor, k: Tensor, o: AttentionOptions): Float32Array {
  checkHeads(o);
  return noGrad(() => maskedAttention(q, k, k, o.nHead, { causal: o.causal ?? false, keyPadding: o.keyPadding, scale: o.scale, keepWeights: true }).weights!);
}

/** Dropout on the probabilities, spelled out op by op per head (slow; training with dropout only). */
function composedWithDropout(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  const [B, Tq, C] = q.shape as [number, number, number];
  const Tk = k.shape[1]!;
  const D = C / o.nHead;
  // Hidden keys get a large negative score; a finite one keeps fully hidden (padding) rows finite.
  const mask = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tq; i++) {
      for (let j = 0; j < Tk; j++) {
        const hidden = (o.causal && j > i) || (o.keyPadding && o.keyPadding[b * Tk + j]);
        if (hidden) mask[(b * Tq + i) * Tk + j] = -1e30;
      }
    }
  }
  const maskT = new Tensor(mask, [B, Tq, Tk]);
  const heads: Tensor[] = [];
  for (let h = 0; h < o.nHead; h++) {
    const [qh, kh, vh] = [q, k, v].map((t) => slice(t, 2, h * D, (h + 1) * D)) as [Tensor, Tensor, Tensor];
    const scores = add(scaleBy(matmul(qh, transpose(kh, 1, 2)), o.scale ?? 1 / Math.sqrt(D)), maskT);
    const p = dropoutOp(softmax(scores), o.dropout!.p, o.dropout!.rng, true);
    heads.push(matmul(p, vh));
  }
  return concat(heads, 2);
}
