/**
 * Personal data in text: e-mail addresses, phone numbers, payment card
 * numbers, US social security numbers and IBANs. Each kind is a pattern for
 * its usual written shapes, then a check that the digits can really be one
 * (Luhn for cards, mod-97 for IBANs, the SSA's number ranges for SSNs, the
 * numbering plan for North American phones), so that the things that merely
 * look alike — dates, versions, order and invoice numbers, IP addresses,
 * prices — are not redacted. The shapes are those people and models write;
 * a number with no separators and no cue ("call …", "tel") is not treated
 * as a phone, because bare digit runs are far more often ids.
 */

export const PII_KINDS = ['email', 'phone', 'card', 'ssn', 'iban'] as const;
export type PiiKind = (typeof PII_KINDS)[number];

export interface PiiMatch {
  kind: PiiKind;
  start: number;
  end: number;
  text: string;
}

const digitsOf = (s: string): string => s.replace(/\D/g, '');

/** The Luhn checksum every payment card number carries in its last digit. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** Issuer prefixes and lengths: Visa, Mastercard, American Express, Discover. */
function cardIssuer(d: string): boolean {
  if (/^4/.test(d)) return d.length === 13 || d.length === 16 || d.length === 19;
  if (/^(5[1-5]|2(2[2-9][1-9]|[3-6]\d\d|7[01]\d|720))/.test(d)) return d.length === 16;
  if (/^3[47]/.test(d)) return d.length === 15;
  if (/^(6011|65|64[4-9])/.test(d)) return d.length >= 16 && d.length <= 19;
  return false;
}

/** IBAN lengths of the countries most often seen; others need 15–34 characters. */
const IBAN_LENGTH: Record<string, number> = { DE: 22, GB: 22, FR: 27, NL: 18, ES: 24, IT: 27, BE: 16, AT: 20, CH: 21, IE: 22, PL: 28, PT: 25, SE: 24, DK: 18, NO: 15, FI: 18, LU: 20 };

/** ISO 13616: move the first four characters to the end, letters to 10–35, the number mod 97 must be 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/\s/g, '').toUpperCase();
  const want = IBAN_LENGTH[s.slice(0, 2)];
  if (want !== undefined ? s.length !== want : s.length < 15 || s.length > 34) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const v = ch >= 'A' && ch <= 'Z' ? ch.charCodeAt(0) - 55 : ch.charCodeAt(0) - 48;
    if (v < 0 || v > 35) return false;
    rem = (rem * (v > 9 ? 100 : 10) + v) % 97;
  }
  return rem === 1;
}

/** Area 000, 666 and 900–999, group 00 and serial 0000 are never issued. */
function ssnValid(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && area[0] !== '9' && group !== '00' && serial !== '0000';
}

interface Rule {
  kind: PiiKind;
  pattern: RegExp;
  /** Whether this match is really one (checksums, number plans); the whole match when absent. */
  accept?: (m: RegExpExecArray) => boolean;
  /** The part of the match to redact (a cue word stays); group 1 when set. */
  group?: number;
}

// Digits not glued to other digits, letters or a decimal point on either side: "v1.555-123-4567" is not a phone.
const L = '(?<![\\w.+-])';
const R = '(?![\\w]|[.-]\\d)';

const RULES: Rule[] = [
  { kind: 'email', pattern: /(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])/g },
  {
    kind: 'iban',
    pattern: /(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w])/g,
    accept: (m) => ibanValid(m[0]),
  },
  {
    kind: 'card',
    // 13–19 digits, in groups of 4 (or Amex's 4-6-5) with one kind of separator, or unbroken.
    pattern: new RegExp(`${L}(?:\\d{4}([ -])\\d{4}\\1\\d{4}\\1\\d{1,7}|\\d{4}([ -])\\d{6}\\2\\d{5}|\\d{13,19})${R}`, 'g'),
    accept: (m) => {
      const d = digitsOf(m[0]);
      return d.length >= 13 && d.length <= 19 && luhnValid(d) && cardIssuer(d);
    },
  },
  {
    kind: 'ssn',
    pattern: new RegExp(`${L}(\\d{3})-(\\d{2})-(\\d{4})${R}`, 'g'),
    accept: (m) => ssnValid(m[1]!, m[2]!, m[3]!),
  },
  {
    kind: 'ssn',
    // Unbroken nine digits only after a cue.
    pattern: /\b(?:SSN|social security(?: number| no\.?)?)\s*(?:is|:|#)?\s*(\d{9})(?!\w)/gi,
    accept: (m) => ssnValid(m[1]!.slice(0, 3), m[1]!.slice(3, 5), m[1]!.slice(5)),
    group: 1,
  },
  {
    kind: 'phone',
    // International: +country code, then 6–14 more digits in groups (spaces, dots, dashes, an area code in brackets).
    pattern: new RegExp(`(?<![\\w+])\\+\\d{1,3}(?:[ .-]?\\(\\d{1,4}\\))?(?:[ .-]?\\d{1,5}){2,5}${R}`, 'g'),
    accept: (m) => {
      const n = digitsOf(m[0]).length;
      return n >= 8 && n <= 15;
    },
  },
  {
    kind: 'phone',
    // North American with the area code in brackets: (NXX) NXX-XXXX, optionally 1 first (N is 2–9).
    pattern: new RegExp(`${L}(?:1[ .-]?)?\\(([2-9]\\d\\d)\\) ?[2-9]\\d\\d[-. ]?\\d{4}${R}`, 'g'),
  },
  {
    kind: 'phone',
    // North American in three groups with one separator: NXX-NXX-XXXX, NXX.NXX.XXXX, NXX NXX XXXX.
    pattern: new RegExp(`${L}(?:1([-. ]))?[2-9]\\d\\d([-. ])[2-9]\\d\\d\\2\\d{4}${R}`, 'g'),
  },
  {
    kind: 'phone',
    // National numbers with a trunk 0 (UK, DE, FR …): 020 7946 0958, 030-1234567, 06 12 34 56 78.
    pattern: new RegExp(`${L}0\\d{1,4}(?:[ -]\\d{2,4}){1,4}${R}`, 'g'),
    accept: (m) => {
      const n = digitsOf(m[0]).length;
      // Dates (03-04-2024) have 8 digits and ids like 061-577-795 nine; national phone numbers have 10–12.
      return n >= 10 && n <= 12;
    },
  },
  {
    kind: 'phone',
    // Unbroken digits only after a cue word: "call 5551234567", "tel: 02079460958".
    pattern: /\b(?:call|phone|tel|telephone|mobile|cell|fax|whatsapp|text me at)\b\.?\s*(?:no\.?|number|#|:)?\s*(\+?\d{9,14})(?!\w)/gi,
    group: 1,
  },
];

/**
 * Every piece of personal data in `text`, in order, without overlaps (where two
 * rules claim the same characters the earlier-starting, then longer, wins).
 */
export function findPII(text: string, kinds: readonly PiiKind[] = PII_KINDS): PiiMatch[] {
  const wanted = new Set(kinds);
  const found: PiiMatch[] = [];
  for (const rule of RULES) {
    if (!wanted.has(rule.kind)) continue;
    rule.pattern.lastIndex = 0;
    for (let m = rule.pattern.exec(text); m; m = rule.pattern.exec(text)) {
      if (rule.accept && !rule.accept(m)) continue;
      const part = rule.group !== undefined ? m[rule.group]! : m[0];
      const start = rule.group !== undefined ? m.index + m[0].lastIndexOf(part) : m.index;
      found.push({ kind: rule.kind, start, end: start + part.length, text: part });
    }
  }
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: PiiMatch[] = [];
  for (const f of found) if (kept.length === 0 || f.start >= kept[kept.length - 1]!.end) kept.push(f);
  return kept;
}

/** The placeholder for a kind: `[EMAIL]`, `[PHONE]` … unless the config names another (`{kind}` is replaced). */
export function placeholder(kind: PiiKind, template = '[{KIND}]'): string {
  return template.replace('{KIND}', kind.toUpperCase()).replace('{kind}', kind);
}

export function redactPII(text: string, kinds: readonly PiiKind[] = PII_KINDS, template?: string): { text: string; found: PiiMatch[] } {
  const found = findPII(text, kinds);
  if (found.length === 0) return { text, found };
  let out = '';
  let at = 0;
  for (const f of found) {
    out += text.slice(at, f.start) + placeholder(f.kind, template);
    at = f.end;
  }
  return { text: out + text.slice(at), found };
}

/** Longest piece of personal data the rules can match (a 34-character IBAN with its spaces), with margin. */
export const LONGEST_PII = 48;

/**
 * Redaction of text that arrives in pieces (a stream): personal data may be
 * split across pieces, so the last LONGEST_PII characters are held back until
 * more text shows what they are, and never split a match when released.
 * `push` returns what may be sent now; `flush` the rest at the end.
 */
export class StreamRedactor {
  private pending = '';
  readonly found: PiiMatch[] = [];

  constructor(
    private readonly kinds: readonly PiiKind[] = PII_KINDS,
    private readonly template?: string,
  ) {}

  push(piece: string): string {
    this.pending += piece;
    let cut = this.pending.length - LONGEST_PII;
    if (cut <= 0) return '';
    // A match that reaches past the cut is kept whole in the held-back tail.
    for (const f of findPII(this.pending, this.kinds)) if (f.start < cut && f.end > cut) cut = f.start;
    return this.release(cut);
  }

  flush(): string {
    return this.release(this.pending.length);
  }

  private release(cut: number): string {
    const r = redactPII(this.pending.slice(0, cut), this.kinds, this.template);
    this.found.push(...r.found);
    this.pending = this.pending.slice(cut);
    return r.text;
  }
}
