import { UserError } from '../../util/errors.js';
import { mergeIds } from '../bpe_merge.js';
import type { IdBuffer } from '../id_buffer.js';
import { PairTable } from '../pair_table.js';

type Json = Record<string, unknown>;

/** Pieces remembered before the cache is emptied, and the longest piece worth remembering. */
const CACHE_LIMIT = 100_000;
const CACHE_PIECE_LENGTH = 256;

/**
 * Hugging Face's BPE model over a string vocabulary. A piece is split into
 * its characters (for byte-level tokenizers each "character" is a stand-in
 * for one byte), each looked up in the vocabulary, then merged by rank.
 * A character outside the vocabulary never merges; at the end it becomes its
 * UTF-8 bytes as `<0xNN>` tokens (byte_fallback, SentencePiece's way) or the
 * unk_token.
 */
export class HFBpeModel {
  /** Token string → id. */
  readonly vocab: Map<string, number>;
  private readonly table: PairTable;
  private readonly ignoreMerges: boolean;
  private readonly unkId: number | undefined;
  private readonly fuseUnk: boolean;
  /** Id of `<0xNN>` for each byte, or null without byte_fallback (or when some byte lacks one). */
  private readonly byteIds: Int32Array | null;
  private readonly cache = new Map<string, Int32Array>();
  private scratch = new Int32Array(256);

  constructor(model: Json, source: string) {
    const bad = (what: string): never => {
      throw new UserError(`${source}: ${what}`);
    };
    if (typeof model.vocab !== 'object' || model.vocab === null || Array.isArray(model.vocab)) bad('model.vocab must be an object of token → id');
    if (!Array.isArray(model.merges)) bad('model.merges must be an array');
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix']) if (model[key]) bad(`model.${key} is not supported`);
    if (typeof model.dropout === 'number' && model.dropout > 0) bad('model.dropout is not supported (it makes encoding random)');
    this.vocab = new Map();
    const vocab = model.vocab as Json;
    const keys = Object.keys(vocab);
    for (let i = 0; i < keys.length; i++) {
      const token = keys[i]!;
      const id = vocab[token];
      if (!Number.isInteger(id) || (id as number) < 0) bad(`model.vocab[${JSON.stringify(token)}] is not a token id`);
      this.vocab.set(token, id as number);
    }
    // 280 000 merges for Llama 3, 515 000 for Gemma: one pass, no arrays in between.
    const list = model.merges as unknown[];
    const merges = new Array<[number, number, number]>(list.length);
    for (let rank = 0; rank < list.length; rank++) {
      const m = list[rank];
      let a: unknown, b: unknown;
      if (typeof m === 'string') {
        const at = m.indexOf(' ');
        if (at > 0 && m.indexOf(' ', at + 1) < 0) [a, b] = [m.slice(0, at), m.slice(at + 1)];
      } else if (Array.isArray(m) && m.length === 2) [a, b] = m;
      if (typeof a !== 'string' || typeof b !== 'string' || a === '' || b === '') throw new UserError(`${source}: model.merges[${rank}] is not a pair of tokens`);
      const left = this.vocab.get(a);
      const right = this.vocab.get(b);
      const merged = this.vocab.get(a + b);
      if (left === undefined || right === undefined || merged === undefined) {
        const missing = left === undefined ? a : right === undefined ? b : a + b;
        throw new UserError(`${source}: merge ${rank}: ${JSON.stringify(missing)} is not in the vocabulary`);
      }
      merges[rank] = [left, right, merged];
    }
    this.table = new PairTable(merges);
    this.ignoreMerges = model.ignore_merges === true;
    this.fuseUnk = model.fuse_unk === true;
    if (model.unk_token !== null && model.unk_token !== undefined) {
      if (typeof model.unk_token !== 'string' || !this.vocab.has(model.unk_token)) bad(`model.unk_token ${JSON.stringify(model.unk_token)} is not in the vocabulary`);
      this.unkId = this.vocab.get(model.unk_token as string);
    }
    this.byteIds = null;
    if (model.byte_fallback === true) {
      const ids = Int32Array.from({ length: 256 }, (_, b) => this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1);
      this.byteIds = ids.every((id) => id >= 0) ? ids : null;
    }
  }

  /** Encode one piece, appending its ids. */
  encode(piece: string, out: IdBuffer): void {
    if (piece.length === 0) return;
    const cached = this.cache.get(piece);
    if (cached !== undefined) {
      out.pushAll(cached);
      return;
    }
    const ids = this.encodeUncached(piece);
    if (piece.length < CACHE_PIECE_LENGTH) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(piece, ids);
    }
    out.pushAll(ids);
  }

  private encodeUncached(piece: string): Int32Array {
    if (this.ignoreMerges) {
      // Llama 3: a piece that is a token is that token, whatever the merges would make of it.
      const whole = this.vocab.get(piece);
      if (whole !== undefined) return Int32Array.of(whole);
    }
    if (this.scratch.length < piece.length) this.scratch = new Int32Array(piece.length * 2);
    const ids = this.scratch;
    let n = 0;
    for (let i = 0; i < piece.length; ) {
      const cp = piece.codePointAt(i)!;
      const ch = cp > 0xffff ? piece.slice(i, i + 2) : piece[i]!;
      i += ch.length;
      ids[n++] = this.vocab.get(ch) ?? outside(cp);
    }
    n = mergeIds(ids, n, this.table);
    let unknowns = 0;
    for (let i = 0; i < n; i++) if (ids[i]! < 0) unknowns++;
    if (unknowns === 0) return ids.slice(0, n);
    return this.replaceUnknowns(ids.subarray(0, n));
  }

  /** Characters outside the vocabulary: their bytes as `<0xNN>` tokens, else unk (fused if asked), else dropped. */
  private replaceUnknowns(ids: Int32Array): Int32Array {
    const out: number[] = [];
    const utf8 = new TextEncoder();
    for (const id of ids) {
      if (id >= 0) out.push(id);
      else if (this.byteIds) for (const b of utf8.encode(String.fromCodePoint(insideOf(id)))) out.push(this.byteIds[b]!);
      else if (this.unkId !== undefined && !(this.fuseUnk && out[out.length - 1] === this.unkId)) out.push(this.unkId);
    }
    return Int32Array.from(out);
  }
}

/** A character outside the vocabulary, as a negative unit that never merges (−1 and −2 are taken). */
const outside = (cp: number): number => -16 - cp;
const insideOf = (unit: number): number => -16 - unit;
