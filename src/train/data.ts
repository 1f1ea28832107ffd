import { UserError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

export interface Batch {
  /** B·T input ids, row-major. */
  x: Int32Array;
  /** The same windows shifted by one: the token that follows each input. */
  y: Int32Array;
}

/**
 * A token stream cut 90/10 into training and validation parts. A batch is B
 * random windows of T+1 consecutive tokens: the first T are the input, and
 * the last T are the targets — every position learns to predict its successor.
 */
export class TokenDataset {
  readonly train: Int32Array;
  readonly val: Int32Array;

  constructor(ids: Int32Array, readonly blockSize: number, trainFraction = 0.9) {
    const n = Math.floor(ids.length * trainFraction);
    this.train = ids.subarray(0, n);
    this.val = ids.subarray(n);
    for (const [name, part] of [['training', this.train], ['validation', this.val]] as const) {
      if (part.length < blockSize + 1) {
        throw new UserError(
          `text too short: the ${name} split has ${part.length} tokens but block_size ${blockSize} needs at least ${blockSize + 1} ` +
            `(the whole text needs about ${Math.ceil((blockSize + 1) / (1 - trainFraction))} tokens)`,
        );
      }
    }
  }

  batch(split: 'train' | 'val', batchSize: number, rng: Rng): Batch {
    const data = split === 'train' ? this.train : this.val;
    const T = this.blockSize;
    const x = new Int32Array(batchSize * T);
    const y = new Int32Array(batchSize * T);
    for (let b = 0; b < batchSize; b++) {
      const start = rng.int(data.length - T);
      x.set(data.subarray(start, start + T), b * T);
      y.set(data.subarray(start + 1, start + T + 1), b * T);
    }
    return { x, y };
  }
}
