import { UserError } from '../util/errors.js';
import { scanGPT2 } from './gpt2_scan.js';

/** `'s 't 're 've 'm 'll 'd` in any case: JavaScript (Node 20) has no inline `(?i:…)`. */
export const CONTRACTIONS_ANY_CASE = "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])";

/**
 * Pre-tokenization: before BPE, text is cut into pieces (roughly words with
 * their leading space, numbers, punctuation runs, whitespace) and BPE merges
 * only inside a piece. So " dog" and " dog." share the token " dog", and a
 * merge never glues a word to the punctuation after it.
 */
export const PATTERNS = {
  /** GPT-2's pattern (OpenAI's encoder.py). */
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  /**
   * GPT-4's (cl100k_base): case-insensitive contractions, numbers in groups of
   * at most three digits, newlines kept apart.
   */
  cl100k:
    CONTRACTIONS_ANY_CASE + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
} as const;

export type PatternName = keyof typeof PATTERNS;

/** Calls onPiece(start, end) for each piece of text, in order, covering all of it. */
export type Splitter = (text: string, onPiece: (start: number, end: number) => void) => void;

/** Any regex as a splitter; text it does not match is still passed on, so nothing is lost. */
export function regexSplitter(source: string): Splitter {
  let re: RegExp;
  try {
    re = new RegExp(source, 'gu');
  } catch (e) {
    throw new UserError(`pre-tokenizer pattern ${JSON.stringify(source)} is not a valid JavaScript regex: ${(e as Error).message}`);
  }
  return (text, onPiece) => {
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index > last) onPiece(last, m.index);
      onPiece(m.index, m.index + m[0].length);
      last = m.index + m[0].length;
    }
    if (last < text.length) onPiece(last, text.length);
  };
}

/**
 * The splitter for a pattern name or regex source. GPT-2's pattern gets a
 * hand-written scanner, equal to the regex (tested) and several times faster.
 */
export function splitterFor(pattern: string): Splitter {
  if (pattern === 'gpt2' || pattern === PATTERNS.gpt2) return scanGPT2;
  if (pattern === 'cl100k') return regexSplitter(PATTERNS.cl100k);
  return regexSplitter(pattern);
}

/** Convert a known pattern's source back to its short name, for tokenizer.json. */
export function patternName(source: string): string {
  for (const [name, src] of Object.entries(PATTERNS)) if (src === source || name === source) return name;
  return source;
}
