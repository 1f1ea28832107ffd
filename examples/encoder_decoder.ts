/**
 * The article, section "Encoder–decoder architecture": for translation the
 * original transformer reads the source with an encoder (no mask: every word
 * sees every word) and writes the target with a decoder whose
 * cross-attention looks back at the encoder's output. The article notes that
 * a GPT can do the same job by reading "source <SEP> target" as one sequence.
 * Here both, trained briefly on the same small task — write the source
 * letters backwards — with the library's Transformer and GPT.
 *
 *   npm run build && node dist/examples/encoder_decoder.js
 */
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Transformer } from '../src/models/transformer.js';
import { parseTransformerConfig } from '../src/models/transformer_config.js';
import type { Module } from '../src/nn/module.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { isMain } from './is_main.js';

/** Token ids: padding, begin, end, the separator, then the letters. */
export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
export const SEP = 3;
export const LETTERS = 'abcdef';
export const LENGTH = 5;

const letterId = (c: string): number => 4 + LETTERS.indexOf(c);
const letterOf = (id: number): string => LETTERS[id - 4] ?? '?';

/** A random source of LENGTH letters, and its target: the letters backwards. */
export function pair(rng: Rng): { source: string; target: string } {
  const source = Array.from({ length: LENGTH }, () => LETTERS[rng.int(LETTERS.length)]!).join('');
  return { source, target: [...source].reverse().join('') };
}

export type Kind = 'encoder-decoder' | 'gpt-sep';

export interface Trained {
  kind: Kind;
  model: Module;
  losses: number[];
  /** Greedy answer for a source. */
  answer(sources: string[]): string[];
}

const VOCAB = 4 + LETTERS.length;

/** The encoder–decoder: source into the encoder, "<BOS> target" into the decoder, which predicts "target <EOS>". */
function encoderDecoder(seed: number): { model: Transformer; loss: (b: Array<{ source: string; target: string }>) => Tensor; answer: Trained['answer'] } {
  const model = new Transformer(parseTransformerConfig({ vocab_size: VOCAB, n_encoder_layers: 1, n_decoder_layers: 1, d_model: 32, n_head: 2, d_ff: 64, max_length: 8, norm: 'pre', share_embeddings: true }), new Rng(seed));
  const ids = (rows: string[], pre: number[], post: number[]): Int32Array => Int32Array.from(rows.flatMap((s) => [...pre, ...[...s].map(letterId), ...post]));
  const loss = (b: Array<{ source: string; target: string }>): Tensor => {
    const n = b.length;
    const src = { ids: ids(b.map((p) => p.source), [], []), shape: [n, LENGTH] as [number, number] };
    const tgtIn = { ids: ids(b.map((p) => p.target), [BOS], []), shape: [n, LENGTH + 1] as [number, number] };
    return model.forward(src, tgtIn, ids(b.map((p) => p.target), [], [EOS])).loss!;
  };
  const answer = (sources: string[]): string[] => noGrad(() => {
    const n = sources.length;
    const enc = model.encode({ ids: ids(sources, [], []), shape: [n, LENGTH] });
    const out = sources.map(() => [BOS]);
    for (let t = 0; t < LENGTH; t++) {
      const logits = model.decodeStep(enc, { ids: Int32Array.from(out.flat()), shape: [n, t + 1] });
      out.forEach((row, i) => row.push(argmax(logits.data.subarray(i * VOCAB, (i + 1) * VOCAB))));
    }
    return out.map((row) => row.slice(1).map(letterOf).join(''));
  });
  return { model, loss, answer };
}

/** The GPT: "source <SEP> target" as one sequence; the loss counts only the target's positions. */
function gptWithSeparator(seed: number): { model: GPT; loss: (b: Array<{ source: string; target: string }>) => Tensor; answer: Trained['answer'] } {
  const T = 2 * LENGTH + 1;
  const model = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: T, vocab_size: VOCAB, dropout: 0 }), new Rng(seed));
  const loss = (b: Array<{ source: string; target: string }>): Tensor => {
    const seqs = b.map((p) => [...[...p.source].map(letterId), SEP, ...[...p.target].map(letterId), EOS]);
    const x = Int32Array.from(seqs.flatMap((s) => s.slice(0, T)));
    // Predicting the source itself is not the task (it is random): those targets are skipped.
    const y = Int32Array.from(seqs.flatMap((s) => s.slice(1).map((id, i) => (i < LENGTH ? -1 : id))));
    return crossEntropy(model.forward(x, [b.length, T]).logits, y);
  };
  const answer = (sources: string[]): string[] => noGrad(() => {
    const rows = sources.map((s) => [...[...s].map(letterId), SEP]);
    for (let t = 0; t < LENGTH; t++) {
      const logits = model.nextTokenLogits(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
      rows.forEach((row, i) => row.push(argmax(logits.data.subarray(i * VOCAB, (i + 1) * VOCAB))));
    }
    return rows.map((row) => row.slice(LENGTH + 1).map(letterOf).join(''));
  });
  return { model, loss, answer };
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** Train one of the two for `steps` AdamW steps on fresh random pairs. */
export function trainReverser(kind: Kind, { steps = 200, batchSize = 16, lr = 5e-3, seed = 1 } = {}): Trained {
  const built = kind === 'encoder-decoder' ? encoderDecoder(seed) : gptWithSeparator(seed);
  const opt = new AdamW(built.model.namedParameters(), { lr, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(seed + 100);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    built.model.zeroGrad();
    const loss = built.loss(Array.from({ length: batchSize }, () => pair(rng)));
    losses.push(loss.item());
    backward(loss);
    opt.update(lr);
  }
  built.model.eval();
  return { kind, model: built.model, losses, answer: built.answer };
}

/** Fraction of held-out sources answered exactly right. */
export function exactMatch(t: Trained, count = 200, seed = 999): number {
  const rng = new Rng(seed);
  const pairs = Array.from({ length: count }, () => pair(rng));
  const got = t.answer(pairs.map((p) => p.source));
  return got.filter((g, i) => g === pairs[i]!.target).length / count;
}

function main(): void {
  const rng = new Rng(5);
  const examples = Array.from({ length: 3 }, () => pair(rng));
  console.log(`task: write ${LENGTH} letters backwards, e.g. ${examples.map((p) => `${p.source} → ${p.target}`).join(', ')}`);
  console.log('the GPT reads e.g. "abcde<SEP>edcba<EOS>", learning only the part after <SEP>');
  for (const kind of ['encoder-decoder', 'gpt-sep'] as const) {
    const t0 = performance.now();
    const t = trainReverser(kind);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const l = t.losses;
    console.log(`\n${kind}: ${t.model.numParameters()} parameters, ${l.length} steps in ${secs}s`);
    console.log(`  loss ${l[0]!.toFixed(3)} → ${l[l.length - 1]!.toFixed(3)}; exact answers on 200 new sources: ${(100 * exactMatch(t)).toFixed(1)}%`);
    console.log(`  ${examples.map((p) => p.source).join(', ')} → ${t.answer(examples.map((p) => p.source)).join(', ')}`);
  }
}

if (isMain(import.meta.url)) main();
