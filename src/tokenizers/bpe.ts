import { UserError } from '../util/errors.js';
import { IdBuffer } from './id_buffer.js';
import { NO_MERGE, PairTable } from './pair_table.js';
import { patternName, splitterFor, type Splitter } from './pretokenize.js';
import { splitSpecial } from './special.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** A merge rule: tokens `left` and `right`, side by side, become token `id`. */
export type Merge = readonly [left: number, right: number, id: number];

export interface BPEParts {
  /** Pre-tokenizer: 'gpt2', 'cl100k', or a regex source. */
  pattern: string;
  /** The id of each of the 256 bytes (GPT-2 does not number them 0…255). */
  byteIds: ArrayLike<number>;
  /** Merge rules, lowest rank (applied first) first. */
  merges: ReadonlyArray<Merge>;
  specialTokens: ReadonlyMap<string, number>;
}

const utf8 = new TextEncoder();
/** Pieces remembered before the cache is emptied (bounds memory on endless input). */
const CACHE_LIMIT = 100_000;

/**
 * Byte-level BPE. Text becomes UTF-8 bytes, so every string encodes and no
 * token is ever unknown; the pre-tokenizer cuts the text into pieces; inside
 * each piece the adjacent pair with the lowest-ranked merge rule is merged,
 * again and again, until no rule applies. Pieces repeat (" the", " and"), so
 * each piece's ids are cached.
 */
export class BPETokenizer implements Tokenizer {
  readonly type = 'bpe';
  readonly pattern: string;
  readonly byteIds: Int32Array;
  readonly merges: ReadonlyArray<Merge>;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly vocabSize: number;
  /** The bytes each id stands for. */
  private readonly bytesOf: Uint8Array[];
  private readonly table: PairTable;
  private readonly split: Splitter;
  private readonly cache = new Map<string, Int32Array>();
  private scratchBytes = new Uint8Array(256);
  private scratchIds = new Int32Array(256);
  private scratchRanks = new Int32Array(256);

  constructor(parts: BPEParts, source = 'BPE tokenizer') {
    this.pattern = patternName(parts.pattern);
    this.split = splitterFor(parts.pattern);
    this.byteIds = Int32Array.from(parts.byteIds);
    this.merges = parts.merges;
    this.specialTokens = parts.specialTokens;
    this.vocabSize = 256 + parts.merges.length + parts.specialTokens.size;
    this.bytesOf = buildVocabulary(parts, this.vocabSize, source);
    this.table = new PairTable(parts.merges);
  }

  encode(text: string, options?: EncodeOptions): Int32Array {
    const out = new IdBuffer(text.length / 3 + 16);
    for (const seg of splitSpecial(text, this.specialTokens, options)) {
      if (seg.special !== undefined) out.push(seg.special);
      else this.encodeOrdinary(seg.text, out);
    }
    return out.toArray();
  }

  /** Encode text with no special-token handling at all. */
  encodeOrdinary(text: string, out: IdBuffer): void {
    const cache = this.cache;
    this.split(text, (start, end) => {
      const piece = text.slice(start, end);
      let ids = cache.get(piece);
      if (ids === undefined) {
        ids = this.encodePiece(piece);
        if (cache.size >= CACHE_LIMIT) cache.clear();
        cache.set(piece, ids);
      }
      out.pushAll(ids);
    });
  }

  /** BPE on one piece: its bytes, then lowest-rank merges until none applies (incrementally; bpe_naive.ts is the plain loop it is checked against). */
  private encodePiece(piece: string): Int32Array {
    if (this.scratchBytes.length < piece.length * 3) this.growScratch(piece.length * 3);
    const n = utf8.encodeInto(piece, this.scratchBytes).written; // lone surrogates become U+FFFD
    const ids = this.scratchIds;
    const ranks = this.scratchRanks; // ranks[i]: rank of the pair (ids[i], ids[i+1])
    for (let i = 0; i < n; i++) ids[i] = this.byteIds[this.scratchBytes[i]!]!;
    for (let i = 0; i + 1 < n; i++) ranks[i] = this.table.rank(ids[i]!, ids[i + 1]!);
    let len = n;
    while (len > 1) {
      let best = NO_MERGE;
      let at = -1;
      for (let i = 0; i + 1 < len; i++) {
        if (ranks[i]! < best) {
          best = ranks[i]!;
          at = i;
        }
      }
      if (at < 0) break;
      ids[at] = this.table.mergedId(ids[at]!, ids[at + 1]!);
      ids.copyWithin(at + 1, at + 2, len);
      ranks.copyWithin(at, at + 1, len - 1);
      len--;
      if (at + 1 < len) ranks[at] = this.table.rank(ids[at]!, ids[at + 1]!);
      if (at > 0) ranks[at - 1] = this.table.rank(ids[at - 1]!, ids[at]!);
    }
    return ids.slice(0, len);
  }

  private growScratch(n: number): void {
    this.scratchBytes = new Uint8Array(n);
    this.scratchIds = new Int32Array(n);
    this.scratchRanks = new Int32Array(n);
  }

  /** The UTF-8 bytes of the ids, concatenated (a token may hold part of a character). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.tokenBytes(ids[i]!).length;
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf[ids[i]!]!;
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  /** Text of the ids; bytes that are not valid UTF-8 (a cut character) become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.decodeBytes(ids)); // keep a leading U+FEFF: it is text
  }

  tokenBytes(id: number): Uint8Array {
    const b = Number.isInteger(id) ? this.bytesOf[id] : undefined;
    if (b === undefined) throw new UserError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    return b;
  }

  toJSON(): object {
    const identity = this.byteIds.every((id, b) => id === b);
    return {
      type: 'bpe',
      version: 1,
      pattern: this.pattern,
      ...(identity ? {} : { byte_ids: Array.from(this.byteIds) }),
      special_tokens: Object.fromEntries(this.specialTokens),
      merges: this.merges,
    };
  }

  /** Rebuild from toJSON()'s object, checking every field. */
  static fromJSON(raw: Record<string, unknown>, source: string): BPETokenizer {
    const bad = (what: string): never => {
      throw new UserError(`${source}: ${what}`);
    };
    if (raw.version !== 1) bad(`unsupported BPE tokenizer version ${JSON.stringify(raw.version)} (expected 1)`);
    if (typeof raw.pattern !== 'string') bad('"pattern" must be a string');
    const isId = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
    const byteIds = raw.byte_ids ?? Array.from({ length: 256 }, (_, b) => b);
    if (!Array.isArray(byteIds) || byteIds.length !== 256 || !byteIds.every(isId)) bad('"byte_ids" must be 256 token ids');
    if (!Array.isArray(raw.merges) || !raw.merges.every((m) => Array.isArray(m) && m.length === 3 && m.every(isId))) {
      bad('"merges" must be an array of [left, right, id] triples of token ids');
    }
    const sp = raw.special_tokens ?? {};
    if (typeof sp !== 'object' || sp === null || !Object.values(sp).every(isId)) bad('"special_tokens" must map strings to token ids');
    return new BPETokenizer(
      { pattern: raw.pattern as string, byteIds: byteIds as number[], merges: raw.merges as Merge[], specialTokens: new Map(Object.entries(sp as Record<string, number>)) },
      source,
    );
  }
}

/**
 * The bytes of every id, checking that the ids are exactly 0…vocabSize−1, each
 * defined once: a byte, a merge of two earlier tokens, or a special token.
 */
function buildVocabulary(parts: BPEParts, vocabSize: number, source: string): Uint8Array[] {
  const bytesOf: Uint8Array[] = new Array(vocabSize);
  const define = (id: number, bytes: Uint8Array, what: string): void => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new UserError(`${source}: ${what} has id ${id}, outside 0…${vocabSize - 1} (a vocabulary of ${vocabSize} = 256 bytes + ${parts.merges.length} merges + ${parts.specialTokens.size} special tokens)`);
    }
    if (bytesOf[id] !== undefined) throw new UserError(`${source}: id ${id} is used twice (again by ${what})`);
    bytesOf[id] = bytes;
  };
  if (parts.byteIds.length !== 256) throw new UserError(`${source}: expected ids for 256 bytes, got ${parts.byteIds.length}`);
  for (let b = 0; b < 256; b++) define(parts.byteIds[b]!, Uint8Array.of(b), `byte ${b}`);
  parts.merges.forEach(([a, b, id], rank) => {
    const left = bytesOf[a];
    const right = bytesOf[b];
    if (left === undefined || right === undefined) {
      throw new UserError(`${source}: merge ${rank} (${a} + ${b}) uses a token that no earlier byte or merge defines`);
    }
    const merged = new Uint8Array(left.length + right.length);
    merged.set(left);
    merged.set(right, left.length);
    define(id, merged, `merge ${rank}`);
  });
  for (const [text, id] of parts.specialTokens) {
    if (text.length === 0) throw new UserError(`${source}: a special token is the empty string`);
    define(id, utf8.encode(text), `special token ${JSON.stringify(text)}`);
  }
  return bytesOf;
}
