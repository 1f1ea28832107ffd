import { Rng } from '../util/rng.js';

/**
 * A translation task that needs no download: English number words ↔ German
 * number words, 0 … 999 999. German says the units before the tens
 * ("zweiundvierzig" is "two-and-forty") and writes a number as one word, so
 * a model must attend out of order to get it right.
 *
 * Conventions (fixed, so the task has one right answer):
 * - English: hyphens for 21–99 ("twenty-one"), no "and" ("three hundred forty-two"),
 *   "one hundred", "one thousand" with the "one".
 * - German: "einhundert" and "eintausend" with the "ein" (not bare "hundert"),
 *   "eins" only as the last word part ("hunderteins" → "einhunderteins"),
 *   "ein" before "und", "hundert" and "tausend" ("einundzwanzig", "einhunderteintausend").
 */
export const MAX_NUMBER = 999_999;

const EN_ONES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const EN_TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
const DE_ONES = ['null', 'eins', 'zwei', 'drei', 'vier', 'fünf', 'sechs', 'sieben', 'acht', 'neun', 'zehn', 'elf', 'zwölf', 'dreizehn', 'vierzehn', 'fünfzehn', 'sechzehn', 'siebzehn', 'achtzehn', 'neunzehn'];
const DE_TENS = ['', '', 'zwanzig', 'dreißig', 'vierzig', 'fünfzig', 'sechzig', 'siebzig', 'achtzig', 'neunzig'];

function checkRange(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_NUMBER) throw new RangeError(`number words cover integers 0 … ${MAX_NUMBER}, got ${n}`);
}

function englishBelow1000(n: number): string {
  const words: string[] = [];
  if (n >= 100) words.push(`${EN_ONES[Math.floor(n / 100)]} hundred`);
  const rest = n % 100;
  if (rest >= 20) words.push(EN_TENS[Math.floor(rest / 10)]! + (rest % 10 ? `-${EN_ONES[rest % 10]}` : ''));
  else if (rest > 0) words.push(EN_ONES[rest]!);
  return words.join(' ');
}

/** 342 → "three hundred forty-two". */
export function english(n: number): string {
  checkRange(n);
  if (n === 0) return 'zero';
  const thousands = Math.floor(n / 1000);
  const rest = n % 1000;
  const parts = thousands ? [`${englishBelow1000(thousands)} thousand`] : [];
  if (rest) parts.push(englishBelow1000(rest));
  return parts.join(' ');
}

/** 1 … 999 in German; `last` says whether nothing follows (then 1 is "eins", else "ein"). */
function germanBelow1000(n: number, last: boolean): string {
  let s = n >= 100 ? `${germanUnit(Math.floor(n / 100))}hundert` : '';
  const rest = n % 100;
  if (rest === 1) s += last ? 'eins' : 'ein';
  else if (rest >= 20 && rest % 10) s += `${germanUnit(rest % 10)}und${DE_TENS[Math.floor(rest / 10)]}`;
  else if (rest >= 20) s += DE_TENS[rest / 10]!;
  else if (rest > 0) s += DE_ONES[rest]!;
  return s;
}

/** A digit in front of something else: "ein", not "eins". */
const germanUnit = (d: number): string => (d === 1 ? 'ein' : DE_ONES[d]!);

/** 342 → "dreihundertzweiundvierzig". */
export function german(n: number): string {
  checkRange(n);
  if (n === 0) return 'null';
  const thousands = Math.floor(n / 1000);
  const rest = n % 1000;
  return (thousands ? `${germanBelow1000(thousands, false)}tausend` : '') + (rest ? germanBelow1000(rest, true) : '');
}

/**
 * The word pieces both languages are built from, for a piece tokenizer:
 * English words and separators, German morphemes ("drei", "und", "zwanzig",
 * "hundert"), so a German number is about ten tokens, not sixty characters.
 */
export function numberPieces(): string[] {
  const en = [...EN_ONES, ...EN_TENS.filter(Boolean), 'hundred', 'thousand', ' ', '-'];
  const de = [...DE_ONES, ...DE_TENS.filter(Boolean), 'ein', 'und', 'hundert', 'tausend'];
  return [...new Set([...en, ...de])];
}

/** A fixed integer hash (murmur3's finalizer): the split must not depend on the seed or the platform. */
function mix(n: number): number {
  let h = (n ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** About 2 % of the numbers (every magnitude alike) are never trained on: the held-out split. */
export function isHeldOut(n: number): boolean {
  return mix(n) % 50 === 0;
}

/** A number with 1 … 6 digits, each digit count equally likely, so small numbers are not drowned out. */
function anyMagnitude(rng: Rng): number {
  const digits = 1 + rng.int(6);
  const lo = digits === 1 ? 0 : 10 ** (digits - 1);
  return lo + rng.int(10 ** digits - lo);
}

/** A training number: magnitude-balanced, never from the held-out split. */
export function sampleTrainNumber(rng: Rng): number {
  for (;;) {
    const n = anyMagnitude(rng);
    if (!isHeldOut(n)) return n;
  }
}

/**
 * The evaluation set: `count` held-out numbers, spread evenly over the six
 * magnitudes (as far as each has held-out numbers), in a fixed order.
 */
export function heldOutNumbers(count: number): number[] {
  const byDigits: number[][] = Array.from({ length: 6 }, () => []);
  for (let n = 0; n <= MAX_NUMBER; n++) if (isHeldOut(n)) byDigits[String(n).length - 1]!.push(n);
  const rng = new Rng(2024);
  for (const group of byDigits) shuffle(group, rng);
  const out: number[] = [];
  for (let i = 0; out.length < count && byDigits.some((g) => i < g.length); i++) {
    for (const g of byDigits) if (i < g.length && out.length < count) out.push(g[i]!);
  }
  return out;
}

function shuffle<T>(a: T[], rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}
