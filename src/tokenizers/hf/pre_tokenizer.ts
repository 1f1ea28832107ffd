import { UserError } from '../../util/errors.js';
import { BYTE_TO_UNICODE } from '../bytes.js';
import { PATTERNS, regexSplitter } from '../pretokenize.js';
import { patternRegex } from './pattern.js';

type Json = Record<string, unknown>;

/**
 * A pre-tokenizer cuts normalized text into pieces; BPE merges only inside a
 * piece. `section` is the index of the text's section among the added tokens
 * around it (Metaspace's prepend_scheme "first" prepends only in section 0).
 */
export type PreTokenizer = (pieces: string[], section: number) => string[];

const SUPPORTED = 'ByteLevel, Split, Sequence, Digits, Metaspace, Whitespace, WhitespaceSplit, Replace';

/** The pre-tokenizer a tokenizer.json describes (null for none); others are refused by name. */
export function preTokenizerFrom(config: unknown, source: string): PreTokenizer | null {
  if (config === null || config === undefined) return null;
  const c = config as Json;
  // Apply f to every piece; a loop, not flatMap: this runs once per word of the text.
  const each =
    (f: (piece: string, section: number) => string[]): PreTokenizer =>
    (pieces, section) => {
      if (pieces.length === 1) return f(pieces[0]!, section);
      const out: string[] = [];
      for (const p of pieces) for (const q of f(p, section)) out.push(q);
      return out;
    };
  switch (c.type) {
    case 'ByteLevel':
      return each(byteLevel(c));
    case 'Split': {
      const re = patternRegex(c.pattern, 'pre_tokenizer Split', source);
      const behavior = String(c.behavior ?? 'Isolated');
      if (!BEHAVIORS.includes(behavior)) throw new UserError(`${source}: pre_tokenizer Split behavior ${JSON.stringify(behavior)} is not supported (supported: ${BEHAVIORS.join(', ')})`);
      return each((p) => splitBy(p, re, behavior, c.invert === true));
    }
    case 'Digits':
      return each((p) => splitBy(p, c.individual_digits === true ? /\p{Nd}/gu : /\p{Nd}+/gu, 'Isolated', false));
    case 'Whitespace':
      return each((p) => p.match(/\w+|[^\w\s]+/gu) ?? []);
    case 'WhitespaceSplit':
      return each((p) => p.match(/\S+/gu) ?? []);
    case 'Metaspace':
      return each(metaspace(c));
    case 'Replace': {
      const re = patternRegex(c.pattern, 'pre_tokenizer Replace', source);
      const content = String(c.content ?? '');
      return each((p) => [p.replace(re, () => content)]);
    }
    case 'Sequence': {
      if (!Array.isArray(c.pretokenizers)) throw new UserError(`${source}: pre_tokenizer Sequence needs "pretokenizers"`);
      const steps = c.pretokenizers.map((p) => preTokenizerFrom(p, source)).filter((p): p is PreTokenizer => p !== null);
      return (pieces, section) => steps.reduce((ps, step) => step(ps, section), pieces);
    }
    default:
      throw new UserError(`${source}: pre_tokenizer type ${JSON.stringify(c.type)} is not supported (supported: ${SUPPORTED})`);
  }
}

const gpt2Split = regexSplitter(PATTERNS.gpt2);

/**
 * GPT-2's byte-level step: optionally a leading space (so a first word is
 * spelt like any other), optionally GPT-2's regex, then every UTF-8 byte
 * written as its printable stand-in character (see bytes.ts), which is how
 * the vocabulary spells tokens.
 */
function byteLevel(c: Json): (piece: string) => string[] {
  const addPrefixSpace = c.add_prefix_space === true;
  const useRegex = c.use_regex !== false;
  const spell = (text: string): string => {
    let s = '';
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) s += BYTE_TO_UNICODE[c];
      else s += spellUtf8(text, i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) i++;
    }
    return s;
  };
  return (piece) => {
    if (addPrefixSpace && !piece.startsWith(' ')) piece = ' ' + piece;
    if (!useRegex) return [spell(piece)];
    const out: string[] = [];
    gpt2Split(piece, (start, end) => out.push(spell(piece.slice(start, end))));
    return out;
  };
}

const isLowSurrogate = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

/** The byte stand-ins of the UTF-8 bytes of the (non-ASCII) code point at i; a lone surrogate is U+FFFD, as TextEncoder writes it. */
function spellUtf8(text: string, i: number): string {
  let cp = text.charCodeAt(i);
  if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
    cp = ((cp - 0xd800) << 10) + (text.charCodeAt(i + 1) - 0xdc00) + 0x10000;
  } else if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  const b = BYTE_TO_UNICODE;
  if (cp < 0x800) return b[0xc0 | (cp >> 6)]! + b[0x80 | (cp & 63)]!;
  if (cp < 0x10000) return b[0xe0 | (cp >> 12)]! + b[0x80 | ((cp >> 6) & 63)]! + b[0x80 | (cp & 63)]!;
  return b[0xf0 | (cp >> 18)]! + b[0x80 | ((cp >> 12) & 63)]! + b[0x80 | ((cp >> 6) & 63)]! + b[0x80 | (cp & 63)]!;
}

/**
 * SentencePiece's convention: spaces become "▁" (replacement), a "▁" is put
 * in front (always, only in the first section, or never), and with `split`
 * (the default) the text is cut before every "▁", each piece a word with its
 * leading "▁".
 */
function metaspace(c: Json): (piece: string, section: number) => string[] {
  const replacement = typeof c.replacement === 'string' ? c.replacement : '▁';
  // Older files say add_prefix_space instead of prepend_scheme.
  const scheme = typeof c.prepend_scheme === 'string' ? c.prepend_scheme : c.add_prefix_space === false ? 'never' : 'always';
  const split = c.split !== false;
  const at = new RegExp(replacement.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  return (piece, section) => {
    let s = piece.replaceAll(' ', replacement);
    if (!s.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && section === 0))) s = replacement + s;
    return split ? splitBy(s, at, 'MergedWithNext', false) : [s];
  };
}

const BEHAVIORS = ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

/**
 * Cut text at the regex's matches, as Hugging Face's SplitDelimiterBehavior
 * says: Isolated (matches are pieces of their own), Removed (dropped),
 * MergedWithPrevious/Next (glued to the text before/after), Contiguous
 * (consecutive matches form one piece). `invert` swaps matches and the text
 * between them.
 */
export function splitBy(text: string, re: RegExp, behavior: string, invert: boolean): string[] {
  if (behavior === 'Isolated') return isolate(text, re); // the common case (Llama 3, Qwen), without the bookkeeping
  const parts: Array<{ text: string; match: boolean }> = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex += 1;
      continue;
    }
    if (m.index > last) parts.push({ text: text.slice(last, m.index), match: invert });
    parts.push({ text: m[0], match: !invert });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last), match: invert });
  const out: string[] = [];
  let pendingPrefix = ''; // MergedWithNext: the match just before this part
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    switch (behavior) {
      case 'Isolated':
        out.push(p.text);
        break;
      case 'Removed':
        if (!p.match) out.push(p.text);
        break;
      case 'MergedWithPrevious':
        if (p.match && out.length > 0 && !parts[i - 1]!.match) out[out.length - 1] += p.text;
        else out.push(p.text);
        break;
      case 'MergedWithNext':
        // A match joins the text after it; a match followed by a match stays alone.
        if (p.match && i + 1 < parts.length && !parts[i + 1]!.match) pendingPrefix = p.text;
        else {
          out.push(pendingPrefix + p.text);
          pendingPrefix = '';
        }
        break;
      case 'Contiguous':
        if (p.match && i > 0 && parts[i - 1]!.match) out[out.length - 1] += p.text;
        else out.push(p.text);
        break;
    }
  }
  return out;
}

/** Split with behavior Isolated: every match and every stretch between matches is a piece. */
function isolate(text: string, re: RegExp): string[] {
  const out: string[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex += 1;
      continue;
    }
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
