import { UserError } from '../util/errors.js';
import { BPETokenizer, type Merge } from './bpe.js';
import { splitterFor } from './pretokenize.js';
import { splitSpecial } from './special.js';

export interface BPETrainOptions {
  /** Size of the final vocabulary: 256 bytes + merges + special tokens. */
  vocabSize: number;
  /** Pre-tokenizer: 'gpt2' (default), 'cl100k' or a regex source. */
  pattern?: string;
  /** Special tokens, given the last ids; their text in the training data is not learned from. */
  specialTokens?: string[];
  /** Called now and then with merges done and merges wanted. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Learn BPE merges from text, as GPT-2 did: count how often each adjacent
 * pair of tokens occurs, merge the most frequent pair into a new token,
 * repeat until the vocabulary is full.
 *
 * Done naively, every merge recounts every pair of the whole text. Instead:
 * the text is reduced to its distinct pre-tokenizer pieces ("words") with
 * their counts; each pair knows which words contain it; and a merge only
 * revisits those words, adjusting the counts of the pairs it changes. A
 * max-heap finds the most frequent pair. Ties go to the smaller (left, right)
 * ids, so training is deterministic.
 */
export function trainBPE(text: string, options: BPETrainOptions): BPETokenizer {
  const pattern = options.pattern ?? 'gpt2';
  const specials = options.specialTokens ?? [];
  const base = 256 + specials.length;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < base) {
    throw new UserError(`vocab size ${options.vocabSize} is smaller than the base alphabet: 256 bytes${specials.length ? ` + ${specials.length} special tokens` : ''} = ${base}`);
  }
  const words = countWords(text, pattern, specials);
  const merges = learnMerges(words, options.vocabSize - base, options.onProgress);
  const nextId = 256 + merges.length;
  return new BPETokenizer({
    pattern,
    byteIds: Array.from({ length: 256 }, (_, b) => b),
    merges,
    specialTokens: new Map(specials.map((s, i) => [s, nextId + i])),
  });
}

/** The training text as distinct pieces, each a run of byte ids, with how often it occurs. */
interface Words {
  /** All words' symbols back to back; a merge shortens a word in place. */
  symbols: Int32Array;
  start: Int32Array;
  length: Int32Array;
  count: Float64Array;
}

function countWords(text: string, pattern: string, specials: string[]): Words {
  const split = splitterFor(pattern);
  const counts = new Map<string, number>();
  const specialMap = new Map(specials.map((s, i) => [s, i]));
  for (const seg of splitSpecial(text, specialMap, { allowedSpecial: 'all' })) {
    if (seg.special !== undefined) continue;
    split(seg.text, (s, e) => {
      const piece = seg.text.slice(s, e);
      counts.set(piece, (counts.get(piece) ?? 0) + 1);
    });
  }
  const utf8 = new TextEncoder();
  const encoded = [...counts.keys()].map((w) => utf8.encode(w));
  const total = encoded.reduce((n, b) => n + b.length, 0);
  const words: Words = {
    symbols: new Int32Array(total),
    start: new Int32Array(encoded.length),
    length: new Int32Array(encoded.length),
    count: Float64Array.from(counts.values()),
  };
  let at = 0;
  encoded.forEach((bytes, w) => {
    words.start[w] = at;
    words.length[w] = bytes.length;
    words.symbols.set(bytes, at);
    at += bytes.length;
  });
  return words;
}

/** Pair (a, b) packed in one number; ids stay below 2^21. */
const SHIFT = 2 ** 21;
const pairKey = (a: number, b: number): number => a * SHIFT + b;

function learnMerges(words: Words, wanted: number, onProgress?: (done: number, total: number) => void): Merge[] {
  const { symbols, start, length, count } = words;
  const pairCount = new Map<number, number>();
  const wordsWith = new Map<number, number[]>();
  for (let w = 0; w < start.length; w++) {
    for (let i = start[w]!, end = start[w]! + length[w]! - 1; i < end; i++) {
      const k = pairKey(symbols[i]!, symbols[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + count[w]!);
      let list = wordsWith.get(k);
      if (!list) wordsWith.set(k, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(k, c);

  const merges: Merge[] = [];
  const lastVisit = new Int32Array(start.length).fill(-1);
  const touched = new Set<number>();
  const every = Math.max(1, Math.floor(wanted / 100));
  while (merges.length < wanted) {
    const top = popCurrent(heap, pairCount);
    if (top < 0) break; // every piece is one token: nothing left to merge
    const a = Math.floor(top / SHIFT);
    const b = top - a * SHIFT;
    const id = 256 + merges.length;
    merges.push([a, b, id]);
    touched.clear();
    for (const w of wordsWith.get(top) ?? []) {
      if (lastVisit[w] === merges.length) continue; // listed twice
      lastVisit[w] = merges.length;
      mergeInWord(words, w, a, b, id, pairCount, wordsWith, touched);
    }
    pairCount.delete(top);
    wordsWith.delete(top);
    for (const k of touched) {
      const c = pairCount.get(k);
      if (c !== undefined && c > 0) heap.push(k, c);
    }
    if (onProgress && (merges.length % every === 0 || merges.length === wanted)) onProgress(merges.length, wanted);
  }
  return merges;
}

/**
 * Replace every (a, b) in word w by id. The word's pairs are uncounted before
 * and counted again after, which handles overlaps like "aaa" simply; words
 * are short, so this costs little.
 */
function mergeInWord(
  words: Words, w: number, a: number, b: number, id: number,
  pairCount: Map<number, number>, wordsWith: Map<number, number[]>, touched: Set<number>,
): void {
  const { symbols, start, length, count } = words;
  const s = start[w]!;
  const n = length[w]!;
  const c = count[w]!;
  let found = false;
  for (let i = s; i + 1 < s + n; i++) if (symbols[i] === a && symbols[i + 1] === b) found = true;
  if (!found) return;
  const addPairs = (sign: number): void => {
    for (let i = s, end = s + length[w]! - 1; i < end; i++) {
      const k = pairKey(symbols[i]!, symbols[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * c);
      touched.add(k);
    }
  };
  addPairs(-1);
  let out = s;
  for (let i = s; i < s + n; i++) {
    if (i + 1 < s + n && symbols[i] === a && symbols[i + 1] === b) {
      symbols[out++] = id;
      i++;
    } else symbols[out++] = symbols[i]!;
  }
  length[w] = out - s;
  addPairs(+1);
  // New pairs are the ones next to the new token: index the word under them.
  for (let i = s; i < out - 1; i++) {
    if (symbols[i] === id || symbols[i + 1] === id) {
      const k = pairKey(symbols[i]!, symbols[i + 1]!);
      let list = wordsWith.get(k);
      if (!list) wordsWith.set(k, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }
}

/** Pop entries until one whose count is still current (entries go stale as counts change). */
function popCurrent(heap: PairHeap, pairCount: Map<number, number>): number {
  while (heap.size > 0) {
    const [k, c] = heap.pop();
    if (pairCount.get(k) === c && c > 0) return k;
  }
  return -1;
}

/** Binary max-heap of (pair, count): highest count first, then the smaller pair key. */
class PairHeap {
  private keys: number[] = [];
  private counts: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
  }

  push(key: number, count: number): void {
    this.keys.push(key);
    this.counts.push(count);
    for (let i = this.keys.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.keys[0]!, this.counts[0]!];
    const k = this.keys.pop()!;
    const c = this.counts.pop()!;
    if (this.keys.length > 0) {
      this.keys[0] = k;
      this.counts[0] = c;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.keys.length && this.above(l, m)) m = l;
        if (r < this.keys.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
