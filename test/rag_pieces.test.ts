import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { factCorpus } from '../src/data/fact_corpus.js';
import { bm25Negatives, distinctiveWords, inverseClozePairs, neighbourGroups, passagesOf, splitBySentence, withoutWords } from '../src/data/inverse_cloze.js';
import { splitPairs } from '../src/data/positive_pairs.js';
import { paragraphs, sentences } from '../src/data/sentences.js';
import { chunkText } from '../src/rag/chunker.js';
import { htmlToText, isSkipped, listFiles, readDocument } from '../src/rag/documents.js';
import { ndcgAt, recallAt, reciprocalRank } from '../src/rag/evaluate.js';
import { reciprocalRankFusion } from '../src/rag/fusion.js';
import { buildGroundedPrompt } from '../src/rag/grounded_prompt.js';
import type { Chunk } from '../src/rag/store.js';
import { rerankFullVector } from '../src/rag/two_stage.js';
import { topK, VectorMatrix } from '../src/rag/vector_matrix.js';
import { Rng } from '../src/util/rng.js';
import { groupIndex, negativeMask, sampleBatch } from '../src/train/embedder_trainer.js';
import { MASKED } from '../src/train/contrastive.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { TextEmbedder } from '../src/rag/text_embedder.js';

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

describe('rag: sentences and chunking', () => {
  const text = 'The first town was old. It had a bridge! Did it have walls?\n\nA second paragraph starts here. It is short.\n\n\nThird one.';

  it('finds paragraphs and sentences with exact offsets', () => {
    assert.deepEqual(paragraphs(text).map((p) => text.slice(p.start, p.end)), ['The first town was old. It had a bridge! Did it have walls?', 'A second paragraph starts here. It is short.', 'Third one.']);
    const s = sentences(text);
    assert.deepEqual(s.map((x) => text.slice(x.start, x.end)), ['The first town was old.', 'It had a bridge!', 'Did it have walls?', 'A second paragraph starts here.', 'It is short.', 'Third one.']);
    assert.deepEqual(s.map((x) => x.paragraph), [0, 0, 0, 1, 1, 2]);
  });

  it('packs whole sentences up to the budget, cites offsets, overlaps only inside a cut paragraph', () => {
    const para = Array.from({ length: 12 }, (_, i) => `Sentence number ${i} has six words.`).join(' ');
    const doc = `${para}\n\nShort closing paragraph here.`;
    const chunks = chunkText(doc, words, { maxTokens: 20, overlapTokens: 6 });
    for (const c of chunks) {
      assert.ok(c.tokens <= 20, `chunk ${c.ordinal} has ${c.tokens} tokens`);
      assert.equal(doc.slice(c.start, c.end), c.text);
      assert.match(c.text, /^Sentence|^Short/);
      assert.match(c.text, /\.$/);
    }
    // Inside the long paragraph consecutive chunks share one sentence (6 words ≤ overlap).
    assert.ok(chunks[1]!.start < chunks[0]!.end, 'the second chunk repeats the end of the first');
    // Every sentence is in some chunk.
    for (let i = 0; i < 12; i++) assert.ok(chunks.some((c) => c.text.includes(`number ${i} `)), `sentence ${i} is indexed`);
    const last = chunks[chunks.length - 1]!;
    assert.ok(last.text.endsWith('Short closing paragraph here.'));
    assert.deepEqual(chunks.map((c) => c.ordinal), chunks.map((_, i) => i));
  });

  it('cuts a sentence longer than a chunk at word boundaries', () => {
    const long = Array.from({ length: 50 }, (_, i) => `w${i}`).join(' ') + '.';
    const chunks = chunkText(long, words, { maxTokens: 16, overlapTokens: 0 });
    assert.ok(chunks.length >= 4);
    for (const c of chunks) assert.ok(c.tokens <= 16);
    assert.equal(chunks.map((c) => c.text).join(' '), long);
  });
});

describe('rag: reading documents', () => {
  it('strips HTML to paragraphs of visible text', () => {
    const t = htmlToText('<html><head><style>p{}</style><script>var x = "<p>";</script><title>T</title></head><body><h1>Head</h1><p>One &amp; two&nbsp;three.</p><!-- note --><div>Four<br>five &#x41;</div></body></html>');
    assert.equal(t, 'T\n\nHead\n\nOne & two three.\n\nFour\nfive A');
  });

  it('walks directories for text files, and skips binary and non-UTF-8 files by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-rag-docs-'));
    try {
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'a.md'), '# A\n\nText.');
      writeFileSync(join(dir, 'sub', 'b.txt'), 'More text.');
      writeFileSync(join(dir, 'sub', 'image.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 1]));
      writeFileSync(join(dir, 'bin.txt'), Buffer.from([0x41, 0, 0x42]));
      writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
      const files = listFiles([dir]);
      assert.deepEqual(files.map((f) => f.slice(dir.length + 1)).sort(), ['a.md', 'bin.txt', 'latin1.txt', 'sub/b.txt']);
      const docs = files.map(readDocument);
      const skipped = docs.filter(isSkipped);
      assert.deepEqual(skipped.map((s) => [s.source.slice(dir.length + 1), s.reason]).sort(), [['bin.txt', 'binary file'], ['latin1.txt', 'not UTF-8 text']]);
      assert.throws(() => listFiles([join(dir, 'missing')]), /no such file or directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const chunk = (id: string, source = id.split('#')[0]!): Chunk => ({ id, source, ordinal: 0, start: 0, end: 1, text: id, tokens: 1 });

describe('rag: fusion, rerank and metrics', () => {
  it('Reciprocal Rank Fusion sums 1/(k + rank) and prefers items both lists rank well', () => {
    const fused = reciprocalRankFusion([['a', 'b', 'c'], ['c', 'b', 'd']], (x) => x, 60);
    // c: ranks 3 and 1 → 1/63 + 1/61 just beats b: ranks 2 and 2 → 2/62.
    assert.deepEqual(fused.map((f) => f.item), ['c', 'b', 'a', 'd']);
    assert.ok(Math.abs(fused[0]!.score - (1 / 63 + 1 / 61)) < 1e-12);
    assert.ok(Math.abs(fused[1]!.score - 2 / 62) < 1e-12);
    assert.deepEqual(fused[2]!.ranks, [1, undefined]);
    // With k = 60 two third places beat one first place; with k = 0 the first place wins.
    const lists = [['a', 'x', 'b'], ['d', 'y', 'b']];
    assert.equal(reciprocalRankFusion(lists, (x) => x, 60)[0]!.item, 'b');
    assert.equal(reciprocalRankFusion(lists, (x) => x, 0)[0]!.item, 'a');
  });

  it('weighted RRF scales each list\'s 1/(k + rank) by its weight', () => {
    const lists = [['a', 'b'], ['b', 'c']];
    const fused = reciprocalRankFusion(lists, (x) => x, 10, [1, 0.25]);
    assert.ok(Math.abs(fused.find((f) => f.item === 'b')!.score - (1 / 12 + 0.25 / 11)) < 1e-12);
    assert.deepEqual(fused.map((f) => f.item), ['b', 'a', 'c']);
    // A light second list no longer lifts its own first place over the first list's.
    assert.equal(reciprocalRankFusion([['a', 'x'], ['x', 'y']], (x) => x, 10, [1, 0.25])[0]!.item, 'x');
    assert.equal(reciprocalRankFusion([['a', 'q'], ['x', 'y']], (x) => x, 10, [1, 0.25])[0]!.item, 'a');
    assert.throws(() => reciprocalRankFusion(lists, (x) => x, 60, [1]), /2 lists/);
  });

  it('reranks candidates by the full vector', () => {
    const q = Float32Array.from([0.6, 0.8]);
    const hits = [
      { chunk: chunk('x#0'), score: 0.9, vector: Float32Array.from([1, 0]) },
      { chunk: chunk('y#0'), score: 0.8, vector: Float32Array.from([0, 1]) },
      { chunk: chunk('z#0'), score: 0.7, vector: Float32Array.from([0.6, 0.8]) },
    ];
    const r = rerankFullVector(q, hits, 2);
    assert.deepEqual(r.map((h) => h.chunk.id), ['z#0', 'y#0']);
    assert.ok(Math.abs(r[0]!.score - 1) < 1e-6);
  });

  it('recall@k, MRR and nDCG count each relevant item once, by chunk id or source', () => {
    const ranked = [chunk('a#0'), chunk('b#0'), chunk('b#1', 'b'), chunk('c#0')];
    assert.equal(recallAt(ranked, ['b', 'c'], 2), 0.5);
    assert.equal(recallAt(ranked, ['b', 'c'], 10), 1);
    assert.equal(reciprocalRank(ranked, ['c']), 1 / 4);
    assert.equal(reciprocalRank(ranked, ['zzz']), 0);
    // b at rank 2 and c at rank 4 (b's second chunk at rank 3 does not count again).
    const want = (1 / Math.log2(3) + 1 / Math.log2(5)) / (1 + 1 / Math.log2(3));
    assert.ok(Math.abs(ndcgAt(ranked, ['b', 'c#0'], 10) - want) < 1e-12);
    assert.equal(ndcgAt(ranked, ['a'], 10), 1);
  });

  it('a grounded prompt takes passages in rank order while they fit, and lists exactly those', () => {
    const results = ['alpha beta gamma', 'delta epsilon', 'zeta eta theta iota kappa lambda mu nu xi omicron'].map((t, i) => ({ chunk: { ...chunk(`f${i}#0`), text: t }, score: 1 - i / 10, rank: i + 1 }));
    const all = buildGroundedPrompt('what?', results, words, 1000);
    assert.deepEqual(all.sources.map((s) => s.id), ['f0#0', 'f1#0', 'f2#0']);
    assert.match(all.prompt, /\[1\] \(f0, characters 0-1\)\nalpha beta gamma[\s\S]*\[3\][\s\S]*Question: what\?\nAnswer:$/);
    const some = buildGroundedPrompt('what?', results, words, all.tokens - 5);
    assert.deepEqual(some.sources.map((s) => s.id), ['f0#0', 'f1#0']);
    assert.ok(some.tokens <= all.tokens - 5);
    const cut = buildGroundedPrompt('what?', results, words, words(`${all.prompt.split('\n\n')[0]} [1] (f0, characters 0-1) alpha Question: what? Answer:`));
    assert.deepEqual(cut.sources.map((s) => s.id), ['f0#0']);
    assert.match(cut.prompt, /\nalpha\n/);
  });
});

describe('rag: generated data', () => {
  it('the fact corpus is deterministic, and each question is answered by its document', () => {
    const a = factCorpus({ towns: 20, questionsPerTown: 3, seed: 5 });
    assert.deepEqual(a, factCorpus({ towns: 20, questionsPerTown: 3, seed: 5 }));
    assert.equal(a.documents.length, 20);
    assert.equal(a.questions.length, 60);
    const byFile = new Map(a.documents.map((d) => [d.file, d.text]));
    for (const q of a.questions) assert.ok(byFile.get(q.file)!.toLowerCase().includes(q.answer.toLowerCase()), `${q.file} answers "${q.query}" with ${q.answer}`);
    assert.ok(a.questions.some((q) => !q.query.toLowerCase().includes(q.file.replace('.md', ''))), 'some questions do not name the town');
  });

  it('development questions ask about other facts than the test questions, which they leave unchanged', () => {
    const plain = factCorpus({ towns: 20, questionsPerTown: 2, seed: 5 });
    const withDev = factCorpus({ towns: 20, questionsPerTown: 2, seed: 5, devQuestionsPerTown: 2 });
    assert.deepEqual(withDev.questions, plain.questions);
    assert.deepEqual(withDev.documents, plain.documents);
    assert.equal(withDev.dev.length, 40);
    assert.equal(plain.dev.length, 0);
    for (const d of withDev.dev) {
      const tests = withDev.questions.filter((q) => q.file === d.file);
      assert.ok(tests.every((q) => q.answer !== d.answer && q.query !== d.query), `${d.query} repeats a test question's fact`);
    }
  });

  it('inverse cloze pairs: a sentence, and its passage without it (mostly)', () => {
    const docs = factCorpus({ towns: 10, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const pairs = inverseClozePairs(docs, { passageWords: 40, count: 200, seed: 1, keepRate: 0.1 });
    assert.equal(pairs.length, 200);
    const removed = pairs.filter((p) => !p.positive.includes(p.anchor)).length;
    assert.ok(removed > 150 && removed < 200, `${removed} of 200 positives lack their sentence`);
    for (const p of pairs) assert.match(p.key, /^passage \d+$/);
  });

  it('inverse cloze keyed by document, split by sentence: every document is trained on', () => {
    const docs = factCorpus({ towns: 10, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const pairs = inverseClozePairs(docs, { passageWords: 40, count: 400, seed: 1, keyBy: 'document' });
    for (const p of pairs) assert.equal(p.key, p.group!.replace(/^doc /, 'document '), 'the key is the document');
    const { train, heldOut } = splitBySentence(pairs, 0.2);
    assert.ok(heldOut.length > 20 && train.length > 250, `${train.length} / ${heldOut.length}`);
    const trainAnchors = new Set(train.map((p) => p.anchor));
    for (const p of heldOut) assert.ok(!trainAnchors.has(p.anchor), 'a held-out sentence is never a training query');
    assert.equal(new Set(train.map((p) => p.key)).size, 10, 'all ten documents are in training');
    // The usual split (by group) holds whole documents out.
    const byDoc = splitPairs(pairs, 0.2);
    assert.ok(new Set(byDoc.train.map((p) => p.key)).size < 10);
  });

  it('multi-fact pairs: a query of two sentences from two passages of one document', () => {
    const docs = factCorpus({ towns: 10, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const all = inverseClozePairs(docs, { passageWords: 24, count: 300, seed: 1, keyBy: 'document', multiFactRate: 1 });
    const plain = inverseClozePairs(docs, { passageWords: 24, count: 300, seed: 1, keyBy: 'document' });
    const ofDoc = (p: { group?: string }) => docs[Number(p.group!.replace(/^doc /, ''))]!.replace(/\s+/g, ' ');
    let multi = 0;
    for (const p of all) {
      const text = ofDoc(p);
      // (A heading, "# Name", is a sentence of its own without a full stop: split it off too.)
      for (const s of p.positive.split(/(?<=[.!?]) |(?<=^# \S+) /)) assert.ok(text.includes(s), 'the positive is sentences of the document');
      // Two sentences of the document, neither left in the positive.
      const parts = p.anchor.split(/(?<=[.!?]) |(?<=^# \S+) /);
      if (parts.length === 2) {
        multi++;
        for (const s of parts) assert.ok(text.includes(s), s);
        assert.ok(parts.filter((s) => p.positive.includes(s)).length === 0, 'the positive is the passage without its sentence');
      }
    }
    assert.ok(multi > 200, `${multi} of 300 queries are two sentences`);
    assert.ok(plain.every((p) => p.anchor.split(/(?<=[.!?]) /).length === 1), 'by default a query is one sentence');
  });

  it('described pairs: two sentences cut to their distinctive words, without the town\'s name', () => {
    const docs = factCorpus({ towns: 20, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 400, seed: 1, keyBy: 'document' as const, multiFactRate: 1 };
    const base = inverseClozePairs(docs, o);
    assert.deepEqual(inverseClozePairs(docs, { ...o, describedRate: 0 }), base, 'rate 0: the pairs of before');
    const pairs = inverseClozePairs(docs, { ...o, describedRate: 1 });
    const df = new Map<string, number>();
    for (const t of docs) for (const w of new Set(t.toLowerCase().match(/[\p{L}\p{N}]+/gu))) df.set(w, (df.get(w) ?? 0) + 1);
    let described = 0;
    pairs.forEach((p, i) => {
      assert.equal(p.positive, base[i]!.positive, 'the positive is the same passage');
      if (p.anchor === base[i]!.anchor) return;
      described++;
      const doc = Number(p.group!.replace(/^doc /, ''));
      const name = docs[doc]!.split('\n', 1)[0]!.replace(/^# /, '').toLowerCase();
      const ws = p.anchor.toLowerCase().split(' ');
      assert.ok(!ws.includes(name), `"${p.anchor}" leaves out ${name}`);
      assert.ok(ws.every((w) => df.get(w)! <= 20 / 5), `"${p.anchor}": words in at most a fifth of the documents`);
      assert.ok(ws.every((w) => docs[doc]!.toLowerCase().includes(w)), 'words of the document');
    });
    assert.ok(described > 200, `${described} of 400 queries described`);
    assert.equal(distinctiveWords('The river Luglul flows through Baithugous.', new Map([['luglul', 1], ['baithugous', 1], ['the', 9], ['river', 9], ['flows', 9], ['through', 9]]), 10, new Set(['baithugous'])), 'Luglul');
    assert.throws(() => inverseClozePairs(docs, { ...o, describedRate: 2 }), /describedRate/);
  });

  it('untitled pairs: two whole sentences without the town\'s name, the pairs otherwise those of before', () => {
    const docs = factCorpus({ towns: 20, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 400, seed: 1, keyBy: 'document' as const, multiFactRate: 0.5, keepRate: 0.75, multiKeepRate: 0.75 };
    const base = inverseClozePairs(docs, o);
    assert.deepEqual(inverseClozePairs(docs, { ...o, untitledRate: 0 }), base, 'rate 0: the pairs of before');
    const pairs = inverseClozePairs(docs, { ...o, untitledRate: 1 });
    let named = 0;
    let untitled = 0;
    pairs.forEach((p, i) => {
      const b = base[i]!;
      assert.equal(p.positive, b.positive, 'the positive is the same passage');
      assert.equal(p.key, b.key);
      const doc = Number(p.group!.replace(/^doc /, ''));
      const name = docs[doc]!.split('\n', 1)[0]!.replace(/^# /, '');
      const ws = (a: string) => a.toLowerCase().match(/[\p{L}\p{N}]+/gu)!;
      const two = b.anchor.split(/(?<=[.!?]) |(?<=^# \S+) /).length === 2;
      if (!two) return assert.equal(p.anchor, b.anchor, 'a one-sentence query is left as it was');
      if (ws(b.anchor).includes(name.toLowerCase())) named++;
      assert.ok(!ws(p.anchor).includes(name.toLowerCase()), `"${p.anchor}" leaves out ${name}`);
      // Every other word is kept, in its order.
      assert.deepEqual(ws(p.anchor), ws(b.anchor).filter((w) => w !== name.toLowerCase()));
      if (p.anchor !== b.anchor) untitled++;
    });
    assert.ok(named > 50 && untitled === named, `${untitled} of ${named} named two-sentence queries left without the name`);
    assert.equal(withoutWords('Thaithath Nupol is the mayor of Stoukraikruth.', new Set(['stoukraikruth'])), 'Thaithath Nupol is the mayor of.');
    assert.equal(withoutWords('Baithugous was founded in 1654.', new Set(['baithugous'])), 'was founded in 1654.');
    assert.throws(() => inverseClozePairs(docs, { ...o, untitledRate: 1.5 }), /untitledRate/);
  });

  it('title pairs: that many pairs more, each a document\'s heading and one of its passages, the others those of before', () => {
    const docs = factCorpus({ towns: 20, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 400, seed: 1, keyBy: 'document' as const, multiFactRate: 0.5, untitledRate: 0.5 };
    const base = inverseClozePairs(docs, o);
    assert.deepEqual(inverseClozePairs(docs, { ...o, titleRate: 0 }), base, 'rate 0: the pairs of before');
    const pairs = inverseClozePairs(docs, { ...o, titleRate: 0.25 });
    assert.equal(pairs.length, 500, '400 pairs and 100 title pairs');
    assert.deepEqual(pairs.slice(0, 400), base, 'the other pairs are unchanged');
    const docsSeen = new Set<number>();
    for (const p of pairs.slice(400)) {
      const doc = Number(p.key.replace(/^document /, ''));
      docsSeen.add(doc);
      assert.equal(p.anchor, docs[doc]!.split('\n', 1)[0]!.replace(/^# /, ''), 'the query is the heading, without its mark');
      assert.ok(/^[A-Z][a-z]+$/.test(p.anchor), `"${p.anchor}" is a town's name`);
      // The positive is a passage of that document, whole: every sentence of it is in the document.
      for (const s of p.positive.split(/(?<=[.!?]) /)) assert.ok(docs[doc]!.includes(s.replace(/^# \S+ /, '')), `"${s}" is in document ${doc}`);
    }
    assert.ok(docsSeen.size > 15, `${docsSeen.size} of 20 documents have title pairs`);
    assert.throws(() => inverseClozePairs(docs, { ...o, titleRate: -1 }), /titleRate/);
    assert.throws(() => inverseClozePairs(['no heading here. Two sentences.', 'Nor here. At all.'], { passageWords: 24, count: 10, seed: 1, titleRate: 0.5 }), /heading/);
  });

  it('same-passage pairs: both sentences of a two-sentence query are in its positive, the pairs otherwise those of before', () => {
    const docs = factCorpus({ towns: 20, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 400, seed: 1, keyBy: 'document' as const, multiFactRate: 1, multiKeepRate: 1 };
    const base = inverseClozePairs(docs, o);
    assert.deepEqual(inverseClozePairs(docs, { ...o, samePassageRate: 0 }), base, 'rate 0: the pairs of before');
    const pairs = inverseClozePairs(docs, { ...o, samePassageRate: 1 });
    const sentencesOf = (a: string) => a.split(/(?<=[.!?]) |(?<=^# \S+) /);
    let two = 0;
    let apartBefore = 0;
    pairs.forEach((p, i) => {
      const b = base[i]!;
      assert.equal(p.key, b.key);
      if (sentencesOf(b.anchor).length !== 2) return;
      two++;
      if (!sentencesOf(b.anchor).every((x) => b.positive.includes(x))) apartBefore++;
      assert.ok(sentencesOf(p.anchor).every((x) => p.positive.includes(x)), `"${p.anchor}": both sentences in "${p.positive}"`);
    });
    assert.ok(two > 200 && apartBefore > two / 2, `${apartBefore} of ${two} two-sentence queries had a sentence outside their positive before`);
    assert.throws(() => inverseClozePairs(docs, { ...o, samePassageRate: 2 }), /samePassageRate/);
  });

  it('multi-fact pairs with multiKeepRate: the positive keeps its sentence in that share, the pairs are otherwise those of before', () => {
    const docs = factCorpus({ towns: 10, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 300, seed: 1, keyBy: 'document' as const, multiFactRate: 1 };
    const base = inverseClozePairs(docs, o);
    assert.deepEqual(inverseClozePairs(docs, { ...o, multiKeepRate: 0 }), base, 'rate 0: the pairs of before');
    const half = inverseClozePairs(docs, { ...o, multiKeepRate: 0.5 });
    const all = inverseClozePairs(docs, { ...o, multiKeepRate: 1 });
    let kept = 0;
    let multi = 0;
    half.forEach((p, i) => {
      assert.equal(p.anchor, base[i]!.anchor, 'the same queries');
      const parts = p.anchor.split(/(?<=[.!?]) |(?<=^# \S+) /);
      if (parts.length !== 2) return assert.equal(p.positive, base[i]!.positive);
      multi++;
      if (p.positive !== base[i]!.positive) {
        kept++;
        assert.equal(parts.filter((s) => p.positive.includes(s)).length, 1, 'one of its sentences is kept in the positive');
        assert.ok(p.positive.length > base[i]!.positive.length);
      }
      // At rate 1 every two-sentence positive keeps its sentence.
      assert.equal(parts.filter((s) => all[i]!.positive.includes(s)).length, 1);
    });
    assert.ok(kept > multi * 0.3 && kept < multi * 0.7, `${kept} of ${multi} kept at 0.5`);
    assert.throws(() => inverseClozePairs(docs, { ...o, multiKeepRate: -1 }), /multiKeepRate/);
  });

  it('neighbour groups: documents grouped with those sharing their rare words', () => {
    const docs = ['a river Ostra glassmaking', 'b river Ostra weaving', 'c river Velm brewing', 'd river Velm pottery', 'e river Kord printing', 'f river Kord milling'];
    const g = neighbourGroups(docs, 2, new Rng(1));
    assert.equal(g[0], g[1]);
    assert.equal(g[2], g[3]);
    assert.equal(g[4], g[5]);
    assert.equal(new Set(g).size, 3);
    const corpus = factCorpus({ towns: 12, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const pairs = inverseClozePairs(corpus, { passageWords: 24, count: 200, seed: 1, keyBy: 'document', neighbours: 4 });
    const groups = new Map<string, Set<string>>();
    for (const p of pairs) (groups.get(p.group!) ?? groups.set(p.group!, new Set()).get(p.group!)!).add(p.key);
    assert.ok([...groups.values()].every((keys) => keys.size <= 4), 'at most 4 documents a group');
    assert.ok([...groups.values()].some((keys) => keys.size > 1), 'documents share groups');
  });

  it('BM25-mined hard negatives: the top passage of another document, never of the query\'s own; the pairs are otherwise those of before', () => {
    const passages = [
      { doc: 0, text: 'Ostra flows past Brinwick. Brinwick weaves wool.' },
      { doc: 0, text: 'Brinwick bakes honey cakes.' },
      { doc: 1, text: 'Ostra flows past Kelmor. Kelmor brews beer.' },
      { doc: 2, text: 'Velm flows past Darrow. Darrow bakes honey cakes.' },
      { doc: 3, text: 'Kord flows past Fenn. Fenn prints books.' },
    ];
    // "Ostra" and "Brinwick" are rare; doc 0's own passages rank first but are skipped.
    assert.deepEqual(bm25Negatives(passages, [
      { query: 'Ostra Brinwick', doc: 0 },
      { query: 'honey cakes of Brinwick', doc: 0 },
      { query: 'Kelmor brews beer', doc: 1 },
      { query: 'nothing shared', doc: 0 },
    ]), [2, 3, 0, 2]);
    const docs = factCorpus({ towns: 12, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const o = { passageWords: 24, count: 400, seed: 1, keyBy: 'document' as const, multiFactRate: 0.5, keepRate: 0.5, multiKeepRate: 0.5 };
    const base = inverseClozePairs(docs, o);
    const mined = inverseClozePairs(docs, { ...o, hardNegatives: true });
    const texts = passagesOf(docs, 24).map((p) => ({ doc: p.doc, text: p.sentences.join(' ') }));
    mined.forEach((p, i) => {
      const { negative, negativeKey, ...rest } = p;
      assert.deepEqual(rest, base[i], 'the same pair');
      assert.ok(negative && negativeKey);
      assert.notEqual(negativeKey, p.key, 'never a passage of the query\'s own document');
      const from = texts.filter((t) => t.text === negative);
      assert.ok(from.length > 0 && from.every((t) => `document ${t.doc}` === negativeKey), 'a passage of the document it names');
      assert.ok(!docs[Number(p.key.split(' ')[1])]!.replace(/\s+/g, ' ').includes(negative!), 'not in the query\'s document');
    });
    // Look-alikes, not random: a negative shares a rare word (in ≤ 3 of the 12 documents: a river, a dish, a twin's name)
    // with its query far more often than another document's passage taken blindly does (measured: 199 against 19 of 400).
    const W = (t: string) => t.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
    const df = new Map<string, number>();
    for (const d of docs) for (const w of new Set(W(d))) df.set(w, (df.get(w) ?? 0) + 1);
    const shares = (query: string, passage: string) => {
      const ws = new Set(W(passage));
      return W(query).some((w) => ws.has(w) && df.get(w)! <= 3);
    };
    const withMined = mined.filter((p) => shares(p.anchor, p.negative!)).length;
    const blind = mined.filter((p, i) => {
      const others = texts.filter((t) => `document ${t.doc}` !== p.key);
      return shares(p.anchor, others[(i * 7919) % others.length]!.text);
    }).length;
    assert.ok(withMined > 0.4 * mined.length && withMined > 4 * blind, `${withMined} mined and ${blind} blind of ${mined.length} share a rare word`);
  });

  it('hard negatives by facts: mined for the query less its own town\'s name, so they rarely name the town (its twin\'s passages)', () => {
    const docs = factCorpus({ towns: 40, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const names = docs.map((d) => d.split('\n', 1)[0]!.replace(/^#\s*/, '').toLowerCase());
    const o = { passageWords: 48, count: 800, seed: 1, keyBy: 'document' as const, multiFactRate: 0.5 };
    const naming = (ps: ReturnType<typeof inverseClozePairs>) => ps.filter((p) => p.negative!.toLowerCase().includes(names[Number(p.key.split(' ')[1])]!)).length;
    const byQuery = inverseClozePairs(docs, { ...o, hardNegatives: true });
    const byFacts = inverseClozePairs(docs, { ...o, hardNegatives: 'facts' });
    assert.ok(byFacts.every((p) => p.negativeKey !== p.key));
    assert.ok(naming(byFacts) < naming(byQuery) / 4, `${naming(byFacts)} by facts, ${naming(byQuery)} by the whole query name the query's town`);
  });

  it('the hard-negative mask hides exactly the negatives about an anchor\'s own key', () => {
    const pairs = [
      { anchor: 'a', positive: 'A', key: 'document 0', negative: 'x', negativeKey: 'document 1' },
      { anchor: 'b', positive: 'B', key: 'document 1', negative: 'y', negativeKey: 'document 2' },
      { anchor: 'c', positive: 'C', key: 'document 2', negative: 'z', negativeKey: 'document 9' },
    ];
    const rows = [0, 1, 2];
    const mask = negativeMask(pairs, rows);
    assert.equal(mask.length, 3 * 6);
    const masked: Array<[number, number]> = [];
    mask.forEach((v, i) => {
      if (v !== 0) {
        assert.equal(v, MASKED);
        masked.push([Math.floor(i / 6), i % 6]);
      }
    });
    // Anchor 1 (document 1) must not have pair 0's negative (column 3 + 0); anchor 2 not pair 1's (column 3 + 1).
    assert.deepEqual(masked, [[1, 3], [2, 4]]);
    assert.deepEqual([...negativeMask(pairs, [2, 0])], new Array(8).fill(0), 'no clash in this batch');
  });

  it('training batches take every pair of a document keyed by document, not only its first', () => {
    const docs = factCorpus({ towns: 6, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const pairs = inverseClozePairs(docs, { passageWords: 24, count: 240, seed: 1, keyBy: 'document' });
    const groups = groupIndex(pairs);
    assert.equal(groups.length, 6, 'one group per document');
    const rng = new Rng(5);
    const seen = new Set<number>();
    for (let step = 0; step < 200; step++) {
      const rows = sampleBatch(pairs, groups, 4, rng);
      assert.equal(new Set(rows.map((i) => pairs[i]!.key)).size, rows.length, 'never two pairs of one key in a batch');
      for (const i of rows) seen.add(i);
    }
    assert.ok(seen.size > 150, `${seen.size} of ${pairs.length} pairs were ever in a batch`);
  });
});

describe('rag: the in-memory vector matrix', () => {
  const rng = new Rng(3);
  const n = 500;
  const width = 8;
  const m = new Float32Array(n * width).map(() => rng.random() * 2 - 1);
  const q = new Float32Array(width).map(() => rng.random() * 2 - 1);
  const sorted = Array.from({ length: n }, (_, r) => {
    let s = 0;
    for (let j = 0; j < width; j++) s += q[j]! * m[r * width + j]!;
    return { row: r, score: Math.fround(s) };
  }).sort((a, b) => b.score - a.score);

  it('keeps the k best rows by dot product, best first (as a full sort would)', () => {
    for (const k of [1, 7, 50, n]) assert.deepEqual(topK(m, width, n, q, k).map((r) => r.row), sorted.slice(0, k).map((r) => r.row), `k = ${k}`);
    assert.equal(topK(m, width, n, q, n + 10).length, n, 'k beyond the rows: every row');
    assert.deepEqual(topK(m, width, n, q, 0), []);
    assert.throws(() => topK(m, width, n, new Float32Array(3), 2), /query of 3 components/);
  });

  it('reranks prefix candidates by the full vector', () => {
    // Rows of 2-component "prefixes" and 8-component full vectors: the rerank orders by the full ones.
    const prefix = new Float32Array(n * 2).map((_, i) => m[Math.floor(i / 2) * width + (i % 2)]!);
    const mat = new VectorMatrix(Array.from({ length: n }, (_, i) => `c${i}`), Array.from({ length: n }, (_, i) => BigInt(i)), 2, width, prefix, m);
    const all = mat.topByPrefix(q.slice(0, 2), n);
    assert.deepEqual(mat.rerank(q, all, 5).map((r) => r.row), sorted.slice(0, 5).map((r) => r.row), 'all rows as candidates: the exact top 5');
    assert.deepEqual(mat.topByFull(q, 5).map((r) => r.row), sorted.slice(0, 5).map((r) => r.row));
    assert.throws(() => new VectorMatrix(['a'], [0n], 2, width, prefix, m), /1 rows/);
  });
});

describe('rag: the text embedder leaves out the unknown-word token', () => {
  it('drops <unk> when the text has known words, keeps it when it has none', () => {
    const tok = WordTokenizer.fromText('alpha beta gamma alpha', 16);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 8, n_layer: 1, n_head: 2, max_len: 16, matryoshka_dims: [4] }), new Rng(1)).eval();
    const e = new TextEmbedder(model, tok, 'mem');
    const ids = [...tok.encode('alpha zeta beta')];
    assert.ok(ids.includes(0), 'the tokenizer maps zeta to <unk> (id 0)');
    assert.deepEqual([...e.encode('alpha zeta beta')], ids.filter((id) => id !== 0));
    assert.deepEqual([...e.encode('zeta')], [0], 'nothing known: the text is still embedded');
    const [a, b, c] = e.embed(['alpha zeta', 'alpha omega', 'alpha beta']);
    assert.deepEqual([...a!], [...b!], 'which unknown word it was changes nothing');
    assert.notDeepEqual([...a!], [...c!]);
  });

  it('a query leaves out unknown words and the spaces they leave behind', () => {
    const tok = WordTokenizer.fromText('alpha beta gamma alpha', 16);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 8, n_layer: 1, n_head: 2, max_len: 16, matryoshka_dims: [4] }), new Rng(1)).eval();
    const e = new TextEmbedder(model, tok, 'mem');
    const ids = (t: string) => [...tok.encode(t)];
    assert.deepEqual([...e.encodeKnownWords('Which waterway runs past alpha?')], ids('alpha'));
    assert.deepEqual([...e.encodeKnownWords('alpha zeta; beta')], ids('alpha beta'));
    assert.deepEqual([...e.encodeKnownWords('alpha beta')], ids('alpha beta'), 'nothing unknown: unchanged');
    assert.deepEqual([...e.encodeKnownWords('zeta omega')], ids('zeta omega'), 'nothing known: embedded as it is');
    assert.deepEqual([...e.embedQuery('What of alpha?')], [...e.embed(['alpha'])[0]!]);
  });
});
