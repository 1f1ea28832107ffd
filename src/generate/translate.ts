import { beamReads, greedyReads, modelLogProbReads, type Hypothesis } from '../models/seq2seq_decode.js';
import type { Transformer } from '../models/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import { releaseStorage, withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { isHost } from '../backend/storage.js';
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

/** Translate texts: encode each source once, then greedy (batched) or beam search per text. Host backends. */
export function translate(model: Transformer, tokenizer: PieceTokenizer, texts: string[], o: TranslateOptions = {}): Translation[] {
  return valuesNow(translations(model, tokenizer, texts, o));
}

/**
 * translate on any backend. On a device the sources are encoded once and
 * stay there; each decoding step reads back one row of scores per
 * hypothesis, which the search ranks on the host.
 */
export function translateAsync(model: Transformer, tokenizer: PieceTokenizer, texts: string[], o: TranslateOptions = {}): Promise<Translation[]> {
  return valuesAwaited(translations(model, tokenizer, texts, o));
}

/** The translations, as a computation that yields each step's scores to be read (tensor/value_reads.ts). */
function* translations(model: Transformer, tokenizer: PieceTokenizer, texts: string[], o: TranslateOptions): ValueReads<Translation[]> {
  const maxLen = model.config.max_length;
  const decode = { bos: BOS, eos: EOS, maxLength: Math.min(o.maxLength ?? maxLen - 1, maxLen - 1) };
  const beamWidth = o.beamWidth ?? 1;
  const batch = beamWidth > 1 ? 1 : (o.batchSize ?? 256);
  const out: Translation[] = [];
  for (let i = 0; i < texts.length; i += batch) {
    const chunk = texts.slice(i, i + batch);
    // On a device the encoder's activations go back to the pool at once; its output serves every step, then goes back too.
    const enc = withDeviceScratch(() => noGrad(() => model.encode(padRows(chunk.map((t) => encodeSource(tokenizer, t, maxLen))))), (e) => [e.memory.storage]);
    try {
      const next = modelLogProbReads(model, enc);
      const hyps: Hypothesis[] =
        beamWidth > 1 ? [yield* beamReads(next, 0, { ...decode, beamWidth, lengthPenalty: o.lengthPenalty ?? 0 })] : yield* greedyReads(next, chunk.length, decode);
      for (const h of hyps) out.push({ text: tokenizer.decode(h.tokens), ids: h.tokens, logProb: h.logProb, finished: h.finished });
    } finally {
      if (!isHost(enc.memory.storage)) releaseStorage(enc.memory.storage);
    }
  }
  return out;
}
