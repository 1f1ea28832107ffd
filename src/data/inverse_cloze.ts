import { Rng } from '../util/rng.js';
import { splitPairs, type Pair, type PairSplit } from './positive_pairs.js';
import { sentences } from './sentences.js';

/**
 * The inverse cloze task (Lee, Chang & Toutanova 2019): pairs for training a
 * retriever from unlabelled documents. A passage is cut out of a document; one
 * of its sentences becomes the "query", and the passage without that
 * sentence the positive — so the model learns to find the passage a
 * sentence belongs to from its context, much as a question must find the
 * passage that answers it. Other passages in the batch are the negatives.
 * In a fraction of pairs (`keepRate`, 10% in the paper) the sentence stays in
 * its passage, so word overlap is still worth something.
 */

export interface InverseClozeOptions {
  /** Most words per passage (passages are whole sentences of one document). */
  passageWords: number;
  /** Pairs to draw; each draws a random passage and sentence. */
  count: number;
  seed: number;
  keepRate?: number;
  /**
   * What a pair is keyed by — what the batch never puts twice, so what is
   * never a negative of the pair: its passage (the default, as in the paper:
   * another passage of the same document is a negative), or its document
   * (the passages of one document are about one subject; for a retriever
   * that finds the document about a thing, they are not wrong answers).
   */
  keyBy?: 'passage' | 'document';
  /**
   * The fraction of pairs whose query is two sentences from two different
   * passages of one document (in random order), and whose positive is one
   * of those passages without its sentence. A single sentence never shows
   * that facts told in different passages belong together; a question that
   * names a thing by two of its facts needs exactly that. 0 by default.
   */
  multiFactRate?: number;
  /**
   * Documents per training group, grouped with the documents most like them
   * by the words they share (`neighbourGroups`), so that a batch — which
   * takes whole groups — holds towns that share a river or a trade as each
   * other's negatives, and the model must tell them apart by the rest of
   * their facts. Random in-batch negatives rarely share anything, and a
   * model that matches one shared fact already wins against them. 1 (the
   * default): each document is a group of its own.
   */
  neighbours?: number;
  /**
   * The fraction of two-sentence (multi-fact) queries that describe the
   * document instead of naming it: each sentence cut to its distinctive
   * words (`distinctiveWords`: in at most a fifth of the documents), less
   * the words of the document's title (its first line, when a Markdown
   * heading). Most sentences of a document about a town name the town, so a
   * model trained on them alone learns to find the name; a question that
   * names the town by two of its facts has only those facts. Built from the
   * corpus text alone. 0 by default.
   */
  describedRate?: number;
  /**
   * The fraction of two-sentence (multi-fact) pairs whose positive keeps the
   * query's sentence from that passage (as `keepRate` does for one-sentence
   * pairs), so that the facts the query and its passage share count. Drawn
   * from its own generator: the pairs are those of 0 but for the positives it
   * keeps whole. 0 by default.
   */
  multiKeepRate?: number;
  /**
   * Give every pair a hard negative mined by BM25: the passage of another
   * document that BM25 ranks first for the pair's query (`bm25Negatives`) —
   * a town on the same river, in the same trade, with the same dish, or its
   * twin. Random in-batch negatives rarely share a rare word with the query;
   * these are the confusers BM25 itself resolves by adding up rare words.
   * Never a passage of the query's own document. The pairs themselves are
   * those without it (no random draw is used). false by default. 'facts':
   * the query's own title words (its town's name, from the document's `#`
   * heading) are left out of the BM25 query, so the negative is a document
   * that shares the query's facts — a river, a trade, a dish — rather than
   * one that names the town (its twin).
   */
  hardNegatives?: boolean | 'facts';
  /**
   * The fraction of two-sentence (multi-fact) queries left without the
   * document's title words (its `#` heading: a town's name) but otherwise
   * whole — "was founded in 1654. The mayor is Kreimun Rubai." — so the
   * two facts, with the words that say which facts they are, must find the
   * passage without the name most sentences carry. `describedRate` cuts a
   * query to its rare words; this keeps the sentence. Drawn from its own
   * generator: the pairs are those of 0 but for the queries it cuts; a
   * described query is left as it is. 0 by default.
   */
  untitledRate?: number;
  /**
   * Title pseudo-queries, as a share of `count`: that many pairs more, each
   * the document's title alone (its `#` heading: a town's name) as the query
   * and one of its passages, whole, as the positive. A sentence that names
   * the document — "Its twin town is Podomath." in another town's document —
   * is a query for the document it stands in, so a name also points at every
   * document that mentions it; these pairs say which document a name is
   * about (Chang et al. 2020 pre-train retrievers on title-to-passage pairs
   * of this kind). Drawn after the other pairs, from their own generator:
   * the other pairs are those of 0. 0 by default.
   */
  titleRate?: number;
  /**
   * The share of two-sentence (multi-fact) queries whose second sentence
   * comes from the query's own passage, not another passage of the document;
   * the positive keeps that sentence, so (with `multiKeepRate`) it holds both
   * facts. A question that names two facts of one chunk ("the cheese making
   * town on the Glouzur") is best answered by the chunk that has both, not by
   * the chunks that share one of them; the other two-sentence queries teach
   * which facts of different passages belong together. Drawn from its own
   * generator: the pairs are those of 0 but for the sentence it swaps. 0 by
   * default.
   */
  samePassageRate?: number;
}

interface Passage {
  doc: number;
  sentences: string[];
}

/** Passages of whole sentences, at most passageWords words, never crossing documents. */
export function passagesOf(docs: readonly string[], passageWords: number): Passage[] {
  const out: Passage[] = [];
  docs.forEach((text, doc) => {
    let cur: string[] = [];
    let words = 0;
    for (const s of sentences(text)) {
      const sentence = text.slice(s.start, s.end).replace(/\s+/g, ' ');
      const n = sentence.split(' ').length;
      if (cur.length > 0 && words + n > passageWords) {
        out.push({ doc, sentences: cur });
        cur = [];
        words = 0;
      }
      cur.push(sentence);
      words += n;
    }
    if (cur.length > 0) out.push({ doc, sentences: cur });
  });
  return out;
}

/**
 * Documents in groups of `size`, each document with those most like it:
 * similarity is the summed inverse document frequency, ln(N / df), of the words two
 * documents share (BM25's weighting without term counts or lengths; words in
 * more than a tenth of the documents are left out, as they say nothing of
 * which town it is). Greedy: documents in a random order each start a group
 * of themselves and their most similar documents not yet grouped. Text only:
 * no question or label is used.
 */
export function neighbourGroups(docs: readonly string[], size: number, rng: Rng): number[] {
  const words = docs.map((t) => new Set(t.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []));
  const postings = new Map<string, number[]>();
  words.forEach((ws, d) => ws.forEach((w) => (postings.get(w) ?? postings.set(w, []).get(w)!).push(d)));
  const N = docs.length;
  const group = new Array<number>(N).fill(-1);
  const order = docs.map((_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let groups = 0;
  for (const d of order) {
    if (group[d] !== -1) continue;
    const score = new Map<number, number>();
    for (const w of words[d]!) {
      const ds = postings.get(w)!;
      if (ds.length > Math.max(2, N / 10)) continue;
      const idf = Math.log(N / ds.length);
      for (const e of ds) if (e !== d && group[e] === -1) score.set(e, (score.get(e) ?? 0) + idf);
    }
    const near = [...score].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, size - 1).map(([e]) => e);
    for (const e of [d, ...near]) group[e] = groups;
    groups++;
  }
  return group;
}

/**
 * A document's sentence cut to the words that tell documents apart: those in
 * at most a fifth of the documents (and at most 2 where there are fewer than
 * 10) — names, numbers, a trade, a dish, but not the words every document
 * phrases its facts with — less `drop` (the document's own title words).
 * Empty when none is left.
 */
export function distinctiveWords(sentence: string, df: ReadonlyMap<string, number>, documents: number, drop: ReadonlySet<string>): string {
  const max = Math.max(2, documents / 5);
  return (sentence.match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => (df.get(w.toLowerCase()) ?? 0) <= max && !drop.has(w.toLowerCase())).join(' ');
}

/** How many documents hold each word (lower-cased), and each document's heading (its first line, when a `#` heading; '' otherwise) and its title words. */
function documentWords(docs: readonly string[]): { df: Map<string, number>; headings: string[]; titles: Array<Set<string>> } {
  const df = new Map<string, number>();
  for (const t of docs) for (const w of new Set(t.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])) df.set(w, (df.get(w) ?? 0) + 1);
  const headings = docs.map((t) => {
    const first = t.trimStart().split('\n', 1)[0]!;
    return first.startsWith('#') ? first.replace(/^#+\s*/, '').trim() : '';
  });
  const titles = headings.map((h) => new Set(h.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []));
  return { df, headings, titles };
}

export function inverseClozePairs(docs: readonly string[], o: InverseClozeOptions): Pair[] {
  const passages = passagesOf(docs, o.passageWords).filter((p) => p.sentences.length >= 2);
  if (passages.length < 2) throw new Error(`the corpus has ${passages.length} passages of two or more sentences: the inverse cloze task needs at least 2`);
  const keep = o.keepRate ?? 0.1;
  const rng = new Rng(o.seed);
  const multi = o.multiFactRate ?? 0;
  const described = o.describedRate ?? 0;
  if (described < 0 || described > 1) throw new Error(`describedRate must be in [0, 1] (got ${described})`);
  const untitled = o.untitledRate ?? 0;
  if (untitled < 0 || untitled > 1) throw new Error(`untitledRate must be in [0, 1] (got ${untitled})`);
  const titled = o.titleRate ?? 0;
  if (!(titled >= 0)) throw new Error(`titleRate must be ≥ 0 (got ${titled})`);
  const words = described > 0 || untitled > 0 || titled > 0 ? documentWords(docs) : undefined;
  const untitle = new Rng(o.seed + 4);
  const same = o.samePassageRate ?? 0;
  if (!(same >= 0 && same <= 1)) throw new Error(`samePassageRate must be in [0, 1] (got ${same})`);
  const sameDraw = new Rng(o.seed + 6);
  // Its own draws, so the pairs are those of describedRate 0 but for the queries it cuts.
  const describe = new Rng(o.seed + 2);
  const multiKeep = o.multiKeepRate ?? 0;
  if (multiKeep < 0 || multiKeep > 1) throw new Error(`multiKeepRate must be in [0, 1] (got ${multiKeep})`);
  const keepDraw = new Rng(o.seed + 3);
  // Each document's group: itself, or it and the documents most like it (neighbourGroups).
  const near = (o.neighbours ?? 1) > 1 ? neighbourGroups(docs, o.neighbours!, new Rng(o.seed + 1)) : undefined;
  const groupOfDoc = (doc: number) => (near ? `near ${near[doc]}` : `doc ${doc}`);
  // The passages of each document, for the two-passage queries.
  const byDoc = new Map<number, number[]>();
  if (multi > 0) passages.forEach((p, i) => (byDoc.get(p.doc) ?? byDoc.set(p.doc, []).get(p.doc)!).push(i));
  const pairs: Pair[] = [];
  // Each pair's document, for the mined negatives.
  const pairDoc: number[] = [];
  for (let i = 0; i < o.count; i++) {
    const p = i < passages.length ? i : rng.int(passages.length);
    const { sentences: ss, doc } = passages[p]!;
    const others = multi > 0 ? byDoc.get(doc)!.filter((q) => q !== p) : [];
    if (others.length > 0 && rng.random() < multi) {
      const os = passages[others[rng.int(others.length)]!]!.sentences;
      const s = rng.int(ss.length);
      let other = os[rng.int(os.length)]!;
      // A second sentence of the same passage (ss has two or more): only sentence s may leave the positive, so it stays.
      if (same > 0 && sameDraw.random() < same) other = ss[(s + 1 + sameDraw.int(ss.length - 1)) % ss.length]!;
      let [first, second] = rng.random() < 0.5 ? [ss[s]!, other] : [other, ss[s]!];
      let cutDone = false;
      if (words && described > 0 && describe.random() < described) {
        // Described, not named: only what tells this town from the others, without its name (falls back to the sentences when a cut leaves nothing).
        const cut = [first, second].map((x) => distinctiveWords(x, words.df, docs.length, words.titles[doc]!));
        if (cut[0] && cut[1]) [first, second] = cut as [string, string];
        cutDone = true;
      }
      let anchor = `${first} ${second}`;
      if (words && untitled > 0 && untitle.random() < untitled && !cutDone) {
        // The same two sentences without the town's name; a sentence that was only the name (the heading) goes.
        const cut = [first, second].map((x) => withoutWords(x, words.titles[doc]!)).filter((x) => x !== '');
        if (cut.length > 0) anchor = cut.join(' ');
      }
      const kept = multiKeep > 0 && keepDraw.random() < multiKeep;
      pairs.push({ anchor, positive: (kept ? ss : ss.filter((_, j) => j !== s)).join(' '), key: o.keyBy === 'document' ? `document ${doc}` : `passage ${p}`, group: groupOfDoc(doc) });
      pairDoc.push(doc);
      continue;
    }
    const s = rng.int(ss.length);
    const rest = rng.random() < keep ? ss : ss.filter((_, j) => j !== s);
    // Keyed by passage (or document): two pairs of one key are never each other's negatives; a document is one group.
    pairs.push({ anchor: ss[s]!, positive: rest.join(' '), key: o.keyBy === 'document' ? `document ${doc}` : `passage ${p}`, group: groupOfDoc(doc) });
    pairDoc.push(doc);
  }
  if (words && titled > 0) {
    const draw = new Rng(o.seed + 5);
    const headed = passages.map((_, i) => i).filter((i) => words.titles[passages[i]!.doc]!.size > 0);
    if (headed.length === 0) throw new Error('titleRate needs documents with a `#` heading: none of these has one');
    for (let n = Math.round(titled * o.count), i = 0; i < n; i++) {
      const p = headed[draw.int(headed.length)]!;
      const { sentences: ss, doc } = passages[p]!;
      pairs.push({ anchor: words.headings[doc]!, positive: ss.join(' '), key: o.keyBy === 'document' ? `document ${doc}` : `passage ${p}`, group: groupOfDoc(doc) });
      pairDoc.push(doc);
    }
  }
  if (o.hardNegatives) {
    const titles = o.hardNegatives === 'facts' ? documentWords(docs).titles : undefined;
    const query = (text: string, doc: number) => (titles ? wordsOf(text).filter((w) => !titles[doc]!.has(w)).join(' ') : text);
    const mined = bm25Negatives(passages.map((q) => ({ doc: q.doc, text: q.sentences.join(' ') })), pairs.map((q, i) => ({ query: query(q.anchor, pairDoc[i]!), doc: pairDoc[i]! })));
    pairs.forEach((q, i) => {
      const n = mined[i]!;
      q.negative = passages[n]!.sentences.join(' ');
      q.negativeKey = o.keyBy === 'document' ? `document ${passages[n]!.doc}` : `passage ${n}`;
    });
  }
  return pairs;
}

/** A sentence less the given (lower-cased) words, the rest as it was, white space closed up. */
export function withoutWords(sentence: string, drop: ReadonlySet<string>): string {
  if (drop.size === 0) return sentence;
  return sentence
    .replace(/[\p{L}\p{N}]+/gu, (w) => (drop.has(w.toLowerCase()) ? '' : w))
    .replace(/\s+([.,;:!?'’])/g, '$1')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^[^\p{L}\p{N}]+/u, '');
}

const wordsOf = (t: string): string[] => t.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/**
 * For each query, the passage BM25 ranks first among the passages of the
 * other documents (k1 1.2, b 0.75, idf ln(1 + (N − df + ½) / (df + ½)) over the
 * passages): its index into `passages`. Ties go to the earlier passage; when
 * no passage of another document shares a word with the query, the first
 * passage of another document. Never a passage of the query's own document
 * (there must be at least two documents).
 */
export function bm25Negatives(passages: ReadonlyArray<{ doc: number; text: string }>, queries: ReadonlyArray<{ query: string; doc: number }>): number[] {
  const N = passages.length;
  const k1 = 1.2;
  const b = 0.75;
  const postings = new Map<string, Array<[number, number]>>();
  const lengths = new Float64Array(N);
  passages.forEach((p, i) => {
    const tf = new Map<string, number>();
    const ws = wordsOf(p.text);
    lengths[i] = ws.length;
    for (const w of ws) tf.set(w, (tf.get(w) ?? 0) + 1);
    for (const [w, n] of tf) (postings.get(w) ?? postings.set(w, []).get(w)!).push([i, n]);
  });
  const avg = lengths.reduce((a, x) => a + x, 0) / Math.max(1, N);
  const idf = new Map<string, number>();
  for (const [w, ps] of postings) idf.set(w, Math.log(1 + (N - ps.length + 0.5) / (ps.length + 0.5)));
  const scores = new Float64Array(N);
  const cache = new Map<string, number>();
  return queries.map(({ query, doc }) => {
    const key = `${doc}\u0000${query}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    scores.fill(0);
    for (const w of wordsOf(query)) {
      const ps = postings.get(w);
      if (!ps) continue;
      const weight = idf.get(w)!;
      for (const [i, n] of ps) scores[i]! += (weight * n * (k1 + 1)) / (n + k1 * (1 - b + (b * lengths[i]!) / avg));
    }
    let best = -1;
    for (let i = 0; i < N; i++) {
      if (passages[i]!.doc === doc) continue;
      if (best < 0 || scores[i]! > scores[best]!) best = i;
    }
    if (best < 0) throw new Error('hard negatives need passages of at least two documents');
    cache.set(key, best);
    return best;
  });
}

/**
 * The held-out split of a corpus the retriever will search: by query
 * sentence, not by document. Holding out whole documents (the usual split)
 * would leave a tenth of the corpus never trained on — the very documents
 * it must then find. Here every passage is trained on; the held-out
 * sentences are only never trained as queries, and measure how well
 * unseen sentences find their passages.
 */
export function splitBySentence(pairs: readonly Pair[], fraction = 0.1): PairSplit {
  return splitPairs(pairs, fraction, (p) => p.anchor);
}
