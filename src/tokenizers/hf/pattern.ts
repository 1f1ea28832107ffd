import { UserError } from '../../util/errors.js';
import { CONTRACTIONS_ANY_CASE } from '../pretokenize.js';

type Json = Record<string, unknown>;

/**
 * A tokenizer.json pattern, `{"String": s}` (the literal s) or `{"Regex": r}`
 * (a Rust/Oniguruma regex), as a global JavaScript regex.
 */
export function patternRegex(pattern: unknown, where: string, source: string): RegExp {
  const p = (typeof pattern === 'object' && pattern !== null ? pattern : {}) as Json;
  if (typeof p.String === 'string') return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  if (typeof p.Regex === 'string') {
    const js = fromRustRegex(p.Regex);
    try {
      return new RegExp(js, 'gu');
    } catch (e) {
      throw new UserError(`${source}: ${where} regex ${JSON.stringify(p.Regex)} is not supported by JavaScript: ${(e as Error).message}`);
    }
  }
  throw new UserError(`${source}: ${where} pattern must be {"String": …} or {"Regex": …}`);
}

/**
 * Rust regexes allow an inline case-insensitive group `(?i:'s|'t|…)` (GPT-4's,
 * Llama 3's and Qwen's patterns have it); JavaScript in Node 20 does not, so
 * that group is spelt out with character classes.
 */
function fromRustRegex(source: string): string {
  return source.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", CONTRACTIONS_ANY_CASE);
}
