import { UserError } from '../../util/errors.js';
import { patternRegex } from './pattern.js';

type Json = Record<string, unknown>;

/** A normalizer rewrites text before it is split and encoded. */
export type Normalizer = (text: string) => string;

/**
 * The normalizer a tokenizer.json describes (null for none): NFC, NFD, NFKC,
 * NFKD, Lowercase, Prepend (SentencePiece's leading "▁"), Replace (" " → "▁"),
 * Strip, and a Sequence of them. Others are refused by name.
 */
export function normalizerFrom(config: unknown, source: string): Normalizer | null {
  if (config === null || config === undefined) return null;
  const c = config as Json;
  switch (c.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = c.type;
      return (t) => t.normalize(form);
    }
    case 'Lowercase':
      return (t) => t.toLowerCase();
    case 'Prepend': {
      const prepend = String(c.prepend ?? '');
      return (t) => prepend + t;
    }
    case 'Replace': {
      const re = patternRegex(c.pattern, 'normalizer Replace', source);
      const content = String(c.content ?? '');
      return (t) => t.replace(re, () => content);
    }
    case 'Strip': {
      const left = c.strip_left === true;
      const right = c.strip_right === true;
      return (t) => (left && right ? t.trim() : left ? t.trimStart() : right ? t.trimEnd() : t);
    }
    case 'Sequence': {
      if (!Array.isArray(c.normalizers)) throw new UserError(`${source}: normalizer Sequence needs "normalizers"`);
      const steps = c.normalizers.map((n) => normalizerFrom(n, source)).filter((n): n is Normalizer => n !== null);
      return (t) => steps.reduce((s, step) => step(s), t);
    }
    default:
      throw new UserError(`${source}: normalizer type ${JSON.stringify(c.type)} is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)`);
  }
}
