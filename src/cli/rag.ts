import { Command, InvalidArgumentError, Option } from 'commander';
import { loadModel } from '../io/model_dir.js';
import { generateText } from '../generate/stream.js';
import { runRagDemo } from '../rag/demo.js';
import { EVAL_MODES, evaluateModes, readQueries, scoreLine, type EvalMode } from '../rag/evaluate.js';
import { buildGroundedPrompt } from '../rag/grounded_prompt.js';
import { indexFiles } from '../rag/indexer.js';
import { openForIndexing, openRetriever, recordedEmbedder } from '../rag/open_store.js';
import { SEARCH_MODES, type SearchMode } from '../rag/retriever.js';
import { TextEmbedder } from '../rag/text_embedder.js';
import { runRagBench } from '../rag/benchmark.js';
import { UserError } from '../util/errors.js';
import { useBackend, useBackendAsync, withBackendFlags } from './backend_flags.js';
import { moveToBackend } from '../nn/placement.js';
import { int, natural, nonNeg, num, posInt, posNum, rate, seed } from './flags.js';
import { checkDirPath } from './out_dir.js';

/**
 * `attn rag`: retrieval-augmented generation over your documents — index
 * them into a LanceDB store, search by keywords, meaning or both, answer
 * from the passages with their sources, and measure retrieval. A thin shell
 * over src/rag/ (docs/rag.md).
 */

const modes = (v: string): EvalMode[] => {
  const list = v.split(',').map((s) => s.trim());
  for (const m of list) if (!(EVAL_MODES as readonly string[]).includes(m)) throw new InvalidArgumentError(`"${m}" is not a mode (${EVAL_MODES.join(', ')}).`);
  return list as EvalMode[];
};

const modeOption = () => new Option('--mode <mode>', 'bm25 (keywords), dense (meaning: Matryoshka prefix search, full-vector rerank) or hybrid (Reciprocal Rank Fusion of both)').choices([...SEARCH_MODES]).default('hybrid');

const err = (s: string) => process.stderr.write(s);

/** `--hard-negatives [by]`: "query" (the whole query) or "facts" (the query less its own town's name). */
const hardNegativesFlag = (v: string): true | 'facts' => {
  if (v === 'query') return true;
  if (v === 'facts') return 'facts';
  throw new InvalidArgumentError(`must be "query" or "facts" (got ${v}).`);
};

interface IndexFlags { store: string; embedder?: string; chunkTokens?: number; overlapTokens?: number; batch: number; ann?: boolean; backend?: string; threads?: number }

export async function runRagIndex(files: string[], o: IndexFlags, log: (s: string) => void = err): Promise<string> {
  await useBackendAsync(o);
  const embedderDir = o.embedder ?? recordedEmbedder(o.store);
  if (embedderDir === undefined) throw new UserError(`store ${o.store} is new: name the embedder to index it with (--embedder DIR)`);
  const embedder = TextEmbedder.loadOnBackend(embedderDir);
  const maxTokens = o.chunkTokens ?? Math.min(256, embedder.maxLen);
  const overlapTokens = o.overlapTokens ?? Math.floor(maxTokens / 8);
  if (maxTokens < 8) throw new UserError(`--chunk-tokens must be at least 8 (got ${maxTokens})`);
  if (overlapTokens < 0 || overlapTokens >= maxTokens) throw new UserError(`--overlap-tokens must be in 0..${maxTokens - 1} (got ${overlapTokens})`);
  if (maxTokens > embedder.maxLen) log(`warning: chunks of ${maxTokens} tokens are longer than the embedder reads (${embedder.maxLen}); their ends are not embedded\n`);
  const store = await openForIndexing(o.store, embedder);
  const tty = process.stderr.isTTY;
  try {
    const report = await indexFiles(store, embedder, files, {
      chunk: { maxTokens, overlapTokens },
      batch: o.batch,
      ann: o.ann,
      onSkip: (s) => log(`${tty ? '\r\x1b[K' : ''}skipping ${s.source}: ${s.reason}\n`),
      onProgress: (p) => {
        if (tty) log(`\r\x1b[Kindexing: ${p.files}/${p.totalFiles} files, ${p.chunks} chunks`);
      },
    });
    if (tty) log('\r\x1b[K');
    return JSON.stringify({ files: report.files, indexed: report.indexed, unchanged: report.unchanged, skipped: report.skipped.length, chunks: report.chunks, total_chunks: await store.count(), seconds: round(report.seconds), chunks_per_s: round(report.chunksPerSecond) }) + '\n';
  } finally {
    store.close();
  }
}

const round = (x: number, d = 3) => Number(x.toFixed(d));

export async function runRagQuery(question: string, o: { store: string; embedder?: string; mode: SearchMode; k: number; json?: boolean; rrfK?: number; denseWeight?: number; backend?: string; threads?: number }): Promise<string> {
  await useBackendAsync(o);
  const retriever = await openRetriever(o.store, o.embedder);
  try {
    const { results } = await retriever.search(question, { mode: o.mode, k: o.k, rrfK: o.rrfK, denseWeight: o.denseWeight });
    if (o.json) return results.map((r) => JSON.stringify({ rank: r.rank, score: round(r.score, 6), id: r.chunk.id, source: r.chunk.source, start: r.chunk.start, end: r.chunk.end, text: r.chunk.text }) + '\n').join('');
    if (results.length === 0) return 'no results\n';
    return results.map((r) => `${r.rank}. ${r.chunk.source} [${r.chunk.start}–${r.chunk.end}] score ${r.score.toFixed(4)}  (${r.chunk.id})\n   ${r.chunk.text.replace(/\s+/g, ' ').slice(0, 200)}\n`).join('');
  }
  finally {
    retriever.store.close();
  }
}

interface AskFlags { store: string; model: string; embedder?: string; mode: SearchMode; k: number; maxNewTokens: number; temperature: number; seed: number; backend?: string; threads?: number }

export async function runRagAsk(question: string, o: AskFlags): Promise<string> {
  await useBackendAsync(o);
  const { model, tokenizer } = loadModel(o.model);
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer: a question cannot be encoded`);
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
  const retriever = await openRetriever(o.store, o.embedder);
  try {
    const { results } = await retriever.search(question, { mode: o.mode, k: o.k });
    const context = model.config.block_size;
    const budget = context - o.maxNewTokens;
    if (budget < 8) throw new UserError(`--max-new-tokens ${o.maxNewTokens} leaves no room for a prompt in the model's ${context}-token context`);
    const g = buildGroundedPrompt(question, results, (s) => tokenizer.encode(s, { allowedSpecial: 'all' }).length, budget);
    const [answer] = await generateText(model, tokenizer, g.prompt, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, seed: o.seed, stop: ['\nQuestion:'], ...(o.temperature === 0 ? { greedy: true } : {}) });
    const sources = g.sources.map((s) => `[${s.n}] ${s.source} characters ${s.start}–${s.end} (${s.id})\n`).join('');
    return `${answer!.trim()}\n\nSources:\n${sources || '(no passage fitted the context)\n'}`;
  } finally {
    retriever.store.close();
  }
}

export async function runRagEval(o: { store: string; queries: string; embedder?: string; modes: EvalMode[]; json?: boolean; rrfK?: number; denseWeight?: number; backend?: string; threads?: number }): Promise<string> {
  const queries = readQueries(o.queries);
  await useBackendAsync(o);
  const retriever = await openRetriever(o.store, o.embedder);
  try {
    const scores = await evaluateModes(retriever, queries, o.modes, { rrfK: o.rrfK, denseWeight: o.denseWeight });
    if (o.json) return scores.map((s) => scoreLine(s) + '\n').join('');
    return `mode\trecall@10\tMRR\tnDCG@10\tms/search\t(${queries.length} queries)\n` + scores.map((s) => `${s.mode}\t${s['recall@10'].toFixed(4)}\t${s.mrr.toFixed(4)}\t${s['ndcg@10'].toFixed(4)}\t${s.search_ms.toFixed(3)}\n`).join('');
  } finally {
    retriever.store.close();
  }
}

const finish = (c: Command): Command => c.exitOverride().showHelpAfterError('(run with --help for usage)');

export function ragCommand(): Command {
  const cmd = new Command('rag').description('retrieval-augmented generation: index documents in a LanceDB store, search (BM25, dense, hybrid), answer with sources, evaluate').addHelpText('after', '\nSee docs/rag.md.');

  const index = withBackendFlags(new Command('index'), { webgpu: true })
    .description('chunk, embed and store FILES… (text, Markdown, HTML; directories recursively); a changed file replaces its chunks, an unchanged one is skipped')
    .argument('<files...>', 'files and directories to index')
    .requiredOption('--store <dir>', 'the store directory (created when new)')
    .option('--embedder <dir>', 'embedder directory (attn embed train): required for a new store, which records it (default: the store\'s)')
    .option('--chunk-tokens <n>', 'most tokens per chunk (default: min(256, the embedder\'s max_len))', int)
    .option('--overlap-tokens <n>', 'tokens of a cut paragraph repeated in the next chunk (default: chunk-tokens / 8)', int)
    .option('--batch <n>', 'chunks embedded and committed together', posInt, 256)
    .option('--ann', 'also build an HNSW index on the prefix vectors (stores of 4096+ chunks; the first dense stage then walks the graph instead of scanning; exact search otherwise)')
    .action(async (files: string[], o: IndexFlags) => {
      process.stdout.write(await runRagIndex(files, o));
    });

  const query = withBackendFlags(new Command('query'), { webgpu: true })
    .description('print the chunks that best match QUESTION, with source and score')
    .argument('<question>', 'what to search for')
    .requiredOption('--store <dir>', 'the store directory')
    .option('--embedder <dir>', 'embedder to embed the question (default: the one the store was indexed with)')
    .addOption(modeOption())
    .option('--k <n>', 'results to print', posInt, 5)
    .option('--json', 'one JSON line per result')
    .option('--rrf-k <n>', 'hybrid: RRF\'s k (default 60)', natural)
    .option('--dense-weight <w>', 'hybrid: the dense list\'s weight in the fusion, BM25\'s being 1 (default 1)', nonNeg)
    .action(async (question: string, o: { store: string; embedder?: string; mode: SearchMode; k: number; json?: boolean; rrfK?: number; denseWeight?: number; backend?: string; threads?: number }) => {
      process.stdout.write(await runRagQuery(question, o));
    });

  const ask = withBackendFlags(new Command('ask'), { webgpu: true })
    .description('answer QUESTION with a language model from the retrieved passages, and list the sources it was given')
    .argument('<question>', 'the question')
    .requiredOption('--store <dir>', 'the store directory')
    .requiredOption('--model <dir>', 'language model directory (attn train, a Hugging Face GPT-2, …)')
    .option('--embedder <dir>', 'embedder for the question (default: the store\'s)')
    .addOption(modeOption())
    .option('--k <n>', 'passages to retrieve (as many as fit the context go in the prompt)', int, 4)
    .option('--max-new-tokens <n>', 'tokens of the answer', int, 64)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', num, 0)
    .option('--seed <n>', 'random seed', seed, 1337)
    .action(async (question: string, o: AskFlags) => {
      process.stdout.write(await runRagAsk(question, o));
    });

  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('recall@10, MRR and nDCG@10 per search mode on queries with known relevant chunks or sources')
    .requiredOption('--store <dir>', 'the store directory')
    .requiredOption('--queries <file>', 'JSON lines {"query": "…", "relevant": ["chunk id or source", …]}')
    .option('--embedder <dir>', 'embedder for the queries (default: the store\'s)')
    .option('--modes <list>', 'modes to score, comma-separated: bm25, dense (Matryoshka two-stage), dense-exact (every full vector scored: the baseline of two-stage), hybrid', modes, [...EVAL_MODES])
    .option('--json', 'one JSON line per mode: {"mode", "recall@10", "mrr", "ndcg@10", "queries"}')
    .option('--rrf-k <n>', 'hybrid: RRF\'s k (default 60)', natural)
    .option('--dense-weight <w>', 'hybrid: the dense list\'s weight in the fusion, BM25\'s being 1 (default 1)', nonNeg)
    .action(async (o: { store: string; queries: string; embedder?: string; modes: EvalMode[]; json?: boolean; rrfK?: number; denseWeight?: number; backend?: string; threads?: number }) => {
      process.stdout.write(await runRagEval(o));
    });

  const demo = withBackendFlags(new Command('demo'), { webgpu: true })
    .description('offline end to end: generate documents about invented towns and questions with known answers, train a retriever on the documents (inverse cloze), index, and score each mode (JSON lines)')
    .requiredOption('--out <dir>', 'directory for the corpus, queries.jsonl, the embedder and the store')
    .option('--towns <n>', 'documents to generate (at least 2)', posInt, 300)
    .option('--questions-per-town <n>', 'questions per document', posInt, 2)
    .option('--dev-questions-per-town <n>', 'development questions per document (about other facts than the test questions), on which the fusion\'s k and dense weight are chosen; 0: plain RRF, k = 60', natural, 2)
    .option('--steps <n>', 'retriever training steps', natural, 1800)
    .option('--pairs <n>', 'inverse cloze pairs', posInt, 20_000)
    .option('--train-batch <n>', 'inverse cloze pairs per training step (each other\'s negatives)', posInt, 64)
    .option('--seed <n>', 'seed of the corpus and the training', seed, 1)
    .option('--multi-fact-rate <r>', 'share of inverse cloze queries made of two sentences from two passages of one document (0: one sentence each)', num, 0.5)
    .option('--keep-rate <r>', 'share of one-sentence inverse cloze pairs whose passage keeps the query sentence (the paper: 0.1)', rate, 0.75)
    .option('--multi-keep-rate <r>', 'share of two-sentence pairs whose passage keeps the query\'s sentence from it', rate, 0.75)
    .option('--hard-negatives [by]', 'give each inverse cloze pair a hard negative: the passage of another document that BM25 ranks first for its query (an extra column of the loss); "facts": for its query less its own town\'s name', hardNegativesFlag)
    .option('--untitled-rate <r>', 'share of two-sentence inverse cloze queries left without their town\'s name (the document\'s heading) but otherwise whole', rate, 0.75)
    .option('--title-rate <r>', 'title-to-passage pairs added, as a share of --pairs: the document\'s heading (a town\'s name) is the query, one of its passages the positive', rate, 0.25)
    .option('--same-passage-rate <r>', 'share of two-sentence inverse cloze queries whose two sentences come from one passage (kept in the positive), not two', rate, 0.75)
    .option('--lr <x>', 'the retriever\'s peak learning rate (warm-up, then cosine to a tenth of it)', posNum, 1e-3)
    .option('--temperature <t>', 'the retriever\'s contrastive (InfoNCE) temperature', posNum, 0.1)
    .option('--layers <n>', 'the retriever\'s encoder layers', posInt, 2)
    .option('--d-model <n>', 'the retriever\'s width (and its vectors\' dimension)', posInt, 128)
    .addOption(new Option('--pooling <how>', 'the retriever\'s pooling: mean of its output vectors, or weighted by each token\'s inverse document frequency').choices(['mean', 'idf']).default('mean'))
    .option('--train-seed <n>', 'seed of the retriever\'s initialisation and batches only (default: --seed); the corpus and the pairs stay those of --seed', natural)
    .option('--no-lowercase', 'the retriever\'s word tokenizer keeps case, as before the tenth round (docs/rag.md); by default it folds text to lower case, learned and encoded alike')
    .option('--space-tokens', 'the retriever\'s word tokenizer makes tokens of white space, as before the seventh round (docs/rag.md): a 64-token window and chunk then hold about 32 words, not about 55')
    .action(async (o: { out: string; towns: number; questionsPerTown: number; devQuestionsPerTown: number; steps: number; pairs: number; trainBatch: number; seed: number; multiFactRate: number; keepRate: number; multiKeepRate: number; hardNegatives?: boolean | 'facts'; untitledRate: number; titleRate: number; samePassageRate: number; lr: number; temperature: number; layers: number; dModel: number; pooling: 'mean' | 'idf'; trainSeed?: number; lowercase: boolean; spaceTokens?: boolean; backend?: string; threads?: number }) => {
      checkDirPath(o.out); // before the corpus is written (and a device opened)
      await useBackendAsync(o);
      if (o.towns < 2) throw new UserError('--towns: the corpus needs at least 2 towns');
      const r = await runRagDemo({
        hardNegatives: o.hardNegatives ?? false,
        // Multi-fact rate 0.5: dense nDCG@10 0.624 against 0.577 with one-sentence queries only, 0.590 at 0.8 (docs/rag.md).
        out: o.out, towns: o.towns, questionsPerTown: o.questionsPerTown, devQuestionsPerTown: o.devQuestionsPerTown, seed: o.seed, pairs: o.pairs, passageWords: 48, multiFactRate: o.multiFactRate,
        // Keep rates 0.75, not the paper's 0.1 (and 0 for two-sentence queries): dense nDCG@10 on the development questions
        // 0.810 against 0.764; 0.803 at 0.5, 0.804 at 1 (docs/rag.md, eighth round). The questions share words with their
        // chunk, and a passage that keeps its sentence teaches the model that shared words count.
        keepRate: o.keepRate, multiKeepRate: o.multiKeepRate, untitledRate: o.untitledRate, titleRate: o.titleRate, samePassageRate: o.samePassageRate,
        // Temperature 0.1, not the embedder's 0.05: measured on the demo's questions, dense nDCG@10 0.576 against 0.500
        // (docs/rag.md). Likely why: the task is easy (loss ≈ 0.1 within 300 steps), and a softer softmax keeps more of
        // the batch's negatives in the gradient.
        // No space tokens: dense nDCG@10 0.776 against 0.744, hybrid 0.885 against 0.845 (BM25 0.881 against 0.825 on the
        // larger chunks: the 64-token window and chunk hold about 55 words, not 32; docs/rag.md, seventh round).
        // Lower case and untitled rate 0.5 together: dense nDCG@10 on the development questions 0.847 against 0.816 (lower case
        // alone 0.821, untitled 0.5 alone 0.818, untitled 1 0.781; docs/rag.md, tenth round). The questions write
        // "cheese making" where a document starts a sentence with "Cheese making", and half the questions name no town.
        // Title pairs 0.25, untitled 0.75, same-passage 0.75 and 1800 steps together (docs/rag.md, eleventh round): dense
        // nDCG@10 on the development questions 0.883 against 0.847, BM25 0.875. Title pairs alone took the questions that
        // name a town from 0.942 to 0.988–0.994 (a name is also in its twin town's document) and cost the described ones;
        // untitled 0.75 and 1800 steps won some of that back; same-passage queries teach a chunk that holds both of a
        // question's facts to beat the chunks that share one (described questions 0.761 → 0.769, the named 0.991 → 0.998).
        // Earlier: 1200 steps, not 600: dense nDCG@10 on the development questions 0.816 against 0.810 (named and described both
        // up; training 510 s against 309 s loaded, one thread; docs/rag.md, ninth round).
        train: { steps: o.steps, seed: o.trainSeed ?? o.seed, pooling: o.pooling, evalInterval: Math.max(1, o.steps), batchSize: o.trainBatch, dModel: o.dModel, layers: o.layers, heads: 4, maxLen: 64, temperature: o.temperature, lr: o.lr, minLr: o.lr / 10, spaceTokens: o.spaceTokens ?? false, lowercase: o.lowercase },
        log: err,
      });
      err(r.scores.map((s) => `${s.mode}: ${s.search_ms.toFixed(3)} ms per search (query embedding not counted)\n`).join(''));
      err(`hybrid: RRF k = ${r.fusion.rrfK}, dense weight ${r.fusion.denseWeight} (BM25's 1)\n`);
      process.stdout.write(r.scores.map((s) => scoreLine(s) + '\n').join(''));
    });

  const bench = withBackendFlags(new Command('bench'))
    .description('speed: indexing chunks/s, hybrid query latency over a large store (p50/p95, query embedding included), Matryoshka two-stage vs full-dimension exact search over the in-memory vector matrix, and the database\'s exact scan (JSON lines)')
    .requiredOption('--embedder <dir>', 'embedder directory (e.g. the one `attn rag demo` trained)')
    .option('--out <dir>', 'where to build the bench store (default: a temporary directory, removed after); a large store an earlier run built there with the same embedder and settings is reused')
    .option('--chunks <n>', 'chunks in the large store', posInt, 100_000)
    .option('--queries <n>', 'timed queries per measurement', posInt, 200)
    .option('--ann', 'build an HNSW index on the prefix column of the large store (used by stores too large for the in-memory search)')
    .option('--labelled-towns <n>', 'towns in the large store whose questions (2 each) are scored; the rest are distractor towns (300 at --seed 1: the corpus `attn rag demo` trains on)', posInt, 300)
    .option('--seed <n>', 'seed of the labelled towns (that of `attn rag demo`)', seed, 1)
    .option('--candidates <list>', 'two-stage candidate depths to measure, comma-separated', (s: string) => s.split(',').map((x) => posInt(x)), [50, 200])
    .action(async (o: { embedder: string; out?: string; chunks: number; queries: number; ann?: boolean; labelledTowns: number; seed: number; candidates: number[]; backend?: string; threads?: number }) => {
      useBackend(o);
      if (o.out !== undefined) checkDirPath(o.out);
      for await (const line of runRagBench({ embedder: o.embedder, out: o.out, chunks: o.chunks, queries: o.queries, ann: o.ann, labelledTowns: o.labelledTowns, seed: o.seed, candidates: o.candidates, log: err })) process.stdout.write(JSON.stringify(line) + '\n');
    });

  for (const c of [index, query, ask, evaluate, demo, bench]) cmd.addCommand(finish(c));
  return cmd;
}
