import { dequantizeMatrix, quantizeMatrix, type QuantizedMatrix } from '../backend/quantized_matrix.js';
import { embeddingQuantized } from '../tensor/ops/embedding_quantized.js';
import type { LinearEpilogue } from '../tensor/ops/linear.js';
import { linearQuantized } from '../tensor/ops/linear_quantized.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import { Tensor } from '../tensor/tensor.js';
import { Embedding } from './embedding.js';
import { withoutAllocation } from './init.js';
import { inferenceProduct, Linear } from './linear.js';
import { Module, Parameter } from './module.js';
import { TiedLinear } from './tied_linear.js';

/**
 * Layers whose matrix stays in a GGUF file's block-quantized form (q8_0,
 * q4_0, q4_k, q6_k: backend/quantized_matrix.ts) — the bytes as the file
 * stores them, usually a view into the file's buffer — so a loaded model
 * takes about the file's size in memory and decoding reads 4.5 or 8.5 bits
 * per weight instead of 32. Inference only: `dequantizeBlocks` turns them
 * back into fp32 layers for training or for saving as fp32.
 */

/** y = x·Wᵀ + b with W a block-quantized matrix [out, in], multiplied as stored. */
export class BlockQuantizedLinear extends Module {
  readonly matrix: QuantizedMatrix;
  readonly bias: Tensor | null;
  /** Set when this is a tied output head: dequantizing gives the TiedLinear back (a function, so the module walk does not find it). */
  readonly tiedHead: (() => TiedLinear) | null;

  constructor(matrix: QuantizedMatrix, bias: Tensor | null, tied: TiedLinear | null = null) {
    super();
    if (bias && bias.size !== matrix.rows) throw new Error(`BlockQuantizedLinear: bias of ${bias.size} for ${matrix.rows} outputs`);
    this.matrix = matrix;
    this.bias = bias;
    this.tiedHead = tied ? () => tied : null;
  }

  /** `then`: an activation and an addend, applied as the product stores its output. */
  forward(x: Tensor, then: LinearEpilogue = {}): Tensor {
    return inferenceProduct(then, (t) => linearQuantized(x, this.matrix, this.bias, t));
  }

  /** forward(x, then) honours `then` (nn/linear.ts's forwardThen). */
  get takesEpilogue(): true {
    return true;
  }

  /** Bytes of the weight as stored. */
  get weightBytes(): number {
    return this.matrix.data.byteLength;
  }
}

/** A token (or position) table [count, dim] kept block-quantized: each looked-up row is dequantized as it is read. */
export class QuantizedEmbedding extends Module {
  readonly matrix: QuantizedMatrix;

  constructor(matrix: QuantizedMatrix) {
    super();
    this.matrix = matrix;
  }

  forward(ids: TokenIds, shape: number[]): Tensor {
    return embeddingQuantized(this.matrix, ids, shape);
  }
}

/**
 * Replace, in place, every layer whose weight is in `matrices` (by parameter
 * name, as namedParameters() spells it: `h.0.attn.c_attn.weight`,
 * `wte.weight`) by its block-quantized twin: a Linear by a
 * BlockQuantizedLinear (keeping its fp32 bias), an Embedding by a
 * QuantizedEmbedding, and a TiedLinear whose shared matrix is quantized by a
 * BlockQuantizedLinear over the same blocks (one copy serves both the lookup
 * and the head, as in the file). The loaders (GGUF) call this after building
 * the model without allocating the replaced matrices. Every name must find its
 * layer, with the layer's shape.
 */
export function useQuantizedMatrices(model: Module, matrices: ReadonlyMap<string, QuantizedMatrix>): void {
  const nameOf = new Map<Parameter, string>(model.namedParameters().map(([n, p]) => [p, n]));
  const used = new Set<string>();
  const check = (name: string, m: QuantizedMatrix, shape: readonly number[]) => {
    if (m.rows !== shape[0] || m.cols !== shape[1]) throw new Error(`${name}: quantized matrix [${m.rows}, ${m.cols}] for a layer of [${shape}]`);
    used.add(name);
  };
  // Resolve tied heads first: their matrix is found through the embedding, which is about to be replaced.
  const plan: [string, () => Module][] = [];
  for (const [path, layer] of model.namedModules()) {
    if (layer instanceof TiedLinear) {
      const pname = nameOf.get(layer.weight);
      const m = pname === undefined ? undefined : matrices.get(pname);
      if (m) { check(pname!, m, layer.weight.shape); plan.push([path, () => new BlockQuantizedLinear(m, null, layer)]); }
      continue;
    }
    const m = matrices.get(`${path}.weight`);
    if (!m) continue;
    if (layer instanceof Linear) {
      check(`${path}.weight`, m, layer.weight.shape);
      const bias = layer.bias ? new Tensor(layer.bias.data, layer.bias.shape) : null;
      plan.push([path, () => new BlockQuantizedLinear(m, bias)]);
    } else if (layer instanceof Embedding) {
      check(`${path}.weight`, m, layer.weight.shape);
      plan.push([path, () => new QuantizedEmbedding(m)]);
    }
  }
  const missing = [...matrices.keys()].filter((n) => !used.has(n));
  if (missing.length) throw new Error(`no Linear, Embedding or tied head holds ${missing.join(', ')}`);
  for (const [path, make] of plan) model.replaceModule(path, make());
}

/** The reverse: every block-quantized layer becomes the fp32 layer holding its dequantized weights (to train, or to save as fp32). */
export function dequantizeBlocks(model: Module): void {
  for (const [path, layer] of model.namedModules()) {
    if (layer instanceof QuantizedEmbedding) {
      const { rows, cols } = layer.matrix;
      const e = withoutAllocation(() => new Embedding(rows, cols, { std: 0, rng: null as never }));
      e.weight = new Parameter(dequantizeMatrix(layer.matrix), [rows, cols]);
      model.replaceModule(path, e);
    } else if (layer instanceof BlockQuantizedLinear) {
      if (layer.tiedHead) { model.replaceModule(path, layer.tiedHead()); continue; }
      const { rows, cols } = layer.matrix;
      const bias = layer.bias ? new Parameter(Float32Array.from(layer.bias.data), [rows]) : null;
      model.replaceModule(path, new Linear(cols, rows, { weight: new Parameter(dequantizeMatrix(layer.matrix), [rows, cols]), bias }));
    }
  }
}

/** Whether any layer holds block-quantized weights. */
export function hasBlockQuantized(model: Module): boolean {
  return model.namedModules().some(([, m]) => m instanceof BlockQuantizedLinear || m instanceof QuantizedEmbedding);
}

/**
 * Every matrix of a model quantized to `type`, by parameter name, ready for
 * useQuantizedMatrices: what a GGUF export of the model in that type would
 * hold (2-D weights whose rows are whole 32-value blocks; vectors stay fp32).
 * For building quantized models in memory (tests, `attn bench`).
 */
export function quantizeMatrices(model: Module, type: 'q8_0' | 'q4_0'): Map<string, QuantizedMatrix> {
  const out = new Map<string, QuantizedMatrix>();
  for (const [name, p] of model.namedParameters()) {
    if (p.shape.length !== 2 || p.shape[1]! % 32 !== 0) continue;
    out.set(name, quantizeMatrix(type, p.data, p.shape[0]!, p.shape[1]!));
  }
  return out;
}
