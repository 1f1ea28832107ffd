/**
 * The playground's model work, free of the DOM and of workers so that Node tests can
 * drive it: build a char GPT on a text, take training steps, evaluate, sample one token
 * at a time with its top-k probabilities, read the attention weights of every layer
 * and head, and save/load the model in the CLI's directory format. The Web Worker
 * (web/worker.ts) only forwards messages to a Session.
 */
import { backend } from '../../src/backend/index.js';
import { GPT } from '../../src/models/gpt.js';
import { onHost } from '../../src/nn/placement.js';
import { parseGPTConfig, type GPTConfig } from '../../src/models/gpt_config.js';
import { AdamW } from '../../src/optim/adamw.js';
import { learningRate } from '../../src/optim/schedule.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { attention, attentionWeights } from '../../src/tensor/ops/attention.js';
import { BPETokenizer } from '../../src/tokenizers/bpe.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';
import { WordTokenizer } from '../../src/tokenizers/word.js';
import { TokenDataset, type Batch } from '../../src/train/data.js';
import { estimateLoss } from '../../src/train/evaluate.js';
import { nextTokenObjective } from '../../src/train/next_token.js';
import { trainStep, trainStepAsync, type Objective } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';
import { parseSafetensors, serializeSafetensors, type TensorEntry } from '../../src/io/safetensors_codec.js';

export interface ModelSizes {
  n_layer: number;
  n_head: number;
  n_embd: number;
  block_size: number;
}

export interface TrainSettings {
  lr: number;
  batchSize: number;
  /** Steps over which the learning rate decays (cosine) after warm-up. */
  maxIters: number;
  warmupIters: number;
  evalIters: number;
  seed: number;
}

export const DEFAULT_SIZES: ModelSizes = { n_layer: 2, n_head: 4, n_embd: 64, block_size: 64 };
export const DEFAULT_TRAIN: TrainSettings = { lr: 3e-3, batchSize: 8, maxIters: 2000, warmupIters: 30, evalIters: 4, seed: 1337 };

export interface StepResult {
  step: number;
  loss: number;
  tokens: number;
}

export interface NextToken {
  id: number;
  text: string;
  /** The k most likely next tokens after temperature, most likely first (they are what is sampled from). */
  top: Array<{ id: number; text: string; p: number }>;
}

export interface AttentionMaps {
  /** The prompt's tokens (the last block_size of them), as text. */
  tokens: string[];
  nLayer: number;
  nHead: number;
  /** [layer][head][query i][key j], row-major: weights[((l·H + h)·T + i)·T + j]; zero above the diagonal. */
  weights: Float32Array;
}

/** The files of a model directory, as the CLI reads them (config.json, model.safetensors, tokenizer.json). */
export interface ModelFiles {
  'config.json': string;
  'model.safetensors': Uint8Array;
  'tokenizer.json': string;
}

export function tokenizerFromJSONText(text: string): Tokenizer {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error('tokenizer.json is not valid JSON');
  }
  if (o.type === 'char' && Array.isArray(o.chars)) return new CharTokenizer(o.chars as string[]);
  if (o.type === 'word') return WordTokenizer.fromJSON(o, 'tokenizer.json');
  if (o.type === 'bpe') return BPETokenizer.fromJSON(o, 'tokenizer.json');
  throw new Error(`tokenizer.json: type ${JSON.stringify(o.type)} is not supported in the page (char, word or bpe)`);
}

export class Session {
  readonly model: GPT;
  readonly tokenizer: Tokenizer;
  readonly config: GPTConfig;
  data: TokenDataset | null = null;
  step = 0;
  private opt: AdamW;
  private objective: Objective<Batch>;
  private batchRng: Rng;
  private sampleRng: Rng;

  constructor(model: GPT, tokenizer: Tokenizer, readonly train: TrainSettings = DEFAULT_TRAIN) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.config = model.config;
    this.opt = new AdamW(model.namedParameters(), { lr: train.lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    this.objective = nextTokenObjective(model, model.config.block_size);
    this.batchRng = new Rng(train.seed + 1);
    this.sampleRng = new Rng(train.seed + 2);
  }

  /** A fresh char-level model for `text`. */
  static forText(text: string, sizes: ModelSizes = DEFAULT_SIZES, train: TrainSettings = DEFAULT_TRAIN): Session {
    if (sizes.n_embd % sizes.n_head !== 0) throw new Error(`n_embd (${sizes.n_embd}) must be divisible by n_head (${sizes.n_head})`);
    const tokenizer = CharTokenizer.fromText(text);
    const config = parseGPTConfig({ ...sizes, vocab_size: tokenizer.vocabSize, dropout: 0, bias: false });
    const s = new Session(new GPT(config, new Rng(train.seed)), tokenizer, train);
    s.setText(text);
    return s;
  }

  /** Load the three files of a model directory (from the CLI or from this page). */
  static fromFiles(files: ModelFiles, train: TrainSettings = DEFAULT_TRAIN): Session {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(files['config.json']) as Record<string, unknown>;
    } catch {
      throw new Error('config.json is not valid JSON');
    }
    if (raw.format !== 'attn') throw new Error('config.json is not an attn model config ("format": "attn")');
    if (raw.quantization) throw new Error('quantized models cannot be loaded in the page');
    const config = parseGPTConfig(raw, 'config.json');
    const tokenizer = tokenizerFromJSONText(files['tokenizer.json']);
    if (tokenizer.vocabSize > config.vocab_size) throw new Error(`tokenizer has ${tokenizer.vocabSize} tokens but vocab_size is ${config.vocab_size}`);
    const model = new GPT(config, new Rng(train.seed));
    const tensors = parseSafetensors(files['model.safetensors'], 'model.safetensors').tensors;
    const params = model.namedParameters();
    for (const [name, p] of params) {
      const t = tensors.get(name);
      if (!t) throw new Error(`model.safetensors has no tensor ${name}`);
      if (t.shape.join() !== p.shape.join()) throw new Error(`tensor ${name} has shape [${t.shape}] but the config needs [${p.shape}]`);
      if (!(t.data instanceof Float32Array)) throw new Error(`tensor ${name} has dtype ${t.dtype}; the page reads F32, F16 and BF16`);
      p.data.set(t.data);
    }
    if (tensors.size !== params.length) throw new Error(`model.safetensors has ${tensors.size - params.length} unexpected tensors`);
    return new Session(model, tokenizer, train);
  }

  /** Training text for this model (characters outside its vocabulary are an error). */
  setText(text: string): void {
    this.data = new TokenDataset(this.tokenizer.encode(text), this.config.block_size);
  }

  get tokensPerStep(): number {
    return this.train.batchSize * this.config.block_size;
  }

  /** One AdamW step on a random batch (warm-up + cosine schedule, gradient clip 1): the CLI's step, one at a time. */
  trainStep(): StepResult {
    if (!this.data) throw new Error('no training text');
    const { batchSize, lr, warmupIters, maxIters } = this.train;
    this.model.train();
    const batch = this.data.batch('train', batchSize, this.batchRng);
    const r = trainStep(this.opt, this.objective, [batch], { lr: learningRate(this.step, { lr, minLr: lr / 10, warmupIters, decayIters: maxIters }), gradClip: 1 });
    this.step++;
    return { step: this.step, loss: r.loss, tokens: batch.x.length };
  }

  /** Whether the model lives on a device backend (WebGPU): it was built while that backend was current. */
  get onDevice(): boolean {
    return backend().device !== undefined;
  }

  /**
   * trainStep on any backend: on WebGPU the step is queued on the GPU and
   * waits for one read (the loss), as `attn train` does.
   */
  async trainStepAsync(): Promise<StepResult> {
    if (!this.onDevice) return this.trainStep();
    if (!this.data) throw new Error('no training text');
    const { batchSize, lr, warmupIters, maxIters } = this.train;
    this.model.train();
    const batch = this.data.batch('train', batchSize, this.batchRng);
    const r = await trainStepAsync(this.opt, this.objective, [batch], { lr: learningRate(this.step, { lr, minLr: lr / 10, warmupIters, decayIters: maxIters }), gradClip: 1 });
    this.step++;
    return { step: this.step, loss: r.loss, tokens: batch.x.length };
  }

  /**
   * Run synchronous model code (evaluation, sampling, attention maps, saving)
   * when the weights live on the GPU: they are read back once, and fn runs on
   * the js backend over those host copies; the device copies stay as they
   * were. The page's models are small, so the read costs little; training
   * itself never leaves the GPU.
   */
  async onHost<T>(fn: () => T): Promise<T> {
    return onHost(this.model.parameters(), fn);
  }

  /** Mean loss on fixed batches of each split. */
  evaluate(): { train: number; val: number } {
    if (!this.data) throw new Error('no training text');
    return estimateLoss(this.model, this.data, this.train.batchSize, this.train.evalIters, this.train.seed);
  }

  /** Encode a prompt, keeping only known tokens' worth of text (an unknown character is an error). */
  encode(prompt: string): Int32Array {
    return this.tokenizer.encode(prompt);
  }

  /**
   * The next token after `ids`: logits of the last position (context cropped to block_size),
   * divided by the temperature, cut to the top k, softmaxed, sampled. temperature 0 = greedy.
   */
  nextToken(ids: Int32Array, temperature: number, topK: number): NextToken {
    const T = Math.min(ids.length, this.config.block_size);
    if (T === 0) throw new Error('the prompt is empty');
    const ctx = ids.subarray(ids.length - T);
    this.model.eval();
    const logits = noGrad(() => this.model.nextTokenLogits(ctx, [1, T])).data;
    const V = this.tokenizer.vocabSize; // the model may have spare ids beyond the tokenizer's
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
    const k = Math.max(1, Math.min(topK || V, V));
    const kept = order.slice(0, k);
    const t = temperature > 0 ? temperature : 1;
    const max = logits[kept[0]!]! / t;
    const w = kept.map((i) => Math.exp(logits[i]! / t - max));
    const z = w.reduce((a, b) => a + b, 0);
    const top = kept.map((id, j) => ({ id, text: this.tokenizer.decode([id]), p: w[j]! / z }));
    let id = kept[0]!;
    if (temperature > 0) {
      let r = this.sampleRng.random();
      for (const c of top) {
        r -= c.p;
        id = c.id;
        if (r < 0) break;
      }
    }
    return { id, text: this.tokenizer.decode([id]), top: top.slice(0, Math.min(k, 10)) };
  }

  /**
   * Every layer's and head's attention weights over the prompt: softmax(q·kᵀ/√d_head)
   * with the causal mask (position i sees j ≤ i), taken from the model's own
   * forward pass: each layer's attention runs through an `attend` that also
   * keeps the probabilities of the queries and keys it is given (rotated under RoPE).
   */
  attention(ids: Int32Array): AttentionMaps {
    const T = Math.min(ids.length, this.config.block_size);
    if (T === 0) throw new Error('the prompt is empty');
    const ctx = ids.subarray(ids.length - T);
    const { n_layer: L, n_head: H } = this.config;
    const weights = new Float32Array(L * H * T * T);
    this.model.eval();
    noGrad(() =>
      this.model.forward(ctx, [1, T], undefined, {
        last: true,
        attend: (layer, q, k, v, o) => {
          weights.set(attentionWeights(q, k, o), layer * H * T * T);
          return attention(q, k, v, o);
        },
      }),
    );
    return { tokens: Array.from(ctx, (id) => this.tokenizer.decode([id])), nLayer: L, nHead: H, weights };
  }

  /** The model directory's files, byte for byte what `attn train` writes for the same weights. */
  toFiles(): ModelFiles {
    const tensors = new Map<string, TensorEntry>();
    for (const [name, p] of this.model.namedParameters()) tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
    const config = { format: 'attn', model_type: 'attn-gpt', ...this.config };
    return {
      'config.json': JSON.stringify(config, null, 2) + '\n',
      'model.safetensors': serializeSafetensors(tensors, { format: 'attn' }),
      'tokenizer.json': JSON.stringify(this.tokenizer.toJSON()) + '\n',
    };
  }
}
