import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import type { Chunk } from './store.js';
import type { Retriever, SearchMode, SearchOptions } from './retriever.js';

/**
 * Retrieval quality on queries with known answers. Each query names its
 * relevant items: chunk ids or sources (a retrieved chunk matches an item
 * when its id or its file is that item). Binary relevance; an item found
 * twice (two chunks of one relevant file) counts once.
 *   recall@k  the share of relevant items among the first k results
 *   MRR       1 / the rank of the first relevant result (0 if none in the list)
 *   nDCG@10   Σ 1/log2(rank+1) over relevant results in the first 10, over the best possible
 */

export interface EvalQuery {
  query: string;
  relevant: string[];
}

/**
 * The modes an evaluation scores: the search modes, and `dense-exact` — the
 * dense list found by scoring every chunk's full vector, the baseline that
 * shows what the Matryoshka two-stage search (`dense`) loses, if anything.
 */
export const EVAL_MODES = ['bm25', 'dense', 'dense-exact', 'hybrid'] as const;
export type EvalMode = (typeof EVAL_MODES)[number];

const searchOf = (mode: EvalMode): SearchOptions => (mode === 'dense-exact' ? { mode: 'dense', dense: 'exact' } : { mode: mode satisfies SearchMode });

export interface ModeScores {
  mode: EvalMode;
  'recall@10': number;
  mrr: number;
  'ndcg@10': number;
  queries: number;
  /** Mean milliseconds per search, the query's embedding left out (it is the same for every dense mode). */
  search_ms: number;
}

/** Read `{"query": "...", "relevant": ["id or source", …]}` lines; a bad line is a UserError naming it. */
export function readQueries(path: string): EvalQuery[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read queries file ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const out: EvalQuery[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let q: { query?: unknown; relevant?: unknown };
    try {
      q = JSON.parse(line) as typeof q;
    } catch {
      throw new UserError(`${path}:${i + 1}: not a JSON line`);
    }
    if (typeof q.query !== 'string' || q.query.trim() === '') throw new UserError(`${path}:${i + 1}: "query" must be a non-empty string`);
    if (!Array.isArray(q.relevant) || q.relevant.length === 0 || q.relevant.some((r) => typeof r !== 'string')) {
      throw new UserError(`${path}:${i + 1}: "relevant" must be a non-empty array of chunk ids or sources`);
    }
    out.push({ query: q.query, relevant: q.relevant as string[] });
  });
  if (out.length === 0) throw new UserError(`${path} holds no queries`);
  return out;
}

/** For each result in order: the relevant item it finds for the first time, or null. */
function matches(ranked: readonly Chunk[], relevant: ReadonlySet<string>): Array<string | null> {
  const seen = new Set<string>();
  return ranked.map((c) => {
    const item = relevant.has(c.id) ? c.id : relevant.has(c.source) ? c.source : null;
    if (item === null || seen.has(item)) return null;
    seen.add(item);
    return item;
  });
}

export function recallAt(ranked: readonly Chunk[], relevant: readonly string[], k: number): number {
  const found = matches(ranked.slice(0, k), new Set(relevant)).filter((m) => m !== null).length;
  return found / new Set(relevant).size;
}

export function reciprocalRank(ranked: readonly Chunk[], relevant: readonly string[]): number {
  const i = matches(ranked, new Set(relevant)).findIndex((m) => m !== null);
  return i < 0 ? 0 : 1 / (i + 1);
}

export function ndcgAt(ranked: readonly Chunk[], relevant: readonly string[], k: number): number {
  const rel = new Set(relevant);
  const dcg = matches(ranked.slice(0, k), rel).reduce((s, m, i) => s + (m === null ? 0 : 1 / Math.log2(i + 2)), 0);
  let ideal = 0;
  for (let i = 0; i < Math.min(rel.size, k); i++) ideal += 1 / Math.log2(i + 2);
  return dcg / ideal;
}

/** Scores of one mode over all queries (each query retrieves 10). */
export async function evaluateMode(retriever: Retriever, queries: readonly EvalQuery[], mode: EvalMode, fusion: FusionOptions = {}): Promise<ModeScores> {
  let recall = 0;
  let mrr = 0;
  let ndcg = 0;
  let ms = 0;
  // One search first, untimed: the first dense search loads the store's vectors into memory.
  await retriever.search(queries[0]!.query, { ...fusion, ...searchOf(mode), k: 10 });
  for (const q of queries) {
    const { results, timing } = await retriever.search(q.query, { ...fusion, ...searchOf(mode), k: 10 });
    ms += timing.totalMs - timing.embedMs;
    const ranked = results.map((r) => r.chunk);
    recall += recallAt(ranked, q.relevant, 10);
    mrr += reciprocalRank(ranked, q.relevant);
    ndcg += ndcgAt(ranked, q.relevant, 10);
  }
  const n = queries.length;
  const r4 = (x: number) => Math.round((x / n) * 10_000) / 10_000;
  return { mode, 'recall@10': r4(recall), mrr: r4(mrr), 'ndcg@10': r4(ndcg), queries: n, search_ms: Math.round((ms / n) * 1000) / 1000 };
}

/** A mode's line of `--json` output: exactly the keys the issue names (the timing is in the table and the demo's log). */
export function scoreLine(s: ModeScores): string {
  return JSON.stringify({ mode: s.mode, 'recall@10': s['recall@10'], mrr: s.mrr, 'ndcg@10': s['ndcg@10'], queries: s.queries });
}

/** The hybrid search's settings an evaluation may change (retriever.ts). */
export type FusionOptions = Pick<SearchOptions, 'rrfK' | 'denseWeight'>;

export async function evaluateModes(retriever: Retriever, queries: readonly EvalQuery[], modes: readonly EvalMode[] = EVAL_MODES, fusion: FusionOptions = {}): Promise<ModeScores[]> {
  for (const m of modes) if (!(EVAL_MODES as readonly string[]).includes(m)) throw new UserError(`"${m}" is not a mode to evaluate (${EVAL_MODES.join(', ')})`);
  const out: ModeScores[] = [];
  for (const m of modes) out.push(await evaluateMode(retriever, queries, m, fusion));
  return out;
}
