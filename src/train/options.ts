import { z } from 'zod';
import { parseFlags } from '../util/validate.js';

/**
 * Every training hyperparameter, with nanoGPT's shakespeare-char CPU recipe
 * as the defaults (4 layers, 4 heads, 128 dims, context 64, batch 12, 2000 steps).
 */
export const TrainOptionsSchema = z
  .object({
    nLayer: z.number().int().positive().default(4),
    nHead: z.number().int().positive().default(4),
    nEmbd: z.number().int().positive().default(128),
    blockSize: z.number().int().positive().default(64),
    dropout: z.number().min(0).lt(1).default(0),
    bias: z.boolean().default(false),
    positions: z.enum(['learned', 'rope']).default('learned'),
    /** Model family: the GPT (GPT-2's blocks) or the Llama family (RMSNorm, RoPE, grouped-query attention, SwiGLU). */
    arch: z.enum(['gpt', 'llama']).default('gpt'),
    /** Llama only: key/value heads (grouped-query attention); default n_head. */
    nKvHead: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(12),
    gradAccum: z.number().int().positive().default(1),
    maxIters: z.number().int().nonnegative().default(2000),
    lr: z.number().positive().finite().default(1e-3),
    /** The end of the cosine decay; default lr / 10 (nanoGPT's rule), so a smaller --lr brings it down too. */
    minLr: z.number().nonnegative().finite().optional(),
    warmupIters: z.number().int().nonnegative().default(100),
    /** Steps over which the cosine decays; defaults to maxIters. */
    lrDecayIters: z.number().int().nonnegative().optional(),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.99),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().nonnegative().default(0.1),
    gradClip: z.number().nonnegative().default(1.0),
    /** adamw for every parameter, or muon for the blocks' weight matrices (src/optim/muon.ts) with AdamW (lr, betas, eps) for the rest. */
    optimizer: z.enum(['adamw', 'muon']).default('adamw'),
    /** Muon's peak learning rate (the schedule scales it by lr's ratio). */
    muonLr: z.number().positive().finite().default(0.02),
    /** Muon's (Nesterov) momentum. */
    muonMomentum: z.number().min(0).lt(1).default(0.95),
    /** Newton–Schulz iterations per Muon update. */
    muonNsSteps: z.number().int().min(1).max(20).default(5),
    /** Decoupled weight decay on the Muon matrices (w ← w·(1 − lr·x)). */
    muonWeightDecay: z.number().nonnegative().finite().default(0),
    evalInterval: z.number().int().positive().default(250),
    evalIters: z.number().int().positive().default(20),
    logInterval: z.number().int().positive().default(10),
    seed: z.number().int().nonnegative().default(1337),
    /** How text becomes tokens: characters, characters with whole numbers (digits), words, or byte-level BPE trained on the data. */
    tokenizer: z.enum(['char', 'digits', 'word', 'bpe']).default('char'),
    /** Vocabulary size for word (a cap) and bpe (the target); char takes every character. */
    vocabSize: z.number().int().positive().optional(),
    /** Matrix products in FP32, or bf16 operands with FP32 sums (weights, optimizer state and loss stay FP32). */
    precision: z.enum(['fp32', 'bf16']).default('fp32'),
    /** Keep only each block's input and recompute the block in the backward pass (less memory, same gradients). */
    recompute: z.boolean().default(false),
    /**
     * Wall-clock budget in seconds from the process's start (a speedrun):
     * training stops before a step that would leave too little time for the
     * final evaluation, and the learning-rate decay follows the clock as well
     * as the step count, so a run cut short still ends at minLr.
     */
    timeLimit: z.number().positive().optional(),
    /** Evaluate on the whole validation split (every token once) instead of evalIters sampled batches. */
    fullValidation: z.boolean().default(false),
    /** Evaluate and save an exponential moving average of the weights (this decay a step) instead of the last weights. */
    ema: z.number().gt(0).lt(1).optional(),
    /** Evaluate and save the mean of the weights after every step from this share of the run on (the schedule's share, clock included). */
    averageFrom: z.number().min(0).lt(1).optional(),
  })
  .refine((o) => o.nEmbd % o.nHead === 0, { message: 'n_embd must be divisible by n_head', path: ['nEmbd'] })
  .refine((o) => o.nKvHead === undefined || o.nHead % o.nKvHead === 0, { message: 'n_head must be a multiple of n_kv_head', path: ['nKvHead'] })
  .refine((o) => o.minLr === undefined || o.minLr <= o.lr, { message: 'min_lr must not exceed lr', path: ['minLr'] })
  .refine((o) => o.ema === undefined || o.averageFrom === undefined, { message: 'choose one weight average: --ema or --average-from', path: ['ema'] })
  .refine((o) => (o.tokenizer !== 'char' && o.tokenizer !== 'digits') || o.vocabSize === undefined, { message: 'applies to --tokenizer word and bpe only (a char or digits vocabulary is every character and number of the text)', path: ['vocabSize'] })
  .transform((o) => ({ ...o, minLr: o.minLr ?? o.lr / 10 }));

export type TrainOptions = z.infer<typeof TrainOptionsSchema>;
export type TrainOptionsInput = z.input<typeof TrainOptionsSchema>;

export function parseTrainOptions(raw: TrainOptionsInput): TrainOptions {
  return parseFlags(TrainOptionsSchema, raw);
}
