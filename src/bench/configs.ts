import type { GPTConfigInput } from '../models/gpt_config.js';

/** The benchmark shapes of shared/DESIGN.md: small, medium and GPT-2-sized training. */
export const BENCH_CONFIGS: Record<string, { model: GPTConfigInput; batch: number }> = {
  S: { model: { n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, vocab_size: 65, bias: true, dropout: 0 }, batch: 12 },
  M: { model: { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, vocab_size: 65, bias: true, dropout: 0 }, batch: 16 },
  G: { model: { n_layer: 12, n_head: 12, n_embd: 768, block_size: 256, vocab_size: 50257, bias: true, dropout: 0 }, batch: 4 },
  /** GPT-2 124M at its full context (1024), batch 4: where stored activations dominate memory (issue #21's recompute goal). Not in the default list. */
  L: { model: { n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50257, bias: true, dropout: 0 }, batch: 4 },
};

/** How a training workload runs: matrix-product precision and activation recomputation. */
export interface TrainMode {
  precision: 'fp32' | 'bf16';
  recompute: boolean;
}

export const GEMM_SIZES = [128, 384, 768, 1024, 2048];
/** Activation rows for the skinny-product workload: one decoding sequence, a few, a batch, a prompt. */
export const SKINNY_ROWS = [1, 4, 16, 64, 256];

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
