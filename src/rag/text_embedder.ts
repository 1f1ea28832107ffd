import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { loadEmbedder } from '../io/embedder_dir.js';
import { normalizedPrefix, pooledEmbeddings, pooledEmbeddingsAsync } from '../models/embed_texts.js';
import { moveToBackend } from '../nn/placement.js';
import type { Embedder } from '../models/embedder.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UNK } from '../tokenizers/word.js';
import { UserError } from '../util/errors.js';
import type { StoreInfo } from './store.js';

/**
 * An attn embedder as retrieval uses it: unit-length full vectors for
 * chunks and queries, and its tokenizer's count for chunking.
 */
export class TextEmbedder {
  constructor(
    readonly model: Embedder,
    readonly tokenizer: Tokenizer,
    /** The directory it was loaded from, recorded in the store. */
    readonly dir: string,
  ) {}

  static load(dir: string): TextEmbedder {
    const { model, tokenizer } = loadEmbedder(dir);
    return new TextEmbedder(model, tokenizer, dir);
  }

  /**
   * load on the current backend: the fingerprint taken from the weights as
   * read from disk, then the weights uploaded once to a device backend
   * (nothing on a host).
   */
  static loadOnBackend(dir: string): TextEmbedder {
    const e = TextEmbedder.load(dir);
    e.fingerprint();
    moveToBackend(e.model);
    return e;
  }

  get dim(): number {
    return this.model.config.d_model;
  }

  get maxLen(): number {
    return this.model.config.max_len;
  }

  /**
   * The prefix the first dense stage searches: the smallest trained
   * Matryoshka prefix of at least a quarter of the vector (small enough to be
   * fast, large enough to find the candidates), or the full vector when the
   * model was trained without prefixes.
   */
  get prefixDim(): number {
    const dims = [...this.model.config.matryoshka_dims].sort((a, b) => a - b);
    return dims.find((d) => d >= this.dim / 4) ?? this.dim;
  }

  private print?: string;

  /**
   * What identifies the model's vectors: a hash of its configuration and
   * weights. A file indexed by another model (even one of the same shape,
   * retrained) is not "unchanged".
   */
  fingerprint(): string {
    return (this.print ??= this.hash(this.model.namedParameters().map(([, p]) => p.data)));
  }

  /** Take the fingerprint now, from the weights wherever they are (read back from a device): fingerprint() then answers on any backend. */
  async withFingerprint(): Promise<this> {
    this.print ??= this.hash(await Promise.all(this.model.namedParameters().map(([, p]) => p.read())));
    return this;
  }

  private hash(values: readonly Float32Array[]): string {
    const h = createHash('sha256');
    h.update(JSON.stringify(this.model.config));
    this.model.namedParameters().forEach(([name], i) => {
      const v = values[i]!;
      h.update(name);
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    });
    return h.digest('hex').slice(0, 16);
  }

  /**
   * Token ids as the model reads them here: the tokenizer's, less its
   * unknown-word token when the text has any other. A tokenizer learned from
   * the training text knows every word of it, so `<unk>` never occurred in
   * training and its embedding is still the random one it started with;
   * mean-pooled into a question full of words the documents never use
   * ("waterway", "governs"), that noise outweighs the one name the question
   * is about, and every such question lands near the same few chunks.
   * Leaving it out keeps the words the model learned.
   */
  encode(text: string): Int32Array {
    const ids = this.tokenizer.encode(text);
    const unk = this.tokenizer.specialTokens.get(UNK);
    if (unk === undefined) return ids;
    const known = ids.filter((id) => id !== unk);
    return known.length > 0 ? known : ids;
  }

  /**
   * The token ids a text is embedded from (a chunk's or a question's, alike, so
   * a chunk's own text finds it): `encode`'s, and then the whitespace the left-out
   * words leave behind collapsed, as if they had never been in the text. A
   * word tokenizer keeps each run of spaces as a token, so "Which waterway
   * runs past Velmora?" would be four spaces and one name; mean-pooled, the
   * spaces (the commonest token of every chunk) outweigh the name, and on the
   * demo's questions dense nDCG@10 was 0.07 lower with them.
   */
  encodeKnownWords(text: string): Int32Array {
    const ids = this.encode(text);
    const unk = this.tokenizer.specialTokens.get(UNK);
    if (unk === undefined || ids.length === this.tokenizer.encode(text).length) return ids;
    const blank = (id: number) => this.tokenizer.decode([id]).trim() === '';
    const out = [...ids].filter((id, i, a) => !(blank(id) && (i === 0 || blank(a[i - 1]!))));
    while (out.length > 1 && blank(out[out.length - 1]!)) out.pop();
    // Only spaces known: the text is embedded as it is, as `encode` does for a text of unknown words.
    return out.length > 0 ? Int32Array.from(out) : this.tokenizer.encode(text);
  }

  countTokens(text: string): number {
    return this.tokenizer.encode(text).length;
  }

  /**
   * Unit-length full vectors, one per text, in order. The model runs on
   * batches of texts padded to the longest in the batch, so texts go in
   * sorted by length: similar lengths batch together and little is padding.
   */
  embed(texts: readonly string[]): Float32Array[] {
    const order = byLength(texts);
    return this.unitVectors(order, pooledEmbeddings(this.model, this.tokenizer, order.map((i) => texts[i]!), this.encoder));
  }

  /** embed on any backend: on a device each batch's pass runs there and only its vectors are read back. */
  async embedAsync(texts: readonly string[]): Promise<Float32Array[]> {
    const order = byLength(texts);
    return this.unitVectors(order, await pooledEmbeddingsAsync(this.model, this.tokenizer, order.map((i) => texts[i]!), this.encoder));
  }

  embedQuery(query: string): Float32Array {
    return this.embed([this.checkedQuery(query)])[0]!;
  }

  /** embedQuery on any backend. */
  async embedQueryAsync(query: string): Promise<Float32Array> {
    return (await this.embedAsync([this.checkedQuery(query)]))[0]!;
  }

  private readonly encoder = (t: string): Int32Array => this.encodeKnownWords(t);

  /** The pooled vectors of the texts in `order`, unit length, back in the texts' order. */
  private unitVectors(order: readonly number[], pooled: Float32Array): Float32Array[] {
    const out = new Array<Float32Array>(order.length);
    order.forEach((i, j) => (out[i] = normalizedPrefix(pooled, j, this.dim, this.dim)));
    return out;
  }

  private checkedQuery(query: string): string {
    if (query.trim() === '') throw new UserError('the query is empty: give the question to search for');
    if (this.tokenizer.encode(query).length === 0) throw new UserError(`the query "${query}" has no tokens this embedder knows`);
    return query;
  }

  /** Refuse a store whose vectors another kind of embedder made. */
  checkStore(info: StoreInfo, store: string): void {
    if (info.dim !== this.dim) {
      throw new UserError(`embedder ${this.dir} gives ${this.dim}-dimensional vectors but store ${store} holds ${info.dim}-dimensional ones (it was indexed with ${info.embedder}); use that embedder or a new store`);
    }
    // The model itself, where the store recorded it: vectors of another model (or of this one retrained) are not comparable.
    if (info.embedderFingerprint !== undefined && info.embedderFingerprint !== this.fingerprint()) {
      if (resolve(this.dir) === resolve(info.embedder)) {
        throw new UserError(`embedder ${this.dir} has changed since store ${store} was indexed with it (its weights' fingerprint is ${this.fingerprint()}, the store recorded ${info.embedderFingerprint}: retrained or replaced in place?); re-index into a new store, or restore the embedder it was made with`);
      }
      throw new UserError(`embedder ${this.dir} is not the one store ${store} was indexed with (${info.embedder}); use that embedder or a new store`);
    }
  }
}

/** The texts' indices, shortest text first: batches of similar lengths pad little. */
function byLength(texts: readonly string[]): number[] {
  return texts.map((_, i) => i).sort((a, b) => texts[a]!.length - texts[b]!.length);
}
