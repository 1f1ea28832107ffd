/**
 * GPT-2's pre-tokenizer regex, written out as a scanner:
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * Each code point is put in one class (letter, number, space, other) by the
 * regex engine itself, once, so the classes agree with JavaScript's \p{L},
 * \p{N} and \s exactly; then the alternatives are tried in the regex's order.
 * It gives the same pieces as the regex (a property test checks it) without
 * the regex engine's per-match cost.
 */

const UNKNOWN = 0;
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const OTHER = 4;

/** Class of every code point, filled in lazily (0 = not yet looked at). */
const classes = new Uint8Array(0x110000);

function classify(cp: number): number {
  const c = String.fromCodePoint(cp);
  const k = /\p{L}/u.test(c) ? LETTER : /\p{N}/u.test(c) ? NUMBER : /\s/u.test(c) ? SPACE : OTHER;
  classes[cp] = k;
  return k;
}

/** The code point at i: a surrogate pair is one, a lone surrogate stands for itself (as in a /u regex). */
function codePointAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

function classAt(text: string, i: number): number {
  const cp = codePointAt(text, i);
  const k = classes[cp]!;
  return k === UNKNOWN ? classify(cp) : k;
}

const width = (text: string, i: number): number => (codePointAt(text, i) > 0xffff ? 2 : 1);

/** End of the run of code points of class k starting at i. */
function runEnd(text: string, i: number, k: number): number {
  const n = text.length;
  while (i < n && classAt(text, i) === k) i += width(text, i);
  return i;
}

/** Length of a contraction ('s 't 're 've 'm 'll 'd) at i, which holds an apostrophe; 0 if none. */
function contraction(text: string, i: number): number {
  const a = text.charCodeAt(i + 1);
  if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return 2; // s t m d
  const b = text.charCodeAt(i + 2);
  if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return 3; // re ve ll
  return 0;
}

export function scanGPT2(text: string, onPiece: (start: number, end: number) => void): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    let end: number;
    if (c === 0x27 && contraction(text, i) > 0) {
      end = i + contraction(text, i);
    } else {
      const k = classAt(text, i);
      if (k !== SPACE) {
        end = runEnd(text, i, k); // \p{L}+ | \p{N}+ | [^\s\p{L}\p{N}]+
      } else if (c === 0x20 && i + 1 < n && classAt(text, i + 1) !== SPACE) {
        end = runEnd(text, i + 1, classAt(text, i + 1)); // " ?" then a run
      } else {
        // \s+(?!\S): a whitespace run, minus its last character when a
        // non-space follows (that one goes with the next word); else \s+.
        const j = runEnd(text, i, SPACE);
        end = j === n || j - i === 1 ? j : j - 1;
      }
    }
    onPiece(i, end);
    i = end;
  }
}
