import { add } from '../tensor/ops/elementwise.js';
import { backend } from '../backend/index.js';
import type { Storage } from '../backend/storage.js';
import { Tensor, toBackend, viewStorage } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Embedding } from './embedding.js';
import { Module } from './module.js';

/**
 * How a model tells positions apart. Attention itself is order-blind: without
 * this, "dog bites man" and "man bites dog" would look the same.
 * - sinusoidal: a fixed pattern added to the input (Attention Is All You Need);
 * - learned: a trained vector per position added to the input (GPT-2, ViT);
 * - rope: nothing added; queries and keys are rotated inside attention (ops/rope.ts).
 */
export type PositionEncoding = 'sinusoidal' | 'learned' | 'rope';

/**
 * PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)):
 * each pair of channels is a clock of a different speed, so every position
 * gets a distinct pattern, and a fixed offset is a fixed rotation of it.
 */
export function sinusoidalTable(length: number, dim: number): Float32Array {
  const table = new Float32Array(length * dim);
  for (let pos = 0; pos < length; pos++) {
    for (let i = 0; 2 * i < dim; i++) {
      const angle = pos / Math.pow(10000, (2 * i) / dim);
      table[pos * dim + 2 * i] = Math.sin(angle);
      if (2 * i + 1 < dim) table[pos * dim + 2 * i + 1] = Math.cos(angle);
    }
  }
  return table;
}

/** Adds position information to [B, T, C] inputs (or, for rope, leaves them as they are). */
export class PositionalEncoding extends Module {
  /** Only for kind "learned". */
  wpe: Embedding | null;
  private readonly fixed: Float32Array | null;
  /** The fixed table where the backend that last used it keeps values (uploaded once to a device backend). */
  private placed: { backend: string; table: Storage } | null = null;

  constructor(readonly kind: PositionEncoding, readonly maxLength: number, readonly dim: number, rng: Rng) {
    super();
    this.wpe = kind === 'learned' ? new Embedding(maxLength, dim, { std: 0.02, rng }) : null;
    this.fixed = kind === 'sinusoidal' ? sinusoidalTable(maxLength, dim) : null;
  }

  forward(x: Tensor): Tensor {
    const T = x.shape[1]!;
    if (T > this.maxLength) throw new Error(`sequence of ${T} positions exceeds the model's maximum of ${this.maxLength}`);
    if (this.wpe) return add(x, this.wpe.forward(Int32Array.from({ length: T }, (_, i) => i), [1, T]));
    if (this.fixed) return add(x, new Tensor(viewStorage(this.fixedTable(), 0, T * this.dim), [1, T, this.dim]));
    return x;
  }

  private fixedTable(): Storage {
    const name = backend().name;
    if (this.placed?.backend !== name) this.placed = { backend: name, table: toBackend(this.fixed!) };
    return this.placed.table;
  }
}
