import type { TrainOptionsInput } from './options.js';

/**
 * Named training recipes: a shape, a batch, a schedule and a precision chosen
 * together for one goal, so `attn train --preset NAME` reproduces it. Flags
 * given beside --preset override single settings (--seed for another run).
 */
export interface TrainPreset {
  description: string;
  /** The text the recipe was chosen on, when --data is not given (relative to the working directory). */
  defaultData: string;
  options: TrainOptionsInput;
}

export const TRAIN_PRESETS: Record<string, TrainPreset> = {
  /**
   * The lowest validation loss on tinyshakespeare (characters) in 300 s of
   * wall time from the command's start, evaluation included. Chosen by
   * compute, not by a loaded machine's clock: ≈2.7M parameters (6 blocks of
   * 192, 6 heads, context 128), 3 072 tokens a step. The blocks' matrices
   * train with Muon (src/optim/muon.ts: lr 0.02, momentum 0.95, 5
   * Newton–Schulz steps), the embeddings, head and norms with AdamW (2e-3):
   * a Muon step costs about 1.25× an AdamW one, so ~1 100 steps fit where
   * AdamW did ~1 400 (two idle Zen 5 cores, about 4.5 minutes), and reach a
   * lower loss at equal steps (docs/mixed_precision.md). Short runs underfit,
   * so no dropout; a high peak learning rate with a short warm-up and a
   * cosine decay to a tenth. On a slower or busier machine the clock ends the
   * run early, and the schedule (which follows the clock too) still finishes
   * its decay. It is judged (and saved) by the mean of the weights over the
   * last tenth of the run.
   */
  'speedrun-5min': {
    description: 'lowest tinyshakespeare validation loss in 300 s wall (6×192, context 128, Muon, bf16, whole-split evaluation)',
    defaultData: '../shared/data/tinyshakespeare.txt',
    options: {
      nLayer: 6, nHead: 6, nEmbd: 192, blockSize: 128, dropout: 0, bias: false,
      batchSize: 24, gradAccum: 1, maxIters: 1100,
      optimizer: 'muon', muonLr: 0.02, muonMomentum: 0.95, muonNsSteps: 5,
      lr: 2e-3, minLr: 2e-4, warmupIters: 50, beta2: 0.99, weightDecay: 0.1, gradClip: 1,
      precision: 'bf16', timeLimit: 300, fullValidation: true, averageFrom: 0.9,
      evalInterval: 1100, evalIters: 10, tokenizer: 'char',
    },
  },
};
