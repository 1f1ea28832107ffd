import type { Backend } from '../backend/backend.js';
import { gemmArgs, mat, matT } from '../backend/gemm_args.js';
import { backend } from '../backend/index.js';
import { packRowPanels, quantizeRowPanels, type RowPanels } from '../backend/row_panels.js';

/**
 * Every chunk's vectors in two dense row-major matrices in memory — the
 * Matryoshka prefixes [n × prefixDim] and the full vectors [n × dim] — so
 * the two-stage dense search is two matrix–vector products on the backend
 * (rowScores) and a partial selection, rather than two database scans. A prefix scan touches prefixDim/dim of the numbers a full scan
 * does (a quarter, by default), and reads them from one contiguous array:
 * over 100 000 chunks it is a few milliseconds, where a database query
 * costs tens (it decodes columns and builds result rows). The rerank then
 * reads only the candidates' full rows.
 *
 * On a backend with the fused nearest-rows kernel (topRows: native) both
 * scans instead read row panels (backend/row_panels.ts) built at the first
 * search — the full vectors in fp32, the prefixes in int8 (a quarter of the
 * bytes; `prefix: 'fp32'` for the fp32 copy) — and keep their best rows while
 * they scan, with no score array of n written and read again; the rerank
 * scores the candidates' full fp32 rows (topRowsOf). docs/rag.md, "Two-stage,
 * again", says why.
 *
 * Rows are named by the store's row ids (to fetch the chunks' text) and by
 * chunk ids (what fusion matches on). The matrix is a snapshot of one
 * store version; the retriever reloads it when the store moves on.
 */

export interface ScoredRow {
  row: number;
  score: number;
}

/** What the prefix scan reads: int8 panels (the default where the backend scans panels) or fp32. */
export type PrefixPrecision = 'int8' | 'fp32';

export class VectorMatrix {
  readonly n: number;

  constructor(
    readonly ids: readonly string[],
    /** The store's handle for each row (LanceDB row ids), to fetch the chunk. */
    readonly rowIds: readonly bigint[],
    readonly prefixDim: number,
    readonly dim: number,
    /** Unit-length prefixes, row-major. */
    readonly prefix: Float32Array,
    /** Unit-length full vectors, row-major. */
    readonly full: Float32Array,
  ) {
    this.n = ids.length;
    if (rowIds.length !== this.n || prefix.length !== this.n * prefixDim || full.length !== this.n * dim) {
      throw new Error(`vector matrix of ${this.n} rows has ${rowIds.length} row ids, ${prefix.length / prefixDim} prefixes and ${full.length / dim} full vectors`);
    }
  }

  private scores?: Float32Array;
  /** One score per row, reused by every scan (searches run one at a time: the scan is synchronous). */
  private scratch(): Float32Array {
    return (this.scores ??= new Float32Array(this.n));
  }

  /**
   * Bytes the matrices take: what decides whether a store is searched in
   * memory (the row-major prefixes and full vectors, their fp32 panels and the
   * int8 prefix panels with a scale a row).
   */
  static bytesFor(rows: number, prefixDim: number, dim: number): number {
    return rows * (prefixDim + dim) * 8 + rows * (prefixDim + 4);
  }

  private panels: { prefix8?: RowPanels; prefix32?: RowPanels; full?: RowPanels } = {};
  private outRows = new Int32Array(0);
  private outScores = new Float32Array(0);

  /** The `which` panels, built at first use. */
  private panelsOf(which: 'prefix8' | 'prefix32' | 'full'): RowPanels {
    return (this.panels[which] ??=
      which === 'full' ? packRowPanels(this.full, this.n, this.dim) : which === 'prefix8' ? quantizeRowPanels(this.prefix, this.n, this.prefixDim) : packRowPanels(this.prefix, this.n, this.prefixDim));
  }

  /** The best k by the fused kernel over `which` panels (built at first use), or null when the backend has none. */
  private fused(which: 'prefix8' | 'prefix32' | 'full', q: Float32Array, k: number): ScoredRow[] | null {
    const be = backend() as Backend<Float32Array>;
    if (!be.topRows) return null;
    const p = this.panelsOf(which);
    if (q.length !== p.width) throw new Error(`query of ${q.length} components for rows of ${p.width}`);
    const count = be.topRows(q, p, k, this.room(k), this.outScores);
    return this.results(count);
  }

  private room(k: number): Int32Array {
    if (this.outRows.length < k) {
      this.outRows = new Int32Array(k);
      this.outScores = new Float32Array(k);
    }
    return this.outRows;
  }

  private results(count: number): ScoredRow[] {
    const out: ScoredRow[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = { row: this.outRows[i]!, score: this.outScores[i]! };
    return out;
  }

  /**
   * Stage 1: the `depth` rows whose prefix is nearest `q` (a unit prefix), best
   * first. Where the backend scans panels the prefixes are read as int8 unless
   * `prefix` is 'fp32' (their scores then approximate: the rerank rescores).
   */
  topByPrefix(q: Float32Array, depth: number, prefix: PrefixPrecision = 'int8'): ScoredRow[] {
    return this.fused(prefix === 'int8' ? 'prefix8' : 'prefix32', q, depth) ?? topK(this.prefix, this.prefixDim, this.n, q, depth, this.scratch());
  }

  /** Exact search by the full vectors: the baseline the two-stage search is measured against (the same fused kernel where there is one). */
  topByFull(q: Float32Array, k: number): ScoredRow[] {
    return this.fused('full', q, k) ?? topK(this.full, this.dim, this.n, q, k, this.scratch());
  }

  private candidateRows = new Int32Array(0);
  private candidateScores = new Float32Array(0);

  /**
   * The whole two-stage search: `depth` candidates by the prefix `qPrefix`,
   * the best k of them by the full q. Where the backend has the fused kernels
   * the candidates pass from one to the other as rows in a typed array (no
   * objects made for them); elsewhere rerank(q, topByPrefix(…), k).
   */
  twoStage(q: Float32Array, qPrefix: Float32Array, depth: number, k: number, prefix: PrefixPrecision = 'int8'): ScoredRow[] {
    const be = backend() as Backend<Float32Array>;
    if (!be.topRows || !be.topRowsOf || k <= 0) return this.rerank(q, this.topByPrefix(qPrefix, depth, prefix), k);
    const which = prefix === 'int8' ? 'prefix8' : 'prefix32';
    const p = this.panelsOf(which);
    if (qPrefix.length !== p.width) throw new Error(`query of ${qPrefix.length} components for rows of ${p.width}`);
    if (q.length !== this.dim) throw new Error(`query of ${q.length} components for rows of ${this.dim}`);
    if (this.candidateRows.length < depth) this.candidateRows = new Int32Array(depth);
    if (this.candidateScores.length < depth) this.candidateScores = new Float32Array(depth);
    const count = be.topRows(qPrefix, p, depth, this.candidateRows, this.candidateScores);
    return this.results(be.topRowsOf(q, this.full, this.dim, this.candidateRows, count, k, this.room(k), this.outScores));
  }

  /** Stage 2: the candidates scored again by the full vectors (cosine of unit vectors), the best k kept. */
  rerank(q: Float32Array, candidates: readonly ScoredRow[], k: number): ScoredRow[] {
    if (k <= 0) return [];
    const be = backend() as Backend<Float32Array>;
    if (be.topRowsOf) {
      if (q.length !== this.dim) throw new Error(`query of ${q.length} components for rows of ${this.dim}`);
      if (this.candidateRows.length < candidates.length) this.candidateRows = new Int32Array(candidates.length);
      for (let i = 0; i < candidates.length; i++) this.candidateRows[i] = candidates[i]!.row;
      const count = be.topRowsOf(q, this.full, this.dim, this.candidateRows, candidates.length, k, this.room(k), this.outScores);
      return this.results(count);
    }
    const d = this.dim;
    const full = this.full;
    // Only the k best are kept in order (insertion into a short sorted list): the candidates are few.
    const best: ScoredRow[] = [];
    for (const { row } of candidates) {
      let s = 0;
      for (let j = 0, o = row * d; j < d; j++, o++) s += q[j]! * full[o]!;
      if (best.length === k && (s < best[k - 1]!.score || (s === best[k - 1]!.score && row > best[k - 1]!.row))) continue;
      let i = best.length < k ? best.length : k - 1;
      if (best.length < k) best.push({ row, score: s });
      for (; i > 0 && (best[i - 1]!.score < s || (best[i - 1]!.score === s && best[i - 1]!.row > row)); i--) best[i] = best[i - 1]!;
      best[i] = { row, score: s };
    }
    return best;
  }
}

/**
 * Every row's dot product with q. On the native backend one matrix–vector
 * product (M = 1: SIMD, threads), so a scan of 100 000 rows runs at memory
 * speed; elsewhere a plain loop, its reference twin (the js backend's GEMM
 * is built for larger products and is several times slower at M = 1).
 * `out` (length ≥ n) is reused when given.
 */
export function rowScores(m: Float32Array, width: number, n: number, q: Float32Array, out: Float32Array = new Float32Array(n)): Float32Array {
  if (q.length !== width) throw new Error(`query of ${q.length} components for rows of ${width}`);
  const be = backend();
  if (be.name === 'native' && n > 0) {
    (be as Backend<Float32Array>).gemm(gemmArgs({ M: 1, N: n, K: width }, mat(out, n), mat(q, width), matT(m, width)));
    return out;
  }
  for (let r = 0, o = 0; r < n; r++, o += width) {
    let s = 0;
    for (let j = 0; j < width; j++) s += q[j]! * m[o + j]!;
    out[r] = s;
  }
  return out;
}

/** The k rows of `m` [n × width] with the largest dot product with q, best first. */
export function topK(m: Float32Array, width: number, n: number, q: Float32Array, k: number, scratch?: Float32Array): ScoredRow[] {
  return selectTop(rowScores(m, width, n, q, scratch), n, k);
}

/**
 * The k largest of scores[0..n), best first (ties: lower row first) — a
 * partial selection, not a sort: a min-heap of the best k so far, so most
 * rows cost one comparison with its root and the pass stays linear.
 */
export function selectTop(scores: Float32Array, n: number, k: number): ScoredRow[] {
  const size = Math.max(0, Math.min(k, n));
  const heapScore = new Float32Array(size);
  const heapRow = new Int32Array(size);
  let filled = 0;
  let r = 0;
  // Fill the heap with the first `size` rows (sift up).
  for (; r < n && filled < size; r++) {
    const s = scores[r]!;
    let i = filled++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heapScore[p]! <= s) break;
      heapScore[i] = heapScore[p]!;
      heapRow[i] = heapRow[p]!;
      i = p;
    }
    heapScore[i] = s;
    heapRow[i] = r;
  }
  if (size === 0) return [];
  // Then most rows cost one comparison with the worst kept, held in a local.
  let worst = heapScore[0]!;
  for (; r < n; r++) {
    const s = scores[r]!;
    if (s <= worst) continue;
    // Replace the root (the worst kept) and sift down.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const c = l + 1 < size && heapScore[l + 1]! < heapScore[l]! ? l + 1 : l;
      if (heapScore[c]! >= s) break;
      heapScore[i] = heapScore[c]!;
      heapRow[i] = heapRow[c]!;
      i = c;
    }
    heapScore[i] = s;
    heapRow[i] = r;
    worst = heapScore[0]!;
  }
  const out: ScoredRow[] = [];
  for (let i = 0; i < filled; i++) out.push({ row: heapRow[i]!, score: heapScore[i]! });
  return out.sort((a, b) => b.score - a.score || a.row - b.row);
}
