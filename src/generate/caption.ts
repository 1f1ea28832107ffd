import { BOS, decodeCaption, EOS, PAD } from '../data/fashion_captions.js';
import type { Captioner } from '../models/captioner.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Greedy captions for a batch of images [B, H, W, C]: encode the pictures
 * once, then write word by word, each step taking the most likely next word
 * for every row; a row that has written <eos> writes <pad> from then on.
 * The prefix is re-read each step (no KV cache): captions are a few words.
 */
export function writeCaptions(model: Captioner, images: Tensor): { ids: number[][]; captions: string[] } {
  const B = images.shape[0]!;
  const V = model.config.vocab.length;
  const ids: number[][] = Array.from({ length: B }, () => []);
  const done = new Uint8Array(B);
  noGrad(() => {
    model.eval();
    const memory = model.encode(images);
    const prefix: number[][] = Array.from({ length: B }, () => [BOS]);
    for (let t = 0; t < model.config.max_length - 1 && done.some((d) => !d); t++) {
      const logits = model.decode(memory, Int32Array.from(prefix.flat())).data;
      const T = t + 1;
      for (let b = 0; b < B; b++) {
        let next = PAD;
        if (!done[b]) {
          const row = logits.subarray((b * T + T - 1) * V, (b * T + T) * V);
          next = 0;
          for (let v = 1; v < V; v++) if (row[v]! > row[next]!) next = v;
          ids[b]!.push(next);
          if (next === EOS) done[b] = 1;
        }
        prefix[b]!.push(next);
      }
    }
  });
  return { ids, captions: ids.map((row) => decodeCaption(row, model.config.vocab)) };
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

/** The cross-attention behind one image's caption `ids`, by re-reading <bos> + ids in one teacher-forced pass. */
export function captionAttention(model: Captioner, image: Tensor, ids: number[]): CaptionAttention {
  const tokensIn = Int32Array.of(BOS, ...ids.slice(0, -1));
  const w = noGrad(() => {
    model.eval().decode(model.encode(image), tokensIn, { keepWeights: true });
    return model.crossAttention()!;
  });
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
