import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Linear } from '../src/nn/linear.js';
import { attentionText } from '../src/cli/attention_view.js';
import { taskFrom } from '../src/cli/seq2seq.js';
import type { Seq2SeqTask } from '../src/data/seq2seq_task.js';
import { parsePairsTSV, type TranslationPair } from '../src/data/translation_pairs.js';
import { crossAttentionMap, meanOverHeads } from '../src/generate/cross_attention.js';
import { translate } from '../src/generate/translate.js';
import { loadSeq2Seq, saveSeq2Seq } from '../src/io/seq2seq_dir.js';
import { beamSearch, greedyDecode, type NextTokenLogProbs } from '../src/models/seq2seq_decode.js';
import type { Transformer } from '../src/models/transformer.js';
import { DecoderLayer } from '../src/nn/decoder_layer.js';
import { noGrad } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { labelSmoothedCrossEntropy } from '../src/tensor/ops/label_smoothing.js';
import { slice } from '../src/tensor/ops/shape.js';
import type { PieceTokenizer } from '../src/tokenizers/piece.js';
import { makeBatch } from '../src/models/seq2seq_batch.js';
import { parseSeq2SeqOptions } from '../src/train/seq2seq_options.js';
import { buildSeq2Seq, trainSeq2Seq } from '../src/train/seq2seq_trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

describe('pairs files', () => {
  it('parses tab-separated pairs, skipping blank lines', () => {
    assert.deepEqual(parsePairsTSV('one\teins\n\r\ntwo\tzwei\r\n'), [{ source: 'one', target: 'eins' }, { source: 'two', target: 'zwei' }]);
  });

  it('names the line of a missing tab, an empty side or an extra tab', () => {
    assert.throws(() => parsePairsTSV('one\teins\ntwo zwei\n', 'p.tsv'), /^UserError: p\.tsv:2: no tab/);
    assert.throws(() => parsePairsTSV('one\teins\n\n\tdrei\n', 'p.tsv'), /p\.tsv:3: the source \(before the tab\) is empty/);
    assert.throws(() => parsePairsTSV('one\t \n', 'p.tsv'), /p\.tsv:1: the target \(after the tab\) is empty/);
    assert.throws(() => parsePairsTSV('a\tb\tc\n', 'p.tsv'), /p\.tsv:1: 2 tabs/);
    assert.throws(() => parsePairsTSV('\n\n', 'p.tsv'), /p\.tsv: no pairs/);
  });
});

describe('label smoothing', () => {
  const rng = new Rng(3);

  it('equals cross-entropy at ε = 0, ignoring padding', () => {
    const logits = randn([2, 3, 5], rng);
    const targets = Int32Array.from([1, 4, 0, 2, 0, 3]);
    const a = labelSmoothedCrossEntropy(logits, targets, { smoothing: 0, ignoreIndex: 0 }).item();
    const b = crossEntropy(logits, targets, { ignoreIndex: 0 }).item();
    assert.ok(Math.abs(a - b) < 1e-5, `${a} vs ${b}`);
  });

  it('is −Σ q·log softmax with q = (1 − ε)·onehot + ε/V, averaged over the rows not ignored (the definition, in doubles)', () => {
    const logits = randn([3, 7], rng);
    const targets = Int32Array.from([6, 0, 2]);
    const eps = 0.1;
    let want = 0;
    for (const r of [0, 2]) {
      const z = Array.from(logits.data.subarray(r * 7, r * 7 + 7));
      const lse = Math.log(z.reduce((s, v) => s + Math.exp(v), 0));
      want += z.reduce((s, v, j) => s - ((j === targets[r] ? 1 - eps : 0) + eps / 7) * (v - lse), 0);
    }
    const got = labelSmoothedCrossEntropy(logits, targets, { smoothing: eps, ignoreIndex: 0 }).item();
    assert.ok(Math.abs(got - want / 2) < 1e-5, `${got} vs ${want / 2}`);
  });

  it('gradients match finite differences', () => {
    const logits = randn([4, 6], rng);
    gradCheck(() => labelSmoothedCrossEntropy(logits, Int32Array.from([2, 0, 5, 1]), { smoothing: 0.1, ignoreIndex: 0 }), [logits]);
  });
});

describe('decoder layer', () => {
  for (const norm of ['post', 'pre'] as const) {
    it(`gradients match finite differences (${norm}-norm, padded target and source)`, () => {
      const rng = new Rng(11);
      const layer = new DecoderLayer({ d_model: 4, n_head: 2, d_ff: 8, dropout: 0, norm, activation: 'gelu' }, rng);
      const x = randn([2, 3, 4], rng);
      const memory = randn([2, 4, 4], rng);
      const masks = { tgtPadding: Uint8Array.from([0, 0, 0, 0, 0, 1]), srcPadding: Uint8Array.from([0, 0, 0, 1, 0, 0, 1, 1]) };
      gradCheck(() => layer.forward(x, memory, masks), [x, memory, (layer.cross_attn.k_proj as Linear).weight, (layer.self_attn.q_proj as Linear).weight, (layer.ff.fc1 as Linear).weight]);
    });
  }

  it('a position does not see later target positions', () => {
    const rng = new Rng(12);
    const layer = new DecoderLayer({ d_model: 4, n_head: 2, d_ff: 8, dropout: 0, norm: 'post', activation: 'relu' }, rng);
    const memory = randn([1, 3, 4], rng, 1, false);
    const x = randn([1, 4, 4], rng, 1, false);
    const short = noGrad(() => layer.forward(slice(x, 1, 0, 2), memory));
    const full = noGrad(() => layer.forward(x, memory));
    assertClose(full.data.subarray(0, 8), short.data, 1e-5);
  });
});

describe('transformer options', () => {
  const pairs: TranslationPair[] = [{ source: 'ab', target: 'xyz' }, { source: 'b', target: 'y' }];
  const task: Seq2SeqTask = { source: { data: 't', reverse: false }, sample: () => pairs, heldOut: () => pairs, texts: () => ['abxyz'], pieces: [] };
  for (const [positions, norm, shareEmbeddings] of [['rope', 'pre', false], ['learned', 'post', true], ['sinusoidal', 'pre', true]] as const) {
    it(`${positions} positions, ${norm}-norm${shareEmbeddings ? ', shared embeddings' : ''}: the loss falls, decodeStep is decode's last position`, () => {
      const { model, tokenizer } = buildSeq2Seq(task, parseSeq2SeqOptions({ layers: 1, dModel: 8, heads: 2, dFf: 16, positions, norm, shareEmbeddings }));
      const b = makeBatch(tokenizer, pairs, model.config.max_length);
      const first = model.forward(b.src, b.tgtIn, b.targets, { labelSmoothing: 0.1 }).loss!.item();
      const r = trainSeq2Seq({ task, options: parseSeq2SeqOptions({ layers: 1, dModel: 8, heads: 2, dFf: 16, positions, norm, shareEmbeddings, steps: 30, lr: 1e-2, warmup: 0, evalInterval: 100 }) });
      assert.ok(r.loss < first, `${r.loss} < ${first}`);
      model.eval();
      const enc = noGrad(() => model.encode(b.src));
      const all = noGrad(() => model.decode(enc, b.tgtIn));
      const step = noGrad(() => model.decodeStep(enc, b.tgtIn));
      const [B, T] = b.tgtIn.shape;
      const V = model.config.vocab_size;
      for (let i = 0; i < B; i++) assertClose(step.data.subarray(i * V, (i + 1) * V), all.data.subarray(((i + 1) * T - 1) * V, (i + 1) * T * V), 1e-6);
    });
  }
});

describe('beam search', () => {
  // Tokens: 0 pad, 1 bos, 2 eos, 3 A, 4 B. A looks better first, but B then EOS is the more probable sentence.
  const table: Record<string, number[]> = { '1': [0, 0, 0, 0.6, 0.4], '1,3': [0, 0, 0.4, 0.3, 0.3], '1,4': [0, 0, 0.9, 0.05, 0.05] };
  const next: NextTokenLogProbs = (rows, pre, t) => {
    const out = new Float32Array(rows.length * 5);
    for (let i = 0; i < rows.length; i++) {
      const p = table[Array.from(pre.subarray(i * t, (i + 1) * t)).join()] ?? [0, 0, 1, 0, 0];
      p.forEach((v, j) => (out[i * 5 + j] = Math.log(Math.max(v, 1e-9))));
    }
    return out;
  };
  const o = { bos: 1, eos: 2, maxLength: 5 };

  it('finds a more probable sequence than greedy when one exists', () => {
    const greedy = greedyDecode(next, 1, o)[0]!;
    const beam = beamSearch(next, 0, { ...o, beamWidth: 2, lengthPenalty: 0 });
    assert.deepEqual(greedy.tokens, [3]);
    assert.deepEqual(beam.tokens, [4]);
    assert.ok(beam.logProb > greedy.logProb);
  });

  it('width 1 is greedy', () => {
    const beam = beamSearch(next, 0, { ...o, beamWidth: 1, lengthPenalty: 0.6 });
    assert.deepEqual(beam.tokens, greedyDecode(next, 1, o)[0]!.tokens);
  });
});

describe('a tiny translation model', () => {
  const pairs: TranslationPair[] = [
    { source: 'one', target: 'eins' },
    { source: 'two', target: 'zwei' },
    { source: 'three', target: 'drei' },
    { source: 'seven', target: 'sieben' },
    { source: 'twenty-one', target: 'einundzwanzig' },
    { source: 'forty-two', target: 'zweiundvierzig' },
  ];
  const task: Seq2SeqTask = {
    source: { data: 'tiny.tsv', reverse: false },
    sample: () => pairs,
    heldOut: (n) => pairs.slice(0, n),
    texts: () => pairs.flatMap((p) => [p.source, p.target]),
    pieces: [],
  };
  const options = parseSeq2SeqOptions({ layers: 1, dModel: 32, heads: 2, dFf: 64, steps: 120, batchSize: pairs.length, lr: 5e-3, minLr: 1e-3, warmup: 10, labelSmoothing: 0, evalInterval: 1000, evalSize: pairs.length });
  let dir: string;
  let model: Transformer;
  let tokenizer: PieceTokenizer;
  let summary: ReturnType<typeof trainSeq2Seq>;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'attn-seq2seq-'));
    summary = trainSeq2Seq({ task, options, out: join(dir, 'model') });
    ({ model, tokenizer } = loadSeq2Seq(join(dir, 'model')));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('overfits a handful of pairs and greedy-decodes them exactly', () => {
    assert.equal(summary.exact_match, 1, JSON.stringify(summary));
    assert.deepEqual(translate(model, tokenizer, pairs.map((p) => p.source)).map((t) => t.text), pairs.map((p) => p.target));
  });

  it('beam width 1 gives greedy\'s output and score; a wider beam never scores lower here', () => {
    const greedy = translate(model, tokenizer, pairs.map((p) => p.source));
    pairs.forEach((p, i) => {
      const [one] = translate(model, tokenizer, [p.source], { beamWidth: 1 });
      assert.deepEqual(one!.ids, greedy[i]!.ids);
      assert.ok(Math.abs(one!.logProb - greedy[i]!.logProb) < 1e-4);
      const [four] = translate(model, tokenizer, [p.source], { beamWidth: 4, lengthPenalty: 0 });
      assert.ok(four!.logProb >= greedy[i]!.logProb - 1e-4);
    });
  });

  it('save and load give identical outputs', () => {
    const { model: fresh } = buildSeq2Seq(task, options);
    const again = join(dir, 'again');
    saveSeq2Seq(again, { model, tokenizer, task: task.source });
    const loaded = loadSeq2Seq(again).model;
    const b = makeBatch(tokenizer, pairs, model.config.max_length);
    const a = noGrad(() => model.forward(b.src, b.tgtIn).logits.data);
    assert.deepEqual(noGrad(() => loaded.forward(b.src, b.tgtIn).logits.data), a);
    assert.notDeepEqual(noGrad(() => fresh.eval().forward(b.src, b.tgtIn).logits.data), a);
  });

  it('cross-attention: one row per output token (EOS too), one column per source token, rows sum to 1', () => {
    const [t] = translate(model, tokenizer, ['twenty-one']);
    const map = crossAttentionMap(model, tokenizer, 'twenty-one', t!.ids);
    assert.equal(map.sourceTokens.length, 'twenty-one'.length + 1);
    assert.deepEqual(map.targetTokens, [...'einundzwanzig', '<eos>']);
    const m = meanOverHeads(map);
    assert.equal(m.length, map.targetTokens.length);
    for (const row of m) {
      assert.equal(row.length, map.sourceTokens.length);
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    }
    const text = attentionText(m, map.sourceTokens, map.targetTokens).split('\n');
    assert.equal(text.length, 2 + map.targetTokens.length);
    assert.ok(text[0]!.includes('<eos>'));
  });

  it('attn translate --show-attention prints the translation and its heat map', () => {
    const r = spawnSync(process.execPath, [CLI, 'translate', '--model', join(dir, 'model'), '--show-attention', '--beam', '1', 'forty-two', 'one'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'zweiundvierzig');
    // translation, blank, title, header, rule, one row per output token + EOS
    const rows = lines.slice(5, 5 + 15);
    assert.ok(rows.every((l) => l.includes('│')), r.stdout);
    assert.ok(r.stdout.includes('\neins\n'));
  });

  it('seq2seq eval: the pairs file by its absolute path, --data, --beam and --limit checked, exact_match null without held-out pairs', () => {
    const tsv = join(dir, 'pairs.tsv');
    writeFileSync(tsv, pairs.map((p) => `${p.source}\t${p.target}`).join('\n') + '\n');
    assert.deepEqual(taskFrom({ data: relative(process.cwd(), tsv) }).source, { data: resolve(tsv), reverse: false });
    const evalCli = (...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, 'seq2seq', 'eval', '--model', join(dir, 'model'), ...args], { encoding: 'utf8', cwd: dir });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    // The model was saved with the relative path tiny.tsv, which is not there.
    const missing = evalCli();
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), `attn: error: ${join(dir, 'model')} was trained on tiny.tsv, which does not exist (any more); give the pairs file with --data FILE`);
    const ok = evalCli('--data', tsv); // "twenty-one" is the one held-out pair
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { ...JSON.parse(ok.stdout), exact_match: 1, correct: 1, total: 1 });
    const none = join(dir, 'none.tsv');
    writeFileSync(none, pairs.filter((p) => p.source !== 'twenty-one').map((p) => `${p.source}\t${p.target}`).join('\n') + '\n');
    const empty = evalCli('--data', none);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(JSON.parse(empty.stdout).exact_match, null);
    assert.match(empty.stderr, /^note: no pair fell in the held-out split .*exact match is not measured$/m);
    for (const [flag, v] of [['--beam', '0'], ['--limit', '0'], ['--limit', '-5']] as const) {
      const r = evalCli('--data', tsv, flag, v);
      assert.equal(r.code, 1, `${flag} ${v}`);
      assert.equal(r.stderr.trim(), `attn: error: ${flag} must be ≥ 1, got ${v}`);
    }
    // A model of the built-in task has its own held-out pairs: --data is refused, not ignored.
    const builtIn = join(dir, 'built-in');
    saveSeq2Seq(builtIn, { model, tokenizer, task: { task: 'numbers-de', reverse: false } });
    const r = spawnSync(process.execPath, [CLI, 'seq2seq', 'eval', '--model', builtIn, '--data', tsv], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^attn: error: --data: .* was trained on the built-in numbers-de task, which has its own held-out pairs; leave out --data\n$/);
  });

  it('clear errors: a pairs file with a bad line, a translation model given to sample, a GPT directory given to translate', () => {
    const bad = join(dir, 'bad.tsv');
    writeFileSync(bad, 'one\teins\ntwo zwei\n');
    const r = spawnSync(process.execPath, [CLI, 'seq2seq', 'train', '--data', bad, '--out', join(dir, 'x')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim(), `attn: error: ${bad}:2: no tab; each line must be "source<TAB>target"`);
    const s = spawnSync(process.execPath, [CLI, 'sample', '--model', join(dir, 'model'), '--prompt', 'x'], { encoding: 'utf8' });
    assert.equal(s.status, 1);
    assert.match(s.stderr, /^attn: error: .*translation model.*attn translate/);
    const cfg = JSON.parse(readFileSync(join(dir, 'model', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.model_type, 'transformer-seq2seq');
    writeFileSync(join(dir, 'again', 'config.json'), JSON.stringify({ ...cfg, model_type: 'attn-gpt' }));
    const t = spawnSync(process.execPath, [CLI, 'translate', '--model', join(dir, 'again'), 'one'], { encoding: 'utf8' });
    assert.equal(t.status, 1);
    assert.match(t.stderr, /is not a translation model/);
  });
});
