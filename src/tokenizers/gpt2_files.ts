import { UserError } from '../util/errors.js';
import { BPETokenizer, type Merge } from './bpe.js';
import { BYTE_TO_UNICODE } from './bytes.js';

/**
 * Build a byte-level BPE from a vocabulary (token string → id, in GPT-2's
 * byte↔unicode spelling) and its merge rules in rank order, as both GPT-2's
 * own files and Hugging Face's tokenizer.json store them. Vocabulary entries
 * that are neither a byte nor a merge's result must be listed in `added`
 * (special tokens like <|endoftext|>); anything else means the files do not
 * belong together.
 */
export function bpeFromVocabAndMerges(
  vocab: Record<string, unknown>,
  merges: ReadonlyArray<readonly [string, string]>,
  options: { pattern: string; added?: ReadonlyMap<string, number>; source: string },
): BPETokenizer {
  const { source } = options;
  const idOf = (token: string, why: string): number => {
    const id = vocab[token];
    if (!Number.isInteger(id) || (id as number) < 0) throw new UserError(`${source}: ${why}: ${JSON.stringify(token)} is not in the vocabulary`);
    return id as number;
  };
  const byteIds = BYTE_TO_UNICODE.map((c, b) => idOf(c, `byte ${b}`));
  const seen = new Set<string>(BYTE_TO_UNICODE);
  const rules: Merge[] = merges.map(([a, b], rank) => {
    seen.add(a + b);
    return [idOf(a, `merge ${rank}`), idOf(b, `merge ${rank}`), idOf(a + b, `merge ${rank} (${a} ${b})`)];
  });
  const specials = new Map<string, number>();
  for (const [token, id] of Object.entries(vocab)) {
    if (seen.has(token)) continue;
    // GPT-2's files do not mark special tokens; they are spelt <|like this|>.
    const special = options.added ? options.added.has(token) : /^<.+>$/s.test(token);
    if (!special) {
      throw new UserError(`${source}: vocabulary entry ${JSON.stringify(token)} (id ${String(id)}) is neither a byte, a merge result nor a special token: the vocabulary and merges do not match`);
    }
    specials.set(token, idOf(token, 'special token'));
  }
  // An added token that BPE can already make (a byte or merge result) stays an ordinary token.
  for (const [token, id] of options.added ?? []) if (!specials.has(token) && !seen.has(token)) specials.set(token, id);
  return new BPETokenizer({ pattern: options.pattern, byteIds, merges: rules, specialTokens: specials }, source);
}

/**
 * GPT-2's original files: encoder.json (token → id; Hugging Face calls it
 * vocab.json) and vocab.bpe (merges.txt): a "#version" line, then one merge
 * per line, "left right", in rank order.
 */
export function bpeFromGPT2Files(encoderJson: string, vocabBpe: string, source: { encoder: string; merges: string }): BPETokenizer {
  let vocab: unknown;
  try {
    vocab = JSON.parse(encoderJson);
  } catch (e) {
    throw new UserError(`${source.encoder}: invalid JSON: ${(e as Error).message}`);
  }
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw new UserError(`${source.encoder}: expected a JSON object of token → id`);
  return bpeFromVocabAndMerges(vocab as Record<string, unknown>, parseMergeLines(vocabBpe, source.merges), {
    pattern: 'gpt2',
    source: `${source.encoder} + ${source.merges}`,
  });
}

export function parseMergeLines(text: string, source: string): Array<[string, string]> {
  const lines = text.split('\n');
  const merges: Array<[string, string]> = [];
  lines.forEach((line, i) => {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UserError(`${source}: line ${i + 1} is not a merge "left right": ${JSON.stringify(line.slice(0, 40))}`);
    merges.push([parts[0], parts[1]]);
  });
  return merges;
}
