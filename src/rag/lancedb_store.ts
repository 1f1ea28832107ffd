import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type * as LanceDB from '@lancedb/lancedb';
import type { Schema } from 'apache-arrow';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import type { Chunk, Hit, IndexedFile, RetrievalStore, StoreInfo, StoredChunk } from './store.js';
import { VectorMatrix } from './vector_matrix.js';

/**
 * The default store: LanceDB, an embedded columnar database in one
 * directory. One table, `chunks`, holds each chunk's text, place, file hash,
 * the Matryoshka prefix of its vector (the column the first dense stage
 * searches) and the full vector (the rerank's). Every write is a new table
 * version, so several `attn serve` replicas can read the same directory
 * while one indexer writes it. attn's own description of the store — its
 * dimensions and its embedder — sits beside it in attn-store.json.
 */

export const STORE_META = 'attn-store.json';
const FORMAT = 'attn-rag-store';

/**
 * LanceDB is loaded when a store is first opened, not when this module is:
 * its native library is 155 MB, and every `attn` command (and `import`
 * of the library) would otherwise load it, retrieval or not.
 */
let loaded: Promise<typeof LanceDB> | undefined;
const lanceDB = (): Promise<typeof LanceDB> => {
  lanceCpuThreads();
  return (loaded ??= import('@lancedb/lancedb'));
};

/**
 * LanceDB 0.31's full-text index builder can deadlock when its CPU pool has
 * only as many threads as the machine has cores and those are few: on a
 * 2-core machine, building the BM25 index of a 100 000-chunk store (18 MB of
 * text) parked every thread at 0 % CPU, three times out of three, while with 4
 * pool threads it took 2.8 s. The pool reads LANCE_CPU_THREADS once, when it
 * starts, so it is set here before the library loads (at least 4), unless
 * the user set it.
 */
export function lanceCpuThreads(): string {
  process.env.LANCE_CPU_THREADS ||= String(Math.max(4, availableParallelism()));
  return process.env.LANCE_CPU_THREADS;
}
const TABLE = 'chunks';

interface MetaFile extends StoreInfo {
  format: string;
  version: number;
}

/** The table's columns; Arrow, like LanceDB, is loaded only when a store is created (0.2 s of every command's start otherwise). */
async function schemaOf(info: StoreInfo): Promise<Schema> {
  const { Field, FixedSizeList, Float32, Int32, Schema, Utf8 } = await import('apache-arrow');
  const vectorType = (n: number) => new FixedSizeList(n, new Field('item', new Float32(), true));
  return new Schema([
    new Field('id', new Utf8(), false),
    new Field('source', new Utf8(), false),
    new Field('file_hash', new Utf8(), false),
    new Field('ordinal', new Int32(), false),
    new Field('start', new Int32(), false),
    new Field('end', new Int32(), false),
    new Field('tokens', new Int32(), false),
    new Field('text', new Utf8(), false),
    new Field('prefix', vectorType(info.prefixDim), false),
    new Field('vector', vectorType(info.dim), false),
  ]);
}

/** SQL string literal for LanceDB's filters: single quotes doubled. */
const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** The first `n` components of a unit vector, scaled back to unit length. */
export function unitPrefix(v: Float32Array, n: number): Float32Array {
  const p = v.slice(0, n);
  let sq = 0;
  for (const x of p) sq += x * x;
  const norm = Math.max(Math.sqrt(sq), 1e-12);
  for (let i = 0; i < n; i++) p[i] = p[i]! / norm;
  return p;
}

/** IVF partitions an ANN query visits (LanceDB's default is 20); more: better recall, slower. */
export const ANN_PROBES = 20;
/** HNSW's search breadth (candidates kept while walking the graph) and how many times k candidates are re-scored with the unquantised vectors. */
/** (ef is raised to k × the refine factor when more are asked for: HNSW needs ef ≥ the candidates it returns.) */
export const ANN_EF = 64;
export const ANN_REFINE = 4;
/** The prefix column's HNSW-SQ index, cosine distance. */
const ANN_INDEX = 'prefix_hnsw_cosine';

const CHUNK_COLUMNS = ['id', 'source', 'ordinal', 'start', 'end', 'tokens', 'text'];

function chunkOf(row: Record<string, unknown>): Chunk {
  return {
    id: row.id as string,
    source: row.source as string,
    ordinal: row.ordinal as number,
    start: row.start as number,
    end: row.end as number,
    tokens: row.tokens as number,
    text: row.text as string,
  };
}

const floats = (v: unknown): Float32Array => (v as { toArray(): Float32Array }).toArray();

/** The description of the store in `dir` (its dimensions and embedder), or undefined when there is none yet. */
export function storeInfo(dir: string): StoreInfo | undefined {
  if (!existsSync(join(dir, STORE_META))) return undefined;
  return infoOf(readMeta(dir));
}

function infoOf(meta: MetaFile): StoreInfo {
  const { dim, prefixDim, embedder, embedderFingerprint } = meta;
  return { dim, prefixDim, embedder, ...(typeof embedderFingerprint === 'string' ? { embedderFingerprint } : {}) };
}

function readMeta(dir: string): MetaFile {
  const path = join(dir, STORE_META);
  let meta: MetaFile;
  try {
    meta = JSON.parse(readFileSync(path, 'utf8')) as MetaFile;
  } catch (e) {
    throw new UserError(`store ${dir} cannot be opened: ${path} is ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `unreadable (${(e as Error).message})`}`);
  }
  if (meta.format !== FORMAT || !Number.isInteger(meta.dim) || !Number.isInteger(meta.prefixDim)) throw new UserError(`store ${dir} cannot be opened: ${path} is not an attn store description`);
  return meta;
}

export class LanceDBStore implements RetrievalStore {
  private constructor(
    readonly dir: string,
    readonly info: StoreInfo,
    private readonly db: LanceDB.Connection,
    private readonly table: LanceDB.Table,
  ) {}

  /** Open an existing store; every way it can be missing or broken is one UserError naming it. */
  static async open(dir: string): Promise<LanceDBStore> {
    if (!existsSync(dir)) throw new UserError(`store ${dir} does not exist: create it with \`attn rag index --store ${dir} --embedder DIR FILES…\``);
    if (!statSync(dir).isDirectory()) throw new UserError(`store ${dir} cannot be opened: it is not a directory`);
    const meta = readMeta(dir);
    try {
      const db = await (await lanceDB()).connect(dir);
      const table = await db.openTable(TABLE);
      return new LanceDBStore(dir, infoOf(meta), db, table);
    } catch (e) {
      throw new UserError(`store ${dir} cannot be opened: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  /** Open `dir`, or create an empty store there with `info` (the directory must be new or empty). */
  static async openOrCreate(dir: string, info: StoreInfo): Promise<LanceDBStore> {
    if (existsSync(join(dir, STORE_META))) return LanceDBStore.open(dir);
    if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
      throw new UserError(`store ${dir} exists and is not an attn store (no ${STORE_META}); choose another path`);
    }
    mkdirSync(dir, { recursive: true });
    const db = await (await lanceDB()).connect(dir);
    const table = await db.createEmptyTable(TABLE, await schemaOf(info), { mode: 'overwrite' });
    // The description is written last: a store without it was never finished, and is refused above.
    const meta: MetaFile = { format: FORMAT, version: 1, ...info };
    writeFileAtomic(join(dir, STORE_META), JSON.stringify(meta, null, 2) + '\n');
    return new LanceDBStore(dir, info, db, table);
  }

  async fileHash(source: string): Promise<string | undefined> {
    const rows = await this.table.query().where(`source = ${sqlString(source)}`).select(['file_hash']).limit(1).toArray();
    return rows[0]?.file_hash as string | undefined;
  }

  async replaceFiles(files: ReadonlyArray<{ source: string; chunks: readonly StoredChunk[] }>): Promise<void> {
    if (files.length === 0) return;
    const where = `source IN (${files.map((f) => sqlString(f.source)).join(', ')})`;
    const rows = files.flatMap(({ source, chunks }) =>
      chunks.map((c) => {
        if (c.source !== source) throw new Error(`chunk ${c.id} belongs to ${c.source}, not ${source}`);
        if (c.vector.length !== this.info.dim) throw new UserError(`chunk ${c.id} has a ${c.vector.length}-dimensional vector but store ${this.dir} holds ${this.info.dim}-dimensional ones`);
        return {
          id: c.id, source: c.source, file_hash: c.fileHash, ordinal: c.ordinal, start: c.start, end: c.end, tokens: c.tokens, text: c.text,
          prefix: unitPrefix(c.vector, this.info.prefixDim), vector: c.vector,
        };
      }),
    );
    if (rows.length === 0) {
      await this.table.delete(where);
      return;
    }
    // One merge-insert is one commit (one new table version): the files' new
    // chunks are inserted or updated, and their old chunks that are not among
    // them deleted, together. A delete followed by an add would be two
    // versions, and a reader (or a crash) between them would see the file gone.
    await this.table.mergeInsert('id').whenMatchedUpdateAll().whenNotMatchedInsertAll().whenNotMatchedBySourceDelete({ where }).execute(rows);
  }

  async files(): Promise<IndexedFile[]> {
    const rows = await this.table.query().select(['source', 'file_hash']).toArray();
    const bySource = new Map<string, IndexedFile>();
    for (const r of rows) {
      const f = bySource.get(r.source as string);
      if (f) f.chunks++;
      else bySource.set(r.source as string, { source: r.source as string, fileHash: r.file_hash as string, chunks: 1 });
    }
    return [...bySource.values()].sort((a, b) => a.source.localeCompare(b.source));
  }

  count(): Promise<number> {
    return this.table.countRows();
  }

  /**
   * LanceDB returns chunks whose BM25 scores tie (the same words in chunks of
   * one length) in no fixed order: one build of a store ranked three tied
   * chunks 4, 5, 6 and another 6, 4, 5, which moved a hybrid score (the
   * rank is what RRF uses). Ties are ordered by chunk id, and the search
   * reaches past k until the tie at the k-th place is whole, so the same
   * store and query give the same list every time.
   */
  async keywordSearch(query: string, k: number): Promise<Hit[]> {
    for (let limit = k + 8; ; limit *= 2) {
      const rows = await this.table.search(query, 'fts', 'text').select([...CHUNK_COLUMNS, '_score']).limit(limit).toArray();
      const hits = rows.map((r) => ({ chunk: chunkOf(r), score: r._score as number })).sort((a, b) => b.score - a.score || (a.chunk.id < b.chunk.id ? -1 : a.chunk.id > b.chunk.id ? 1 : 0));
      if (rows.length < limit || hits[limit - 1]!.score !== hits[k - 1]!.score) return hits.slice(0, k);
    }
  }

  async prefixSearch(prefix: Float32Array, k: number): Promise<Hit[]> {
    if (prefix.length !== this.info.prefixDim) throw new Error(`prefix of ${prefix.length} components, store's prefix column has ${this.info.prefixDim}`);
    return this.vectorSearch('prefix', prefix, k, false);
  }

  async fullSearch(vector: Float32Array, k: number): Promise<Hit[]> {
    if (vector.length !== this.info.dim) throw new UserError(`a ${vector.length}-dimensional query vector for a store of ${this.info.dim}-dimensional vectors`);
    return this.vectorSearch('vector', vector, k, true);
  }

  /**
   * Every stored vector and every query is unit length, so cosine similarity
   * is the dot product and ranks exactly as it does. LanceDB's cosine
   * distance (1 − cosine) is asked for rather than its "dot" distance: the
   * HNSW-SQ index built with "dot" returns unrelated neighbours (distances
   * such as −6.7 on unit vectors: its scalar-quantised dot scores are not
   * comparable), while with cosine it finds the exact top 10 (see the ANN
   * test in test/rag_store.test.ts).
   */
  private async vectorSearch(column: string, q: Float32Array, k: number, exact: boolean): Promise<Hit[]> {
    let search = this.table.vectorSearch(q).column(column).distanceType('cosine').limit(k).select([...CHUNK_COLUMNS, 'vector', '_distance']);
    if (exact) search = search.bypassVectorIndex();
    else search = search.nprobes(ANN_PROBES).ef(Math.max(ANN_EF, k * ANN_REFINE)).refineFactor(ANN_REFINE);
    const rows = await search.toArray();
    return rows.map((r) => ({ chunk: chunkOf(r), score: 1 - (r._distance as number), vector: floats(r.vector) }));
  }

  async optimize(opts: { ann?: boolean } = {}): Promise<void> {
    const lancedb = await lanceDB();
    await this.table.createIndex('text', { config: lancedb.Index.fts(), replace: true });
    const rows = await this.table.countRows();
    // An ANN index needs enough rows to train its partitions; below that, exact search is fast anyway.
    // An existing ANN index is kept: optimize() below adds the new rows to it (rebuilding takes minutes at 100 000 rows).
    // The index's name records its distance: a store indexed before the cosine fix has a "dot" index under
    // LanceDB's default name, which is rebuilt rather than kept.
    const prefixIndices = (await this.table.listIndices()).filter((i) => i.columns.includes('prefix'));
    for (const i of prefixIndices) if (i.name !== ANN_INDEX) await this.table.dropIndex(i.name);
    const hasAnn = prefixIndices.some((i) => i.name === ANN_INDEX);
    if (opts.ann && rows >= 4096 && !hasAnn) {
      await this.table.createIndex('prefix', { config: lancedb.Index.hnswSq({ distanceType: 'cosine' }), replace: true, name: ANN_INDEX });
    }
    // Compacts the small fragments each commit adds; old versions stay for LanceDB's default week, so a reader mid-query keeps its files.
    await this.table.optimize();
  }

  /** Names of the table's indices (the tests check which ANN index a store has). */
  async listIndexNames(): Promise<string[]> {
    return (await this.table.listIndices()).map((i) => i.name);
  }

  /** The table's version: one more after each commit (tests use it to see that a replace is one commit). */
  version(): Promise<number> {
    return this.table.version();
  }

  /**
   * The vector columns read as Arrow batches, whose fixed-size lists are one
   * flat Float32Array each: copied straight into the matrices, with no
   * JavaScript object per row.
   */
  async loadVectors(): Promise<VectorMatrix> {
    const { prefixDim, dim } = this.info;
    const arrow = await this.table.query().select(['id', 'prefix', 'vector']).withRowId().toArrow();
    const n = arrow.numRows;
    const prefix = new Float32Array(n * prefixDim);
    const full = new Float32Array(n * dim);
    const ids: string[] = [];
    const rowIds: bigint[] = [];
    let at = 0;
    for (const batch of arrow.batches) {
      const rows = batch.numRows;
      const flat = (name: string, width: number): Float32Array => {
        const data = batch.getChild(name)!.data[0]!;
        const values = data.children[0]!.values as Float32Array;
        return values.subarray(data.offset * width, (data.offset + rows) * width);
      };
      prefix.set(flat('prefix', prefixDim), at * prefixDim);
      full.set(flat('vector', dim), at * dim);
      const id = batch.getChild('id')!;
      const rowId = batch.getChild('_rowid')!;
      for (let i = 0; i < rows; i++) {
        ids.push(id.get(i) as string);
        rowIds.push(rowId.get(i) as bigint);
      }
      at += rows;
    }
    return new VectorMatrix(ids, rowIds, prefixDim, dim, prefix, full);
  }

  async chunksAt(rowIds: readonly bigint[]): Promise<Chunk[]> {
    if (rowIds.length === 0) return [];
    const rows = await this.table.takeRowIds(rowIds).select(CHUNK_COLUMNS).withRowId().toArray();
    const byRow = new Map(rows.map((r) => [r._rowid as bigint, chunkOf(r)]));
    return rowIds.map((id) => {
      const c = byRow.get(id);
      if (!c) throw new Error(`row ${id} is not in store ${this.dir} (it changed since its vectors were loaded)`);
      return c;
    });
  }

  close(): void {
    this.table.close();
    this.db.close();
  }
}
