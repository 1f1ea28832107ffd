import type { Backend } from '../backend.js';
import { adamwStep, scaleInPlace, sumSquares } from './adamw.js';
import { attentionBackward, attentionForward } from './attention.js';
import { attentionCached, attentionCachedRagged } from './attention_cached.js';
import { crossEntropyBackward, crossEntropyForward } from './cross_entropy.js';
import { dropoutBackward, dropoutForward } from './dropout.js';
import { binary, reduceSumTo, unary, unaryBackward } from './elementwise.js';
import { embeddingBackward, embeddingForward } from './embedding.js';
import { gemm } from './gemm.js';
import { linearInt8 } from './int8.js';
import { linearQuantized } from './quantized.js';
import { layerNormBackward, layerNormForward } from './layernorm.js';
import { rmsNormBackward, rmsNormForward } from './rmsnorm.js';
import { softmaxBackward, softmaxForward } from './softmax.js';
import { swigluBackward, swigluForward } from './swiglu.js';

/** The pure-TypeScript reference backend: runs anywhere, and is the oracle for faster ones. */
export const jsBackend: Backend = {
  name: 'js',
  gemm,
  binary,
  reduceSumTo,
  unary,
  unaryBackward,
  swigluForward,
  swigluBackward,
  softmaxForward,
  softmaxBackward,
  layerNormForward,
  layerNormBackward,
  rmsNormForward,
  rmsNormBackward,
  embeddingForward,
  embeddingBackward,
  attentionForward,
  attentionBackward,
  attentionCached,
  attentionCachedRagged,
  linearInt8,
  linearQuantized,
  crossEntropyForward,
  crossEntropyBackward,
  dropoutForward,
  dropoutBackward,
  adamwStep,
  sumSquares,
  scaleInPlace,
};
