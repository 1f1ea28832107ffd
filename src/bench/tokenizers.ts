import { BPETokenizer } from '../tokenizers/bpe.js';
import { trainBPE } from '../tokenizers/bpe_train.js';
import { bpeFromRanks } from '../tokenizers/tiktoken_ranks.js';

/** tiktoken's encoding data as js-tiktoken ships it: compressed base64 ranks. */
interface TiktokenRanks {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

/**
 * js-tiktoken's compressed rank format: lines "! offset tok tok …", where
 * each tok is base64 bytes and ranks count up from offset.
 */
export function parseJsTiktokenRanks(data: TiktokenRanks): Uint8Array[] {
  const ranked: Uint8Array[] = [];
  for (const line of data.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, offset, ...tokens] = line.split(' ');
    tokens.forEach((t, i) => (ranked[Number(offset) + i] = new Uint8Array(Buffer.from(t, 'base64'))));
  }
  return ranked;
}

/**
 * GPT-2's BPE built from the ranks js-tiktoken ships (a dev dependency; used
 * as data and as the oracle, never at run time). Null if it is not installed.
 */
export async function gpt2FromJsTiktoken(): Promise<BPETokenizer | null> {
  let mod: { default: TiktokenRanks };
  try {
    mod = (await import('js-tiktoken/ranks/gpt2' as string)) as { default: TiktokenRanks };
  } catch {
    return null;
  }
  return bpeFromRanks(parseJsTiktokenRanks(mod.default), new Map(Object.entries(mod.default.special_tokens)), 'gpt2');
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Median MB/s of encode(text) over `repeats` runs after a first run, and the
 * first run's own MB/s ("cold": for attn, with its piece cache still empty).
 */
function throughput(encode: (text: string) => ArrayLike<number>, text: string, repeats: number): { mb_per_s: number; mb_per_s_first: number; tokens: number } {
  const mb = Buffer.byteLength(text, 'utf8') / 1e6;
  const t0 = performance.now();
  const tokens = encode(text).length;
  const first = mb / ((performance.now() - t0) / 1000);
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    encode(text);
    rates.push(mb / ((performance.now() - t0) / 1000));
  }
  return { mb_per_s: Number(median(rates).toFixed(2)), mb_per_s_first: Number(first.toFixed(2)), tokens };
}

/**
 * Tokenizer workloads for `attn bench`: GPT-2 encoding throughput (one
 * thread) of attn, tiktoken (WASM build of the Rust original) and
 * js-tiktoken on the same text in the same run, and BPE training to a
 * 4096-token vocabulary. Implementations that are not installed are skipped.
 *
 * attn's tokenizer is fresh, so its piece cache is empty for the first run
 * (mb_per_s_first) and full for the timed ones (mb_per_s).
 */
export async function benchTokenizers(opts: { text: string; repeats?: number }): Promise<Array<Record<string, unknown>>> {
  const repeats = opts.repeats ?? 5;
  const rows: Array<Record<string, unknown>> = [];
  const row = (impl: string, r: { mb_per_s: number; mb_per_s_first: number; tokens: number }): void => {
    rows.push({ workload: 'tokenize-encode', encoding: 'gpt2', impl, threads: 1, ...r, bytes: Buffer.byteLength(opts.text, 'utf8'), repeats });
  };
  const attn = await gpt2FromJsTiktoken();
  if (attn) row('attn', throughput((t) => attn.encode(t), opts.text, repeats));
  try {
    const { get_encoding } = (await import('tiktoken' as string)) as typeof import('tiktoken');
    const enc = get_encoding('gpt2');
    row('tiktoken', throughput((t) => enc.encode(t), opts.text, repeats));
    enc.free();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
  try {
    const { getEncoding } = (await import('js-tiktoken' as string)) as typeof import('js-tiktoken');
    const enc = getEncoding('gpt2');
    row('js-tiktoken', throughput((t) => enc.encode(t), opts.text, repeats));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
  const seconds: number[] = [];
  for (let r = 0; r < Math.max(1, Math.min(repeats, 3)); r++) {
    const t0 = performance.now();
    trainBPE(opts.text, { vocabSize: 4096 });
    seconds.push((performance.now() - t0) / 1000);
  }
  rows.push({ workload: 'bpe-train', impl: 'attn', threads: 1, vocab_size: 4096, seconds: Number(median(seconds).toFixed(3)), bytes: Buffer.byteLength(opts.text, 'utf8') });
  return rows;
}
