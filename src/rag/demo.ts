import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { factCorpus } from '../data/fact_corpus.js';
import { inverseClozePairs, splitBySentence } from '../data/inverse_cloze.js';
import { writeFileAtomic } from '../io/atomic.js';
import { parseEmbedderOptions, type EmbedderOptionsInput } from '../train/embedder_options.js';
import { trainEmbedderAsync } from '../train/embedder_trainer.js';
import { evaluateMode, evaluateModes, type EvalQuery, type FusionOptions, type ModeScores } from './evaluate.js';
import { indexFiles, type IndexReport } from './indexer.js';
import { openForIndexing } from './open_store.js';
import { Retriever } from './retriever.js';
import { TextEmbedder } from './text_embedder.js';

/**
 * `attn rag demo`: the whole pipeline offline, on a generated corpus with
 * known answers — write the documents and questions, train a retriever on
 * the documents alone (inverse cloze: no question and no label is used),
 * index them, and score BM25, dense and hybrid search on the questions.
 */

export interface DemoOptions {
  out: string;
  towns: number;
  questionsPerTown: number;
  /** Development questions per town (other facts than the test questions ask), on which the fusion's weight is chosen; 0: plain RRF. */
  devQuestionsPerTown?: number;
  /** The fusion settings to choose from on the development questions (default FUSION_GRID). */
  fusionGrid?: FusionOptions[];
  seed: number;
  /** Embedder training (defaults sized for a couple of minutes on 2 cores). */
  train: EmbedderOptionsInput;
  pairs: number;
  passageWords: number;
  /** Inverse-cloze pairs whose query is two sentences of two passages of one document (inverse_cloze.ts); 0 by default. */
  multiFactRate?: number;
  /** Documents per training group, with the documents most like them (inverse_cloze.ts `neighbours`): hard in-batch negatives; 1 by default. */
  neighbours?: number;
  /** The share of two-sentence queries cut to their distinctive words without the town's name (inverse_cloze.ts `describedRate`); 0 by default. */
  describedRate?: number;
  /** One-sentence pairs whose positive keeps the sentence (inverse_cloze.ts `keepRate`); 0.1 by default. */
  keepRate?: number;
  /** Two-sentence pairs whose positive keeps its sentence (inverse_cloze.ts `multiKeepRate`); 0 by default. */
  multiKeepRate?: number;
  /** Every training pair gets the passage of another document that BM25 ranks first for its query as a hard negative (inverse_cloze.ts `hardNegatives`); false by default. */
  hardNegatives?: boolean | 'facts';
  /** The share of two-sentence queries left without the town's name but otherwise whole (inverse_cloze.ts `untitledRate`); 0 by default. */
  untitledRate?: number;
  /** Title-to-passage pairs, as a share of `pairs` (inverse_cloze.ts `titleRate`); 0 by default. */
  titleRate?: number;
  /** The share of two-sentence queries whose two sentences share a passage (inverse_cloze.ts `samePassageRate`); 0 by default. */
  samePassageRate?: number;
  chunkTokens?: number;
  log?: (s: string) => void;
}

export interface DemoResult {
  corpus: string;
  queries: string;
  embedder: string;
  store: string;
  index: IndexReport;
  scores: ModeScores[];
  /** RRF's k and the dense list's weight (BM25's is 1), as chosen on the development questions; plain RRF (k = 60, weight 1) without them. */
  fusion: Required<FusionOptions>;
  /** Hybrid on the development questions at each setting tried. */
  dev: Array<{ fusion: Required<FusionOptions>; scores: ModeScores }>;
  /** BM25 and dense on the development questions (what a retriever setting is chosen on). */
  devModes: ModeScores[];
}

/** The fusion settings the demo tries on its development questions (k = 60 and weight 1: plain RRF). */
export const FUSION_GRID: Array<Required<FusionOptions>> = [10, 60].flatMap((rrfK) => [0.25, 0.5, 1, 2].map((denseWeight) => ({ rrfK, denseWeight })));

export async function runRagDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? (() => {});
  const corpusDir = join(o.out, 'corpus');
  mkdirSync(corpusDir, { recursive: true });
  const { documents, questions, dev } = factCorpus({ towns: o.towns, questionsPerTown: o.questionsPerTown, seed: o.seed, devQuestionsPerTown: o.devQuestionsPerTown ?? 0 });
  for (const d of documents) writeFileSync(join(corpusDir, d.file), d.text);
  const write = (name: string, qs: typeof questions): { path: string; queries: EvalQuery[] } => {
    const path = join(o.out, name);
    const queries = qs.map((q) => ({ query: q.query, relevant: [join(corpusDir, q.file)] }));
    writeFileAtomic(path, queries.map((q, i) => JSON.stringify({ ...q, answer: qs[i]!.answer }) + '\n').join(''));
    return { path, queries };
  };
  const { path: queriesPath, queries } = write('queries.jsonl', questions);
  const devSet = dev.length > 0 ? write('dev_queries.jsonl', dev) : undefined;
  log(`wrote ${documents.length} documents to ${corpusDir}, ${queries.length} test questions to ${queriesPath}${devSet ? ` and ${dev.length} development questions to ${devSet.path}` : ''}\n`);

  const embedderDir = join(o.out, 'embedder');
  const options = parseEmbedderOptions(o.train);
  // Keyed by document and split by sentence (inverse_cloze.ts): every document is trained on, and its passages are not each other's negatives.
  const pairs = splitBySentence(inverseClozePairs(documents.map((d) => d.text), { passageWords: o.passageWords, count: o.pairs, seed: o.seed, keyBy: 'document', multiFactRate: o.multiFactRate ?? 0, neighbours: o.neighbours ?? 1, describedRate: o.describedRate ?? 0, keepRate: o.keepRate ?? 0.1, multiKeepRate: o.multiKeepRate ?? 0, hardNegatives: o.hardNegatives ?? false, untitledRate: o.untitledRate ?? 0, titleRate: o.titleRate ?? 0, samePassageRate: o.samePassageRate ?? 0 }), 0.1);
  log(`training the retriever: ${pairs.train.length} inverse cloze pairs from the documents${o.hardNegatives ? ', each with a BM25-mined hard negative' : ''}, ${options.steps} steps\n`);
  // On a device backend (webgpu) the retriever trains there (trainEmbedderAsync runs on any backend).
  const summary = await trainEmbedderAsync({
    train: pairs.train, heldOut: pairs.heldOut, options, out: embedderDir,
    pairs: { task: 'corpus', files: [corpusDir], pairs: o.pairs, seed: o.seed, passageWords: o.passageWords, keyBy: 'document', ...(o.multiFactRate ? { multiFactRate: o.multiFactRate } : {}), ...((o.neighbours ?? 1) > 1 ? { neighbours: o.neighbours } : {}), ...(o.describedRate ? { describedRate: o.describedRate } : {}), ...(o.keepRate !== undefined && o.keepRate !== 0.1 ? { keepRate: o.keepRate } : {}), ...(o.multiKeepRate ? { multiKeepRate: o.multiKeepRate } : {}), ...(o.hardNegatives ? { hardNegatives: o.hardNegatives } : {}), ...(o.untitledRate ? { untitledRate: o.untitledRate } : {}), ...(o.titleRate ? { titleRate: o.titleRate } : {}), ...(o.samePassageRate ? { samePassageRate: o.samePassageRate } : {}) },
  });
  log(`trained in ${summary.seconds.toFixed(1)} s; held-out recall@1 ${[...summary.recall].map(([d, r]) => `${d}:${r.toFixed(3)}`).join(' ')}\n`);

  const embedder = TextEmbedder.loadOnBackend(embedderDir);
  const storeDir = join(o.out, 'store');
  const store = await openForIndexing(storeDir, embedder);
  try {
    const maxTokens = o.chunkTokens ?? embedder.maxLen;
    const index = await indexFiles(store, embedder, [corpusDir], { chunk: { maxTokens, overlapTokens: Math.floor(maxTokens / 8) } });
    log(`indexed ${index.chunks} chunks of ${index.indexed} files in ${index.seconds.toFixed(1)} s (${index.chunksPerSecond.toFixed(0)} chunks/s)\n`);
    const retriever = new Retriever(store, embedder);
    // The fusion's one setting is chosen on the development questions (other facts of the same towns), never on the test ones.
    const tried: DemoResult['dev'] = [];
    let fusion: Required<FusionOptions> = { rrfK: 60, denseWeight: 1 };
    let devModes: ModeScores[] = [];
    if (devSet) {
      devModes = await evaluateModes(retriever, devSet.queries, ['bm25', 'dense']);
      for (const s of devModes) log(`development questions, ${s.mode}: recall@10 ${s['recall@10']} nDCG@10 ${s['ndcg@10']}\n`);
      for (const f of o.fusionGrid ?? FUSION_GRID) {
        const s = await evaluateMode(retriever, devSet.queries, 'hybrid', f);
        tried.push({ fusion: { rrfK: f.rrfK ?? 60, denseWeight: f.denseWeight ?? 1 }, scores: s });
        log(`development questions, hybrid with RRF k ${f.rrfK ?? 60}, dense weight ${f.denseWeight ?? 1}: recall@10 ${s['recall@10']} nDCG@10 ${s['ndcg@10']}\n`);
      }
      fusion = tried.reduce((a, b) => (b.scores['recall@10'] + b.scores['ndcg@10'] > a.scores['recall@10'] + a.scores['ndcg@10'] ? b : a)).fusion;
      log(`chose RRF k ${fusion.rrfK}, dense weight ${fusion.denseWeight} (best recall@10 + nDCG@10 on the development questions)\n`);
    }
    const scores = await evaluateModes(retriever, queries, undefined, fusion);
    return { corpus: corpusDir, queries: queriesPath, embedder: embedderDir, store: storeDir, index, scores, fusion, dev: tried, devModes };
  } finally {
    store.close();
  }
}
