import { backend } from '../backend/index.js';
import { isHost } from '../backend/storage.js';
import { BOS, decodeCaption, EOS, PAD } from '../data/fashion_captions.js';
import type { Captioner } from '../models/captioner.js';
import { noGrad } from '../tensor/autograd.js';
import { slice } from '../tensor/ops/shape.js';
import { releaseStorage, Tensor, withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';

/**
 * Greedy captions for a batch of images [B, H, W, C]: encode the pictures
 * once, then write word by word, each step taking the most likely next word
 * for every row; a row that has written <eos> writes <pad> from then on.
 * The prefix is re-read each step (no KV cache): captions are a few words.
 * Host backends; writeCaptionsAsync writes on any backend.
 */
export function writeCaptions(model: Captioner, images: Tensor): { ids: number[][]; captions: string[] } {
  return valuesNow(captionReads(model, images));
}

/** writeCaptions on any backend: on a device each step reads back only the B words it picked. */
export function writeCaptionsAsync(model: Captioner, images: Tensor): Promise<{ ids: number[][]; captions: string[] }> {
  return valuesAwaited(captionReads(model, images));
}

/**
 * The greedy decoding as a computation that yields each step's picks to be
 * read (tensor/value_reads.ts): the backend takes the most likely word of
 * every row's last position (argmaxRows: the first on ties, as a host loop
 * would), so a device reads back B numbers a step, not the scores.
 */
export function* captionReads(model: Captioner, images: Tensor): ValueReads<{ ids: number[][]; captions: string[] }> {
  const B = images.shape[0]!;
  const ids: number[][] = Array.from({ length: B }, () => []);
  const done = new Uint8Array(B);
  model.eval();
  // On a device the patch vectors stay for every step; the encoder's intermediates go back to the pool at once.
  const memory = withDeviceScratch(() => noGrad(() => model.encode(images)), (m) => [m.storage]);
  const prefix: number[][] = Array.from({ length: B }, () => [BOS]);
  try {
    for (let t = 0; t < model.config.max_length - 1 && done.some((d) => !d); t++) {
      const picked = withDeviceScratch(() => noGrad(() => lastWords(model, memory, Int32Array.from(prefix.flat()))), (p) => [p.storage]);
      const [next] = yield [picked];
      for (let b = 0; b < B; b++) {
        let word = PAD;
        if (!done[b]) {
          word = next![b]!;
          ids[b]!.push(word);
          if (word === EOS) done[b] = 1;
        }
        prefix[b]!.push(word);
      }
    }
  } finally {
    if (!isHost(memory.storage)) releaseStorage(memory.storage);
  }
  return { ids, captions: ids.map((row) => decodeCaption(row, model.config.vocab)) };
}

/** The most likely next word [B] after each row's last position of tokens [B·T], as floats in the backend's storage. */
function lastWords(model: Captioner, memory: Tensor, tokens: Int32Array): Tensor {
  const B = memory.shape[0]!;
  const T = tokens.length / B;
  const V = model.config.vocab.length;
  const logits = model.decode(memory, tokens);
  const last = T === 1 ? logits : slice(logits, 1, T - 1, T);
  const picked = Tensor.empty([B]);
  backend().argmaxRows(last.storage, B, V, picked.storage);
  return picked;
}

/** Where the decoder looked while writing each word: the last layer's cross-attention, averaged over heads. */
export interface CaptionAttention {
  /** The words written (EOS included as "<eos>"). */
  words: string[];
  /** words[i]'s weights over the image's patches (reading order), the class token's share left out. */
  patches: number[][];
  /** The class token's share of each word's attention. */
  classToken: number[];
}

/** The cross-attention behind one image's caption `ids`, by re-reading <bos> + ids in one teacher-forced pass (host backends; captionAttentionAsync on any). */
export function captionAttention(model: Captioner, image: Tensor, ids: number[]): CaptionAttention {
  return valuesNow(attentionReads(model, image, ids));
}

/** captionAttention on any backend: a device reads back the last layer's cross-attention queries and keys. */
export function captionAttentionAsync(model: Captioner, image: Tensor, ids: number[]): Promise<CaptionAttention> {
  return valuesAwaited(attentionReads(model, image, ids));
}

/**
 * The teacher-forced pass, yielding the last layer's cross-attention queries
 * and keys to be read; their weights are computed from those values
 * (Captioner.crossAttention), then averaged over heads.
 */
function* attentionReads(model: Captioner, image: Tensor, ids: number[]): ValueReads<CaptionAttention> {
  const tokensIn = Int32Array.of(BOS, ...ids.slice(0, -1));
  const [q, k] = withDeviceScratch(() => noGrad(() => {
    model.eval().decode(model.encode(image), tokensIn, { keepWeights: true });
    return model.crossQueriesKeys()!;
  }), (qk) => qk.map((t) => t.storage));
  const [qValues, kValues] = yield [q, k];
  const w = model.crossAttention([qValues!, kValues!])!;
  const H = model.config.image.n_head;
  const T = tokensIn.length;
  const S = w.length / (H * T);
  const patches: number[][] = [];
  const classToken: number[] = [];
  for (let i = 0; i < T; i++) {
    const mean = new Array<number>(S).fill(0);
    for (let h = 0; h < H; h++) for (let s = 0; s < S; s++) mean[s]! += w[(h * T + i) * S + s]! / H;
    classToken.push(mean[0]!);
    patches.push(mean.slice(1));
  }
  return { words: ids.map((id) => model.config.vocab[id] ?? '?'), patches, classToken };
}
