import { beamSearch, greedyDecode, modelLogProbs, type Hypothesis } from '../models/seq2seq_decode.js';
import type { Transformer } from '../models/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import { BOS, EOS, type PieceTokenizer } from '../tokenizers/piece.js';
import { encodeSource, padRows } from '../models/seq2seq_batch.js';

export interface TranslateOptions {
  /** 1 = greedy. */
  beamWidth?: number;
  lengthPenalty?: number;
  /** Most target tokens, EOS included (default: the model's max_length − 1). */
  maxLength?: number;
  /** Sources translated together (greedy only): the decoder runs on a batch of this many rows. */
  batchSize?: number;
}

export interface Translation {
  text: string;
  /** Target token ids, without BOS and EOS. */
  ids: number[];
  logProb: number;
  finished: boolean;
}

/** Translate texts: encode each source once, then greedy (batched) or beam search per text. */
export function translate(model: Transformer, tokenizer: PieceTokenizer, texts: string[], o: TranslateOptions = {}): Translation[] {
  const maxLen = model.config.max_length;
  const decode = { bos: BOS, eos: EOS, maxLength: Math.min(o.maxLength ?? maxLen - 1, maxLen - 1) };
  const beamWidth = o.beamWidth ?? 1;
  const batch = beamWidth > 1 ? 1 : (o.batchSize ?? 256);
  const out: Translation[] = [];
  for (let i = 0; i < texts.length; i += batch) {
    const chunk = texts.slice(i, i + batch);
    const enc = noGrad(() => model.encode(padRows(chunk.map((t) => encodeSource(tokenizer, t, maxLen)))));
    const next = modelLogProbs(model, enc);
    const hyps: Hypothesis[] =
      beamWidth > 1 ? [beamSearch(next, 0, { ...decode, beamWidth, lengthPenalty: o.lengthPenalty ?? 0 })] : greedyDecode(next, chunk.length, decode);
    for (const h of hyps) out.push({ text: tokenizer.decode(h.tokens), ids: h.tokens, logProb: h.logProb, finished: h.finished });
  }
  return out;
}
