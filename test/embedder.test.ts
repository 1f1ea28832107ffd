import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fablesCorpus } from '../src/data/fables.js';
import { factCorpus } from '../src/data/fact_corpus.js';
import { inverseClozePairs, splitBySentence } from '../src/data/inverse_cloze.js';
import { passagePairs } from '../src/data/passage_pairs.js';
import { groupOf, splitPairs } from '../src/data/positive_pairs.js';
import { templatePairs } from '../src/data/template_pairs.js';
import { recallAtOne } from '../src/eval/recall.js';
import { loadEmbedder, saveEmbedder } from '../src/io/embedder_dir.js';
import { UserError } from '../src/util/errors.js';
import { embedTexts } from '../src/models/embed_texts.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { padBatch } from '../src/models/pad_batch.js';
import { noGrad } from '../src/tensor/autograd.js';
import { l2Normalize } from '../src/tensor/ops/l2_normalize.js';
import { meanPool } from '../src/tensor/ops/mean_pool.js';
import { Tensor } from '../src/tensor/tensor.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { infoNCE, MASKED, matryoshkaInfoNCE } from '../src/train/contrastive.js';
import { parseEmbedderOptions } from '../src/train/embedder_options.js';
import { trainEmbedder } from '../src/train/embedder_trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, gradCheck, randn, runAttn } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'attn-embed-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('embedder ops', () => {
  const rng = new Rng(3);

  it('mean pool averages the real positions only; padding values do not matter', () => {
    const x = randn([2, 4, 3], rng, 1, false);
    const pad = Uint8Array.from([0, 0, 1, 1, 0, 0, 0, 0]);
    const pooled = meanPool(x, pad);
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(pooled.data[c]! - (x.data[c]! + x.data[3 + c]!) / 2) < 1e-6);
      const all = [0, 1, 2, 3].reduce((s, t) => s + x.data[12 + t * 3 + c]!, 0) / 4;
      assert.ok(Math.abs(pooled.data[3 + c]! - all) < 1e-6);
    }
    x.data.fill(1e6, 6, 12); // the padded positions of row 0
    assertClose(meanPool(x, pad).data, pooled.data, 0);
  });

  it('mean pool gradient matches finite differences, and padding gets none', () => {
    const x = randn([2, 3, 4], rng);
    const pad = Uint8Array.from([0, 1, 1, 0, 0, 1]);
    gradCheck(() => meanPool(x, pad), [x]);
    x.grad = null;
    const out = meanPool(x, pad);
    out.grad = new Float32Array(out.size).fill(1);
    out.gradFn!.backward();
    assert.ok(x.grad!.subarray(4, 12).every((g) => g === 0));
  });

  it('weighted pool: each real position weighs its token weight over the row total; all-zero weights pool as the plain mean', () => {
    const x = randn([2, 3, 2], rng, 1, false);
    const pad = Uint8Array.from([0, 0, 1, 0, 0, 0]);
    const w = Float32Array.from([1, 3, 100, 0, 0, 0]);
    const pooled = meanPool(x, pad, w);
    for (let c = 0; c < 2; c++) assert.ok(Math.abs(pooled.data[c]! - (x.data[c]! * 0.25 + x.data[2 + c]! * 0.75)) < 1e-6);
    assertClose(pooled.data.subarray(2), meanPool(x, pad).data.subarray(2), 1e-6);
    const y = randn([2, 3, 2], rng);
    gradCheck(() => meanPool(y, pad, w), [y]);
  });

  it('l2Normalize gives unit rows, and its gradient matches finite differences', () => {
    const x = randn([3, 5], rng);
    const y = l2Normalize(x);
    for (let r = 0; r < 3; r++) assert.ok(Math.abs(Math.hypot(...y.data.subarray(r * 5, r * 5 + 5)) - 1) < 1e-6);
    gradCheck(() => l2Normalize(x), [x]);
  });

  it('InfoNCE equals the hand-computed value and its gradients check', () => {
    const a = randn([3, 4], rng);
    const p = randn([3, 4], rng);
    const unit = (t: Tensor, i: number) => {
      const v = Array.from(t.data.subarray(i * 4, i * 4 + 4));
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    let want = 0;
    for (let i = 0; i < 3; i++) {
      const s = [0, 1, 2].map((j) => unit(a, i).reduce((acc, x, k) => acc + x * unit(p, j)[k]!, 0) / 0.5);
      want += Math.log(s.reduce((acc, x) => acc + Math.exp(x), 0)) - s[i]!;
    }
    assert.ok(Math.abs(infoNCE(a, p, { temperature: 0.5, symmetric: false }).item() - want / 3) < 1e-5);
    gradCheck(() => matryoshkaInfoNCE(a, p, [2, 4], { temperature: 0.5, symmetric: true }).loss, [a, p]);
  });

  it('InfoNCE with hard negatives: extra columns for every anchor, a masked column counts as absent', () => {
    const a = randn([3, 4], rng);
    const c = randn([6, 4], rng);
    const unit = (t: Tensor, i: number) => {
      const v = Array.from(t.data.subarray(i * 4, i * 4 + 4));
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    const dot = (x: number[], y: number[]) => x.reduce((acc, v, k) => acc + v * y[k]!, 0);
    // Anchor 1 must not see column 3 (pair 0's negative is about its own document).
    const mask = new Float32Array(18);
    mask[1 * 6 + 3] = MASKED;
    let forward = 0;
    for (let i = 0; i < 3; i++) {
      const cols = [0, 1, 2, 3, 4, 5].filter((j) => !(i === 1 && j === 3));
      const s = cols.map((j) => dot(unit(a, i), unit(c, j)) / 0.5);
      forward += Math.log(s.reduce((acc, x) => acc + Math.exp(x), 0)) - dot(unit(a, i), unit(c, i)) / 0.5;
    }
    let backward = 0;
    for (let j = 0; j < 3; j++) {
      const s = [0, 1, 2].map((i) => dot(unit(a, i), unit(c, j)) / 0.5);
      backward += Math.log(s.reduce((acc, x) => acc + Math.exp(x), 0)) - s[j]!;
    }
    assert.ok(Math.abs(infoNCE(a, c, { temperature: 0.5, symmetric: false }, mask).item() - forward / 3) < 1e-5);
    assert.ok(Math.abs(infoNCE(a, c, { temperature: 0.5, symmetric: true }, mask).item() - (forward + backward) / 6) < 1e-5);
    gradCheck(() => matryoshkaInfoNCE(a, c, [2, 4], { temperature: 0.5, symmetric: true }, mask).loss, [a, c]);
    assert.throws(() => infoNCE(a, c, { temperature: 0.5, symmetric: false }, new Float32Array(9)), /mask/);
  });

  it('recall@1 counts an anchor whose own positive is the nearest', () => {
    const a = Float32Array.from([1, 0, 0, 1]);
    assert.equal(recallAtOne(a, Float32Array.from([0.9, 0.1, 0.1, 0.9]), 2, 2, 2), 1);
    assert.equal(recallAtOne(a, Float32Array.from([0.1, 0.9, 0.9, 0.1]), 2, 2, 2), 0);
  });
});

describe('pairs', () => {
  it('templates are deterministic paraphrases; the held-out split keeps groups whole', () => {
    const pairs = templatePairs(400, 5);
    assert.deepEqual(templatePairs(400, 5), pairs);
    assert.ok(pairs.every((p) => p.anchor !== p.positive && p.anchor.length > 0));
    const { train, heldOut } = splitPairs(pairs);
    assert.ok(heldOut.length > 10 && train.length > 300);
    const trainGroups = new Set(train.map(groupOf));
    assert.ok(heldOut.every((p) => !trainGroups.has(groupOf(p))));
  });

  it('passage windows come from one passage and do not overlap', () => {
    const text = fablesCorpus(60_000);
    const pairs = passagePairs(text, { passageWords: 40, windowWords: 15, count: 50, seed: 1 });
    for (const p of pairs) {
      assert.equal(p.anchor.split(' ').length, 15);
      assert.ok(!p.anchor.includes(p.positive) && !p.positive.includes(p.anchor));
    }
    assert.throws(() => passagePairs('too short', { passageWords: 40, windowWords: 15, count: 5, seed: 1 }), UserError);
  });
});

const tinyConfig = (vocab: number) => parseEmbedderConfig({ vocab_size: vocab, d_model: 16, n_layer: 1, n_head: 2, matryoshka_dims: [4, 8] });

describe('embedder model', () => {
  const tok = WordTokenizer.fromText('the red fox jumps over the lazy dog and a grey cat sleeps', 64);
  const model = new Embedder(tinyConfig(tok.vocabSize), new Rng(1));

  it('a padded sentence embeds as it does alone', () => {
    const short = tok.encode('the red fox');
    const long = tok.encode('a grey cat sleeps over the lazy dog');
    const alone = noGrad(() => model.forward(short, [1, short.length]));
    const b = padBatch([short, long], 64);
    const batched = noGrad(() => model.forward(b.ids, [b.B, b.T], b.padding));
    assertClose(batched.data.subarray(0, 16), alone.data, 1e-5);
  });

  it('embeddings are unit length at every dim, and the full size is always trained', () => {
    assert.deepEqual(model.config.matryoshka_dims, [4, 8, 16]);
    for (let dim = 1; dim <= 16; dim++) {
      for (const v of embedTexts(model, tok, ['the red fox', 'a lazy dog sleeps'], dim)) {
        assert.equal(v.length, dim);
        assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, `dim ${dim}`);
      }
    }
  });

  it('bad input: a dim too large, no texts, an empty text', () => {
    assert.throws(() => embedTexts(model, tok, ['x'], 17), (e: Error) => e instanceof UserError && /1\.\.16/.test(e.message));
    assert.throws(() => embedTexts(model, tok, ['x'], 0), UserError);
    assert.throws(() => embedTexts(model, tok, []), /no texts/);
    assert.throws(() => embedTexts(model, tok, ['ok', '']), /text 2 is empty/);
  });

  it('save and load give identical embeddings; missing or foreign directories are clear errors', () => {
    const dir = join(work, 'tiny');
    saveEmbedder(dir, model, tok);
    const loaded = loadEmbedder(dir);
    assert.deepEqual(loaded.config, model.config);
    const texts = ['the red fox jumps', 'a cat'];
    assert.deepEqual(embedTexts(loaded.model, loaded.tokenizer, texts, 8), embedTexts(model, tok, texts, 8));
    assert.throws(() => loadEmbedder(join(work, 'nope')), /does not exist/);
    const gpt = join(work, 'gpt');
    mkdirSync(gpt);
    writeFileSync(join(gpt, 'config.json'), JSON.stringify({ format: 'attn', model_type: 'attn-gpt' }));
    assert.throws(() => loadEmbedder(gpt), (e: Error) => e instanceof UserError && /not an embedder/.test(e.message));
  });
});

describe('training', () => {
  it('the loss falls and held-out recall@1 rises far above chance on a tiny generated set', () => {
    const { train, heldOut } = splitPairs(templatePairs(1200, 2));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [4, 8], batchSize: 16, steps: 30, lr: 3e-3, warmupSteps: 5, evalInterval: 30, evalPairs: 60 });
    const losses: number[] = [];
    const s = trainEmbedder({ train, heldOut, options }, { onStep: (i) => losses.push(i.loss) });
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(tail < head * 0.8, `loss ${head} → ${tail}`);
    const chance = 1 / 60;
    for (const [dim, r] of s.recall) assert.ok(r > 5 * chance, `recall@1 at ${dim} is ${r}`);
  });
});

describe('training with hard negatives', () => {
  it('each batch embeds the pairs\' negatives as extra columns, and the loss falls', () => {
    const docs = factCorpus({ towns: 12, questionsPerTown: 1, seed: 2 }).documents.map((d) => d.text);
    const { train, heldOut } = splitBySentence(inverseClozePairs(docs, { passageWords: 24, count: 600, seed: 1, keyBy: 'document', hardNegatives: true }), 0.1);
    assert.ok(train.every((p) => p.negative && p.negativeKey !== p.key));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [8], batchSize: 6, steps: 40, lr: 3e-3, warmupSteps: 5, evalInterval: 40, evalPairs: 12, temperature: 0.1, spaceTokens: false });
    const losses: number[] = [];
    const s = trainEmbedder({ train, heldOut, options }, { onStep: (i) => losses.push(i.loss) });
    // At the first step (the same model, nearly uniform scores) the loss is about ln(columns): with the negatives each
    // anchor chooses among 2B, not B (the symmetric term stays B-way): ≈ (ln 12 + ln 6) / 2 against ln 6.
    const plain = train.map(({ negative: _n, negativeKey: _k, ...p }) => p);
    const first: number[] = [];
    trainEmbedder({ train: plain, heldOut, options: { ...options, steps: 1 } }, { onStep: (i) => first.push(i.loss) });
    assert.ok(losses[0]! > first[0]! + 0.2, `first loss ${losses[0]} with negatives against ${first[0]} without`);
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(tail < head * 0.8, `loss ${head} → ${tail}`);
    assert.ok([...s.recall.values()].every((r) => r >= 0 && r <= 1));
  });
});

describe('IDF pooling', () => {
  it('weights rare tokens over common ones, survives save and load, and trains', () => {
    const { train, heldOut } = splitPairs(templatePairs(400, 2));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [8], batchSize: 8, steps: 3, evalInterval: 3, evalPairs: 20, pooling: 'idf' });
    const s = trainEmbedder({ train, heldOut, options });
    const table = s.model.config.token_weights!;
    assert.equal(table.length, s.tokenizer.vocabSize);
    const space = s.tokenizer.encode(' ')[0]!;
    const rare = Math.max(...table);
    assert.ok(table[space]! < 0.1 * rare, `the space weighs ${table[space]} (rarest ${rare})`);
    const dir = join(work, 'idf');
    saveEmbedder(dir, s.model, s.tokenizer);
    const loaded = loadEmbedder(dir);
    assert.deepEqual(loaded.config.token_weights, table);
    assert.deepEqual(embedTexts(loaded.model, loaded.tokenizer, ['a b'], 8), embedTexts(s.model, s.tokenizer, ['a b'], 8));
    assert.throws(() => parseEmbedderConfig({ ...loaded.config, token_weights: [1] }), /one weight per vocabulary id/);
  });
});

describe('word tokens without spaces', () => {
  it('spaceTokens false: the tokenizer makes no space tokens, and the model saves, loads and trains on it', () => {
    const { train, heldOut } = splitPairs(templatePairs(400, 2));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [8], batchSize: 8, steps: 3, evalInterval: 3, evalPairs: 20, spaceTokens: false });
    const s = trainEmbedder({ train, heldOut, options });
    const text = train[0]!.anchor;
    assert.equal(s.tokenizer.encode(text).length, text.match(/[\p{L}\p{M}\p{N}_]+|[^\p{L}\p{M}\p{N}_\s]/gu)!.length, 'one token per word or mark');
    const dir = join(work, 'nospace');
    saveEmbedder(dir, s.model, s.tokenizer);
    const loaded = loadEmbedder(dir);
    assert.deepEqual(loaded.tokenizer.encode(text), s.tokenizer.encode(text));
    assert.deepEqual(embedTexts(loaded.model, loaded.tokenizer, [text], 8), embedTexts(s.model, s.tokenizer, [text], 8));
    assert.equal(parseEmbedderOptions({}).spaceTokens, true, 'space tokens by default');
    assert.throws(() => parseEmbedderOptions({ tokenizer: 'bpe', spaceTokens: false }), /only the word tokenizer/);
  });

  it('lowercase: the tokenizer folds case, training and after loading alike', () => {
    const { train, heldOut } = splitPairs(templatePairs(400, 2));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [8], batchSize: 8, steps: 3, evalInterval: 3, evalPairs: 20, spaceTokens: false, lowercase: true });
    const s = trainEmbedder({ train, heldOut, options });
    const text = train[0]!.anchor.replace(/^./, (c) => c.toUpperCase());
    assert.ok(/\p{Lu}/u.test(text));
    assert.deepEqual(s.tokenizer.encode(text.toUpperCase()), s.tokenizer.encode(text));
    assert.ok(!s.tokenizer.encode(text).includes(0));
    const dir = join(work, 'lower');
    saveEmbedder(dir, s.model, s.tokenizer);
    const loaded = loadEmbedder(dir);
    assert.deepEqual(embedTexts(loaded.model, loaded.tokenizer, [text.toUpperCase()], 8), embedTexts(s.model, s.tokenizer, [text], 8));
    assert.equal(parseEmbedderOptions({}).lowercase, false, 'case kept by default');
    assert.throws(() => parseEmbedderOptions({ tokenizer: 'bpe', lowercase: true }), /only the word tokenizer can fold case/);
  });
});

describe('attn embed CLI', () => {
  const attn = (args: string[]) => runAttn(['embed', ...args], work);

  it('trains without Matryoshka, evaluates, embeds (JSON lines and TSV), and rejects bad input in one line', () => {
    const out = join(work, 'cli');
    const t = attn(['train', '--out', out, '--pairs', '600', '--steps', '4', '--d-model', '16', '--heads', '2', '--layers', '1', '--matryoshka', 'none', '--eval-pairs', '20', '--backend', 'js']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^16 \(full\)\t[01]\.\d{3}$/m);
    const e = attn(['eval', '--model', out, '--dims', '4,16', '--eval-pairs', '20']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /^4\t/m);
    const j = attn(['--model', out, '--dim', '4', 'the red fox', 'a dog']);
    assert.equal(j.code, 0, j.stderr);
    const rows = j.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; embedding: number[] });
    assert.deepEqual(rows.map((r) => r.text), ['the red fox', 'a dog']);
    assert.ok(Math.abs(Math.hypot(...rows[0]!.embedding) - 1) < 1e-5);
    const tsv = attn(['text', '--model', out, '--format', 'tsv', 'hello']);
    assert.equal(tsv.stdout.split('\t').length, 17);
    for (const [args, pattern] of [
      [['--model', out, '--dim', '32', 'x'], /--dim 32: .*1\.\.16/],
      [['--model', out], /at least one TEXT/],
      [['--model', join(work, 'missing'), 'x'], /does not exist/],
    ] as const) {
      const r = attn([...args]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
  it('training.json records --data by absolute path: eval works from another directory, and a moved file is named with the flags that give it again', () => {
    const here = join(work, 'data-cwd');
    mkdirSync(here);
    writeFileSync(join(here, 'input.txt'), fablesCorpus(20_000));
    const out = join(work, 'emb-data');
    const t = runAttn(['embed', 'train', '--data', 'input.txt', '--out', out, '--pairs', '200', '--steps', '2', '--d-model', '16', '--heads', '2', '--layers', '1', '--eval-pairs', '10', '--backend', 'js'], here);
    assert.equal(t.code, 0, t.stderr);
    const e = attn(['eval', '--model', out, '--eval-pairs', '10']); // from another directory
    assert.equal(e.code, 0, e.stderr);
    renameSync(join(here, 'input.txt'), join(here, 'moved.txt'));
    const gone = attn(['eval', '--model', out, '--eval-pairs', '10']);
    assertUserError(gone, /training\.json: the training text .*input\.txt is not there; pass it as --data FILE --pairs 200 --data-seed 1 --passage-words 64 --window-words 24$/m);
    const again = attn(['eval', '--model', out, '--eval-pairs', '10', '--data', join(here, 'moved.txt'), '--pairs', '200', '--data-seed', '1', '--passage-words', '64', '--window-words', '24']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, e.stdout, 'the same held-out pairs');
  });
});
