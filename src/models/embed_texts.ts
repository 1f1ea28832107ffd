import { UserError } from '../util/errors.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { Embedder } from './embedder.js';
import { padBatch } from './pad_batch.js';

/** Texts per forward pass: bounds memory while keeping the matrix products large. */
const CHUNK = 64;

/** A prefix size the model can give: any 1..d_model (the trained prefixes are the best ones). */
export function checkDim(model: Embedder, dim: number): void {
  const { d_model, matryoshka_dims } = model.config;
  if (!Number.isInteger(dim) || dim < 1 || dim > d_model) {
    throw new UserError(`dimension ${dim} is not available: this embedder gives 1..${d_model} dimensions (trained prefixes: ${matryoshka_dims.join(', ')})`);
  }
}

/**
 * The un-normalised full embeddings of `texts`, [N·d_model] row-major, in
 * evaluation mode and without a graph. Texts longer than max_len are cut.
 * `encode` turns a text into ids (default: the tokenizer's encode). Host
 * backends; pooledEmbeddingsAsync runs on any backend.
 */
export function pooledEmbeddings(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], encode: (text: string) => Int32Array = (t) => tokenizer.encode(t)): Float32Array {
  return inEvalMode(model, () => valuesNow(embeddingReads(model, tokenizer, texts, encode)));
}

/** pooledEmbeddings on any backend: on a device each chunk's pass is scratch and only its vectors come back. */
export function pooledEmbeddingsAsync(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], encode: (text: string) => Int32Array = (t) => tokenizer.encode(t)): Promise<Float32Array> {
  return inEvalMode(model, () => valuesAwaited(embeddingReads(model, tokenizer, texts, encode)));
}

/** The texts in chunks of CHUNK, each chunk's vectors yielded to be read (tensor/value_reads.ts). */
function* embeddingReads(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], encode: (text: string) => Int32Array): ValueReads<Float32Array> {
  if (texts.length === 0) throw new UserError('no texts to embed');
  const seqs = texts.map((t, i) => {
    const ids = encode(t);
    if (ids.length === 0) throw new UserError(`text ${i + 1} is empty: there is nothing to embed`);
    return ids;
  });
  const C = model.config.d_model;
  const out = new Float32Array(texts.length * C);
  for (let s = 0; s < seqs.length; s += CHUNK) {
    const b = padBatch(seqs.slice(s, s + CHUNK), model.config.max_len);
    const v = withDeviceScratch(() => noGrad(() => model.forward(b.ids, [b.B, b.T], b.padding)), (t) => [t.storage]);
    const [values] = yield [v];
    out.set(values!.subarray(0, b.B * C), s * C);
  }
  return out;
}

/** The first `dim` components of row `i` of [N·full] vectors, scaled to unit length. */
export function normalizedPrefix(vectors: Float32Array, i: number, full: number, dim: number): Float32Array {
  const v = vectors.slice(i * full, i * full + dim);
  let sq = 0;
  for (const x of v) sq += x * x;
  const n = Math.max(Math.sqrt(sq), 1e-12);
  for (let k = 0; k < dim; k++) v[k] = v[k]! / n;
  return v;
}

/**
 * Sentence embeddings for serving and the CLI: one unit-length Float32Array
 * of `dim` components (default: all d_model) per text, in order. The vector
 * is the Matryoshka prefix, re-normalised after cutting.
 */
export function embedTexts(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], dim: number = model.config.d_model): Float32Array[] {
  checkDim(model, dim);
  const pooled = pooledEmbeddings(model, tokenizer, texts);
  return texts.map((_, i) => normalizedPrefix(pooled, i, model.config.d_model, dim));
}

/** embedTexts on any backend (a served embedder on webgpu). */
export async function embedTextsAsync(model: Embedder, tokenizer: Tokenizer, texts: readonly string[], dim: number = model.config.d_model): Promise<Float32Array[]> {
  checkDim(model, dim);
  const pooled = await pooledEmbeddingsAsync(model, tokenizer, texts);
  return texts.map((_, i) => normalizedPrefix(pooled, i, model.config.d_model, dim));
}
