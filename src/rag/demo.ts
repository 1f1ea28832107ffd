import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { factCorpus } from '../data/fact_corpus.js';
import { inverseClozePairs, splitBySentence } from '../data/inverse_cloze.js';
import { writeFileAtomic } from '../io/atomic.js';
import { parseEmbedderOptions, type EmbedderOptionsInput } from '../train/embedder_options.js';
import { trainEmbedder } from '../train/embedder_trainer.js';
import { evaluateModes, type EvalQuery, type ModeScores } from './evaluate.js';
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
  seed: number;
  /** Embedder training (defaults sized for a couple of minutes on 2 cores). */
  train: EmbedderOptionsInput;
  pairs: number;
  passageWords: number;
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
}

export async function runRagDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? (() => {});
  const corpusDir = join(o.out, 'corpus');
  mkdirSync(corpusDir, { recursive: true });
  const { documents, questions } = factCorpus({ towns: o.towns, questionsPerTown: o.questionsPerTown, seed: o.seed });
  for (const d of documents) writeFileSync(join(corpusDir, d.file), d.text);
  const queries: EvalQuery[] = questions.map((q) => ({ query: q.query, relevant: [join(corpusDir, q.file)] }));
  const queriesPath = join(o.out, 'queries.jsonl');
  writeFileAtomic(queriesPath, queries.map((q, i) => JSON.stringify({ ...q, answer: questions[i]!.answer }) + '\n').join(''));
  log(`wrote ${documents.length} documents to ${corpusDir} and ${queries.length} questions to ${queriesPath}\n`);

  const embedderDir = join(o.out, 'embedder');
  const options = parseEmbedderOptions(o.train);
  // Keyed by document and split by sentence (inverse_cloze.ts): every document is trained on, and its passages are not each other's negatives.
  const pairs = splitBySentence(inverseClozePairs(documents.map((d) => d.text), { passageWords: o.passageWords, count: o.pairs, seed: o.seed, keyBy: 'document' }), 0.1);
  log(`training the retriever: ${pairs.train.length} inverse cloze pairs from the documents, ${options.steps} steps\n`);
  const summary = trainEmbedder({
    train: pairs.train, heldOut: pairs.heldOut, options, out: embedderDir,
    pairs: { task: 'corpus', files: [corpusDir], pairs: o.pairs, seed: o.seed, passageWords: o.passageWords, keyBy: 'document' },
  });
  log(`trained in ${summary.seconds.toFixed(1)} s; held-out recall@1 ${[...summary.recall].map(([d, r]) => `${d}:${r.toFixed(3)}`).join(' ')}\n`);

  const embedder = TextEmbedder.load(embedderDir);
  const storeDir = join(o.out, 'store');
  const store = await openForIndexing(storeDir, embedder);
  try {
    const maxTokens = o.chunkTokens ?? embedder.maxLen;
    const index = await indexFiles(store, embedder, [corpusDir], { chunk: { maxTokens, overlapTokens: Math.floor(maxTokens / 8) } });
    log(`indexed ${index.chunks} chunks of ${index.indexed} files in ${index.seconds.toFixed(1)} s (${index.chunksPerSecond.toFixed(0)} chunks/s)\n`);
    const scores = await evaluateModes(new Retriever(store, embedder), queries);
    return { corpus: corpusDir, queries: queriesPath, embedder: embedderDir, store: storeDir, index, scores };
  } finally {
    store.close();
  }
}
