import { UserError } from '../util/errors.js';
import type { EncodeOptions, SpecialSet } from './tokenizer.js';

/** A piece of text to encode: ordinary text, or one special token's id. */
export type Segment = { text: string; special?: undefined } | { text: string; special: number };

const escapeRegex = (s: string): string => s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');

function toSet(s: SpecialSet | undefined, all: Iterable<string>, fallback: 'all' | 'none'): Set<string> {
  if (s === undefined) return fallback === 'all' ? new Set(all) : new Set();
  return s === 'all' ? new Set(all) : new Set(s);
}

/** A regex that finds any of these strings, longest first so `<|a|>x` beats `<|a|>`. */
function anyOf(tokens: Iterable<string>): RegExp | null {
  // An empty token would match everywhere without moving on: the split would never end.
  const list = [...tokens].filter((t) => t !== '').sort((a, b) => b.length - a.length);
  return list.length ? new RegExp(list.map(escapeRegex).join('|'), 'g') : null;
}

/**
 * Cut text at the special tokens the policy allows, checking that none it
 * disallows appears. Ordinary text between them is returned whole, so the
 * caller's pre-tokenizer never sees a special token and never splits one.
 */
export function splitSpecial(text: string, specials: ReadonlyMap<string, number>, options: EncodeOptions = {}): Segment[] {
  if (specials.size === 0) return [{ text }];
  const allowed = toSet(options.allowedSpecial, specials.keys(), 'none');
  const disallowed = toSet(options.disallowedSpecial, specials.keys(), 'all');
  for (const a of allowed) disallowed.delete(a);
  const bad = anyOf([...disallowed].filter((s) => specials.has(s)));
  const found = bad?.exec(text);
  if (found) {
    throw new UserError(`the text contains the special token ${JSON.stringify(found[0])}, which is not allowed here (allow it, or encode it as plain text)`);
  }
  const re = anyOf([...allowed].filter((s) => specials.has(s)));
  if (!re) return [{ text }];
  const out: Segment[] = [];
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: m[0], special: specials.get(m[0])! });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}
