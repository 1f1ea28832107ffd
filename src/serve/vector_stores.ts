import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Histogram } from 'prom-client';
import { UserError } from '../util/errors.js';
import { indexDocuments } from '../rag/indexer.js';
import { LanceDBStore, STORE_META } from '../rag/lancedb_store.js';
import { openForIndexing } from '../rag/open_store.js';
import { Retriever, SEARCH_MODES, type Retrieved, type SearchMode } from '../rag/retriever.js';
import { TextEmbedder } from '../rag/text_embedder.js';
import { ApiError, invalidParam } from './errors.js';
import type { ServeMetrics } from './metrics.js';
import type { ServedEmbedder } from './served_model.js';

/**
 * The vector stores `attn serve` offers: stores indexed beforehand with
 * `attn rag index` (`--vector-store NAME=DIR`, id = NAME), and stores created
 * through the API under `--vector-store-root DIR` (id = vs_…, one
 * subdirectory each). Each is a LanceDB directory, so several replicas can
 * serve the same stores while one process indexes them.
 */

export interface VectorStoreOptions {
  /** `NAME=DIR` specs of existing stores. */
  stores?: readonly string[];
  /** Where stores created with POST /v1/vector_stores live. */
  root?: string;
}

export interface OpenStore {
  id: string;
  name: string;
  dir: string;
  retriever: Retriever;
  /** The served embedder's name when the store's embedder is served, else the embedder directory (for accounting). */
  embedderName: string;
  createdAt: number;
}

const ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Retrieval timings in /metrics, registered once per server registry. */
const histograms = new WeakMap<object, Histogram<'store' | 'mode'>>();
export function retrievalHistogram(m: ServeMetrics): Histogram<'store' | 'mode'> {
  let h = histograms.get(m.registry);
  if (!h) {
    h = new Histogram({ name: 'attn_retrieval_seconds', help: 'Time to retrieve passages from a vector store (query embedding included), by store and search mode', labelNames: ['store', 'mode'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [m.registry] });
    histograms.set(m.registry, h);
  }
  return h;
}

export class VectorStores {
  private readonly open = new Map<string, OpenStore>();
  private readonly embedderCache = new Map<string, TextEmbedder>();

  private constructor(
    private readonly root: string | undefined,
    private readonly embedders: ReadonlyMap<string, ServedEmbedder>,
    private readonly embedderDirs: ReadonlyMap<string, string>,
  ) {}

  /** Open every named store and every store under the root; a bad one is a UserError at start-up. */
  static async create(o: VectorStoreOptions, embedders: ReadonlyMap<string, ServedEmbedder>, embedderDirs: ReadonlyMap<string, string>): Promise<VectorStores> {
    const vs = new VectorStores(o.root, embedders, embedderDirs);
    for (const spec of o.stores ?? []) {
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new UserError(`--vector-store ${spec}: expected NAME=DIR`);
      const name = spec.slice(0, eq);
      if (!ID.test(name)) throw new UserError(`--vector-store ${spec}: the name may only use letters, digits and _.:-`);
      if (vs.open.has(name)) throw new UserError(`--vector-store: two stores are named "${name}"`);
      await vs.add(name, name, spec.slice(eq + 1));
    }
    if (o.root) {
      mkdirSync(o.root, { recursive: true });
      for (const e of readdirSync(o.root, { withFileTypes: true })) {
        if (e.isDirectory() && existsSync(join(o.root, e.name, STORE_META)) && !vs.open.has(e.name)) await vs.add(e.name, e.name, join(o.root, e.name));
      }
    }
    return vs;
  }

  /** A served embedder (its weights where the server keeps them: the fingerprint read from there), or one loaded for the store on the server's backend. */
  private async embedderFor(dir: string): Promise<{ embedder: TextEmbedder; name: string }> {
    const abs = resolve(dir);
    for (const [name, d] of this.embedderDirs) {
      const served = this.embedders.get(name);
      if (served && resolve(d) === abs) return { embedder: await new TextEmbedder(served.model, served.tokenizer, d).withFingerprint(), name };
    }
    let e = this.embedderCache.get(abs);
    if (!e) this.embedderCache.set(abs, (e = TextEmbedder.loadOnBackend(abs)));
    return { embedder: e, name: abs };
  }

  private async add(id: string, name: string, dir: string): Promise<OpenStore> {
    const store = await LanceDBStore.open(dir);
    const { embedder, name: embedderName } = await this.embedderFor(store.info.embedder);
    embedder.checkStore(store.info, dir);
    const s: OpenStore = { id, name, dir, retriever: new Retriever(store, embedder), embedderName, createdAt: Math.floor(Date.now() / 1000) };
    this.open.set(id, s);
    return s;
  }

  list(): OpenStore[] {
    return [...this.open.values()];
  }

  /** The store with this id, or a 404 as OpenAI answers it. */
  get(id: string): OpenStore {
    const s = this.open.get(id);
    if (!s) throw new ApiError(404, `No vector store found with id '${id}' (GET /v1/vector_stores lists them)`, 'invalid_request_error', null, 'not_found');
    return s;
  }

  /** POST /v1/vector_stores: a new empty store under the root, indexed by a served embedder. */
  async createStore(name: string, embedderName: string | undefined): Promise<OpenStore> {
    if (!this.root) throw new ApiError(400, 'This server cannot create vector stores: start attn serve with --vector-store-root DIR', 'invalid_request_error', null, 'not_configured');
    const chosen = embedderName ?? this.embedders.keys().next().value;
    if (chosen === undefined) throw invalidParam('attn_embedder', 'No sentence embedder is served: start attn serve with --model NAME=DIR of one (attn embed train)');
    const dir = this.embedderDirs.get(chosen);
    const served = this.embedders.get(chosen);
    if (!served || !dir) throw invalidParam('attn_embedder', `Invalid 'attn_embedder': ${chosen} is not a served sentence embedder (served: ${[...this.embedders.keys()].join(', ') || 'none'})`);
    const id = `vs_${randomBytes(12).toString('hex')}`;
    const storeDir = join(this.root, id);
    const store = await openForIndexing(storeDir, await new TextEmbedder(served.model, served.tokenizer, dir).withFingerprint());
    store.close();
    return this.add(id, name, storeDir);
  }

  /** POST /v1/vector_stores/{id}/files: index one text (replacing a file of the same name). */
  async addFile(s: OpenStore, filename: string, content: string): Promise<{ chunks: number; unchanged: boolean }> {
    const { embedder, store } = s.retriever;
    const maxTokens = Math.min(256, embedder.maxLen);
    const report = await indexDocuments(store, embedder, [() => ({ source: filename, text: content })], { chunk: { maxTokens, overlapTokens: Math.floor(maxTokens / 8) } });
    return { chunks: report.chunks, unchanged: report.unchanged > 0 };
  }

  /** A timed search, observed in /metrics. */
  async search(s: OpenStore, query: string, mode: SearchMode, k: number, metrics: ServeMetrics): Promise<{ results: Retrieved[]; queryTokens: number; ms: number }> {
    if (query.trim() === '') throw invalidParam('query', "Invalid 'query': it is empty");
    let out;
    try {
      out = await s.retriever.search(query, { mode, k });
    } catch (e) {
      if (e instanceof UserError) throw invalidParam('query', `Invalid 'query': ${e.message}`);
      throw e;
    }
    retrievalHistogram(metrics).observe({ store: s.id, mode }, out.timing.totalMs / 1000);
    return { results: out.results, queryTokens: mode === 'bm25' ? 0 : s.retriever.embedder.countTokens(query), ms: out.timing.totalMs };
  }

  close(): void {
    for (const s of this.open.values()) s.retriever.store.close();
    this.open.clear();
  }
}

export const isSearchMode = (m: unknown): m is SearchMode => typeof m === 'string' && (SEARCH_MODES as readonly string[]).includes(m);
