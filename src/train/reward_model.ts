/**
 * A reward model: a decoder that reads a conversation and says how good the
 * reply is, as one number. It is the language model's body (every block and
 * the final norm) with the vocabulary head replaced by a scalar one:
 *
 *   hidden states [B, T, C] → the last real token's vector [B, C] → Linear(C, 1) → scores [B]
 *
 * The last token is the one that has read the whole conversation (causal
 * attention: each position sees only what came before it). Rows are
 * right-padded, so "last" means each row's own length − 1; the vectors are
 * looked up as rows of the [B·T, C] hidden states, as token embeddings are
 * (the gradient flows back only into the picked positions).
 *
 * On disk: the body as an ordinary model directory (config.json,
 * model.safetensors, tokenizer.json) plus reward_head.safetensors
 * (score.weight [1, C], score.bias [1]).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DecoderLM } from '../models/causal_lm.js';
import { padBatch } from '../models/pad_batch.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { readSafetensors, serializeSafetensors, SafetensorsError } from '../io/safetensors.js';
import { embedding } from '../tensor/ops/embedding.js';
import { reshape } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { loadDecoder } from './sft_checkpoint.js';

export const REWARD_HEAD_FILE = 'reward_head.safetensors';

export class RewardModel extends Module {
  /** The decoder without its vocabulary head: its `hidden` pass is all the reward model uses. */
  body: DecoderLM;
  /** The scalar head: a reply's score from the last token's vector. */
  score: Linear;

  constructor(body: DecoderLM, rng: Rng = new Rng(1337)) {
    super();
    this.body = body;
    // Small initial weights: scores start near 0, so the first losses are ≈ log 2 and gradients tame.
    this.score = new Linear(body.config.n_embd, 1, { bias: true, std: 0.02 / Math.sqrt(body.config.n_embd), rng });
  }

  /** Scores [B] of B token sequences (each at least one token long), right-padded in one batch. */
  scores(seqs: readonly Int32Array[]): Tensor {
    const { ids, B, T } = padBatch(seqs, this.body.config.block_size);
    const h = this.body.hidden(ids, [B, T]); // [B, T, C]
    const C = h.shape[2]!;
    // Row b·T + len_b − 1 of H [B·T, C] is sequence b's last real hidden state: looked up as a table's
    // row (its gradient scattered back, nothing uploaded), on any backend.
    const last = embedding(reshape(h, [B * T, C]), Int32Array.from(seqs, (s, b) => b * T + Math.min(s.length, T) - 1)); // [B, C]
    return reshape(this.score.forward(last), [B]);
  }

  /** The files of a saved reward model: the body's model directory plus the head. */
  headFile(): Uint8Array {
    return serializeSafetensors(
      new Map([
        ['score.weight', { dtype: 'F32', shape: this.score.weight.shape, data: this.score.weight.data }],
        ['score.bias', { dtype: 'F32', shape: this.score.bias!.shape, data: this.score.bias!.data }],
      ]),
      { format: 'attn-reward' },
    );
  }
}

/** Load a reward model saved by `attn reward train`. */
export function loadRewardModel(dir: string): { model: RewardModel; tokenizer: Tokenizer } {
  const path = join(dir, REWARD_HEAD_FILE);
  if (!existsSync(path)) throw new UserError(`${dir} has no ${REWARD_HEAD_FILE}: not a reward model (train one with \`attn reward train\`)`);
  const { model: body, tokenizer } = loadDecoder(dir, '--model');
  const model = new RewardModel(body);
  try {
    const { tensors } = readSafetensors(path);
    for (const [name, p] of [['score.weight', model.score.weight], ['score.bias', model.score.bias!]] as const) {
      const t = tensors.get(name);
      if (!t || !(t.data instanceof Float32Array) || t.data.length !== p.size) throw new UserError(`${path}: ${name} is missing or has the wrong size for a model of width ${body.config.n_embd}`);
      p.data.set(t.data);
    }
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
  model.eval();
  return { model, tokenizer };
}
