import type { Backend } from '../backend.js';
import { adamwStep, clipByNorm, scaleInPlace, sumSquares } from './adamw.js';
import { attentionBackward, attentionForward } from './attention.js';
import { argmaxRows } from './argmax.js';
import { attentionCached, attentionCachedRagged } from './attention_cached.js';
import { attentionPaged } from './attention_paged.js';
import { crossEntropyBackward, crossEntropyForward } from './cross_entropy.js';
import { dropoutBackward, dropoutForward } from './dropout.js';
import { binary, reduceSumTo, unary, unaryBackward } from './elementwise.js';
import { embeddingBackward, embeddingForward, embeddingForwardStored, embeddingQuantizedStored } from './embedding.js';
import { gemm } from './gemm.js';
import { l2NormalizeBackward, l2NormalizeForward } from './l2_normalize.js';
import { copyRows, permute } from './layout.js';
import { maxPoolBackward, maxPoolForward } from './max_pool.js';
import { linearInt8 } from './int8.js';
import { linearQuantized } from './quantized.js';
import { layerNormBackward, layerNormForward } from './layernorm.js';
import { rmsNormBackward, rmsNormForward } from './rmsnorm.js';
import { decoderHeadWith, decoderLayerStepWith } from '../decoder_step.js';
import { linearPanelsWith } from '../panels.js';
import { rope } from './rope.js';
import { softmaxBackward, softmaxForward } from './softmax.js';
import { swigluBackward, swigluForward } from './swiglu.js';

/** The pure-TypeScript reference backend: runs anywhere, and is the oracle for faster ones. */
export const jsBackend: Backend<Float32Array> = {
  name: 'js',
  gemm,
  binary,
  reduceSumTo,
  unary,
  unaryBackward,
  swigluForward,
  swigluBackward,
  rope,
  softmaxForward,
  softmaxBackward,
  layerNormForward,
  layerNormBackward,
  rmsNormForward,
  rmsNormBackward,
  maxPoolForward,
  maxPoolBackward,
  l2NormalizeForward,
  l2NormalizeBackward,
  permute,
  copyRows,
  embeddingForward,
  embeddingForwardStored,
  embeddingQuantizedStored,
  embeddingBackward,
  attentionForward,
  attentionBackward,
  attentionDiscard: () => {}, // the weights kept are a plain array: the garbage collector's
  attentionCached,
  attentionCachedRagged,
  attentionPaged,
  argmaxRows,
  linearInt8,
  linearPanels: linearPanelsWith,
  linearQuantized,
  crossEntropyForward: (logits, targets, lse, loss, rows, vocab, ignore, scale, smoothing = 0) => {
    loss[0] = scale * crossEntropyForward(logits, targets, lse, rows, vocab, ignore, smoothing).sum;
  },
  crossEntropyBackward: (logits, targets, lse, dLoss, dLogits, rows, vocab, ignore, scale, acc, smoothing = 0) =>
    crossEntropyBackward(logits, targets, lse, dLogits, rows, vocab, ignore, dLoss[0]! * scale, acc, smoothing),
  dropoutForward,
  dropoutBackward,
  adamwStep,
  sumSquares: (xs, out) => {
    let sq = 0;
    for (const x of xs) sq += sumSquares(x);
    out[0] = sq;
  },
  scaleInPlace,
  clipByNorm,
  decoderLayerStep: (layer, x, kv, cos, sin) => decoderLayerStepWith(jsBackend, layer, x, kv, cos, sin),
  decoderLayersStep: (layers, x, kvs, cos, sin, head) => {
    layers.forEach((layer, i) => decoderLayerStepWith(jsBackend, layer, x, kvs[i]!, cos, sin));
    if (head) decoderHeadWith(jsBackend, head.weights, x, head.logits);
  },
};
