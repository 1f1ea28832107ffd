/**
 * The article's later sections (examples/*.ts), each checked against numbers
 * worked out here independently: by hand formulas, plain loops, or
 * properties the section states.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { captionTest, drawItems, LABELS, lookWhere, testPicture, trainCaptionDemo } from '../examples/captioning.js';
import { applyDropout, dropoutStats } from '../examples/dropout.js';
import { characterTable, DIM, lookUp, pieceTable, rowsTouched, wordByConcat, wordBySum } from '../examples/embeddings.js';
import { exactMatch, trainReverser } from '../examples/encoder_decoder.js';
import { buildGPT, CONFIG, forwardShapes, parameterFormula, parameterTable } from '../examples/gpt_architecture.js';
import { EXAMPLE, histogram, meanAndSpread, normalize, wideVector } from '../examples/layer_norm.js';
import { D_MODEL, HEADS, multiHead, TOKENS } from '../examples/multi_head_attention.js';
import { orderEffect, sinusoids, WORDS } from '../examples/positional_encoding.js';
import { DEPTH, inputGradientNorm, oneLayer } from '../examples/residual.js';
import { selfAttention, WK, WQ, WV, X } from '../examples/self_attention.js';
import { measureImage, parseCaption } from '../src/data/fashion_captions.js';
import { logistic, SCORES, softmaxWithTemperature, twoWaySoftmax } from '../examples/softmax.js';
import { mergeList, pieces, TEXT, train } from '../examples/subword_tokenizer.js';

const close = (got: number, want: number, atol = 1e-5): void => assert.ok(Math.abs(got - want) <= atol, `${got} vs ${want}`);
const allClose = (got: number[], want: number[], atol = 1e-5): void => {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => close(g, want[i]!, atol));
};
const byHandSoftmax = (z: number[]): number[] => {
  const e = z.map((v) => Math.exp(v - Math.max(...z)));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
const times = (w: number[][], x: number[]): number[] => w.map((row) => dot(row, x));

describe('article: embeddings', () => {
  it('a character is a row of the table; a loss moves only the rows it used', () => {
    const { tokenizer, table } = characterTable();
    const [c] = lookUp(table, tokenizer, 'c');
    assert.deepEqual(c, [...table.weight.data.subarray(2 * DIM, 3 * DIM)]); // "c" is row 2 of a…z
    assert.deepEqual(rowsTouched(table, tokenizer, 'cats'), ['a', 'c', 's', 't']);
  });

  it('"cats" = "cat" + "s": the sum is order-blind, the concatenation keeps order and doubles the length', () => {
    const t = pieceTable();
    const [cat, s] = [wordBySum(t, ['cat']), wordBySum(t, ['s'])];
    allClose(wordBySum(t, ['cat', 's']), cat.map((v, i) => v + s[i]!));
    assert.deepEqual(wordBySum(t, ['cat', 's']), wordBySum(t, ['s', 'cat']));
    assert.deepEqual(wordByConcat(t, ['cat', 's']), [...cat, ...s]);
    assert.notDeepEqual(wordByConcat(t, ['s', 'cat']), wordByConcat(t, ['cat', 's']));
  });
});

describe('article: sub-word tokenizers', () => {
  it('the first merge is the most frequent adjacent pair inside the pieces, counted by hand', () => {
    const counts = new Map<string, number>();
    for (const piece of TEXT.match(/ ?[a-z]+| ?[^\sa-z]+|\s+/g)!) {
      for (let i = 0; i + 1 < piece.length; i++) counts.set(piece.slice(i, i + 2), (counts.get(piece.slice(i, i + 2)) ?? 0) + 1);
    }
    const sorted = [...counts].sort((a, b) => b[1] - a[1]);
    assert.ok(sorted[0]![1] > sorted[1]![1], 'the most frequent pair is unique');
    const first = mergeList(train())[0]!;
    assert.equal(first.left + first.right, sorted[0]![0]);
  });

  it('each merge joins two earlier tokens; "cats" splits into "cat" + "s"; pieces decode back to the text', () => {
    const tok = train();
    for (const m of mergeList(tok)) assert.equal(m.merged, m.left + m.right);
    assert.deepEqual(pieces(tok, ' cats'), [' cat', 's']);
    assert.equal(pieces(tok, TEXT).join(''), TEXT);
    assert.ok(tok.encode(TEXT).length < TEXT.length / 2);
  });
});

describe('article: self-attention', () => {
  it('scores q·k/√d, softmax weights and u = Σ w·v agree with a plain loop; u1 ≈ F(x1, x3)', () => {
    const t = selfAttention();
    const q = X.map((x) => times(WQ, x));
    const k = X.map((x) => times(WK, x));
    const v = X.map((x) => times(WV, x));
    const scores = q.map((qi) => k.map((kj) => dot(qi, kj) / Math.sqrt(2)));
    const weights = scores.map(byHandSoftmax);
    const u = weights.map((w) => [0, 1].map((c) => w.reduce((s, wj, j) => s + wj * v[j]![c]!, 0)));
    t.scores.forEach((r, i) => allClose(r, scores[i]!));
    t.weights.forEach((r, i) => allClose(r, weights[i]!));
    t.u.forEach((r, i) => allClose(r, u[i]!));
    close(t.weights[0]![2]!, 0.768, 5e-4);
    assert.ok(t.weights[0]![2]! > 0.5 && t.weights[0]![1]! < 0.05);
  });
});

describe('article: softmax', () => {
  it('softmax(2, 1, 0.1) = (0.659, 0.242, 0.099), by hand too', () => {
    allClose(softmaxWithTemperature(SCORES), byHandSoftmax(SCORES));
    allClose(softmaxWithTemperature(SCORES), [0.659, 0.242, 0.099], 5e-4);
  });

  it('softmax over (z, 0) is the logistic function; temperature divides the scores', () => {
    for (const z of [-3, -0.5, 0, 1, 4]) close(twoWaySoftmax(z), logistic(z));
    for (const T of [0.25, 0.5, 2, 10]) allClose(softmaxWithTemperature(SCORES, T), byHandSoftmax(SCORES.map((s) => s / T)));
    assert.ok(softmaxWithTemperature(SCORES, 0.5)[0]! > softmaxWithTemperature(SCORES, 2)[0]!);
  });
});

describe('article: residual connections', () => {
  it('x + f(x) adds the layer\'s output to its input', () => {
    const x = [1, 0, -1, 0.5, 2, 0, 1, -0.5];
    const { fx, y } = oneLayer(x);
    allClose(y, x.map((v, i) => v + fx[i]!));
  });

  it(`through ${DEPTH} layers the gradient vanishes without them and survives with them`, () => {
    const plain = inputGradientNorm(false);
    const res = inputGradientNorm(true);
    assert.ok(plain < 1e-3, `plain ${plain}`);
    assert.ok(res > 0.5, `residual ${res}`);
  });
});

describe('article: layer normalization', () => {
  it('(2, 4, 6, 8): M = 5, S = √5, (x − M)/S = (−1.342, −0.447, 0.447, 1.342)', () => {
    const { M, S } = meanAndSpread(EXAMPLE);
    assert.equal(M, 5);
    close(S, Math.sqrt(5), 1e-12);
    // The op adds eps = 1e-5 to the variance: 1e-5 off at most here.
    allClose(normalize(EXAMPLE), EXAMPLE.map((x) => (x - 5) / Math.sqrt(5)), 1e-5);
    allClose(normalize(EXAMPLE, [1, 1, 2, 2], [0, 0, 0, 1]), EXAMPLE.map((x, i) => ((x - 5) / Math.sqrt(5)) * [1, 1, 2, 2][i]! + [0, 0, 0, 1][i]!), 1e-5);
  });

  it('any vector comes out with mean 0 and spread 1; the histogram keeps every value', () => {
    const before = wideVector();
    const after = meanAndSpread(normalize(before));
    close(after.M, 0, 1e-5);
    close(after.S, 1, 1e-4);
    assert.ok(Math.abs(meanAndSpread(before).M - 3) < 1.5 && meanAndSpread(before).S > 3);
    assert.equal(histogram(before, -12, 18, 15).reduce((a, b) => a + b, 0), before.length);
  });
});

describe('article: dropout', () => {
  it('each value is zeroed or multiplied by 1/(1 − p); nothing changes when not training', () => {
    const x = [1, 2, 3, 4, 5, 6, 7, 8];
    for (const p of [0.25, 0.5]) {
      applyDropout(x, p).forEach((v, i) => assert.ok(v === 0 || Math.abs(v - x[i]! / (1 - p)) < 1e-5, `${v} from ${x[i]}`));
    }
    assert.deepEqual(applyDropout(x, 0.5, { training: false }), x);
  });

  it('about p of 10 000 ones are zeroed and the mean stays about 1', () => {
    for (const p of [0.1, 0.5]) {
      const s = dropoutStats(p);
      close(s.zeroed, p, 0.02);
      close(s.mean, 1, 0.03);
    }
  });
});

describe('article: multi-head attention', () => {
  it('each head is causal and its rows sum to 1; concatenating the heads then out_proj is the layer', () => {
    const t = multiHead();
    assert.equal(t.weights.length, HEADS);
    for (const w of t.weights) {
      w.forEach((row, i) => {
        close(row.reduce((a, b) => a + b, 0), 1);
        row.forEach((v, j) => j > i && assert.equal(v, 0));
      });
    }
    assert.notDeepEqual(t.weights[0], t.weights[1]);
    assert.equal(t.output.length, TOKENS.length);
    t.output.forEach((r, i) => { assert.equal(r.length, D_MODEL); allClose(r, t.rebuilt[i]!); });
  });
});

describe('article: positional encodings', () => {
  it('sinusoids: PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…)', () => {
    const t = sinusoids(6, 8);
    for (let pos = 0; pos < 6; pos++) {
      for (let i = 0; i < 4; i++) {
        close(t[pos]![2 * i]!, Math.sin(pos / 10000 ** ((2 * i) / 8)));
        close(t[pos]![2 * i + 1]!, Math.cos(pos / 10000 ** ((2 * i) / 8)));
      }
    }
  });

  it('without positions, "dog bites man" and "man bites dog" give each word the same vector; with them, not', () => {
    const b = [...WORDS].reverse();
    assert.ok(orderEffect(WORDS, b, 'none') < 1e-6);
    assert.ok(orderEffect(WORDS, b, 'sinusoidal') > 1e-2);
    assert.ok(orderEffect(WORDS, b, 'learned') > 1e-3);
  });
});

describe('article: the GPT architecture', () => {
  it('parameters: V·C + T·C + N·(12C² + 13C) + 2C, and the table adds up to the model', () => {
    const model = buildGPT();
    const C = 32;
    assert.equal(parameterFormula(CONFIG), 27 * C + 12 * C + 2 * (12 * C * C + 13 * C) + 2 * C);
    assert.equal(model.numParameters(), parameterFormula(CONFIG));
    assert.equal(parameterTable(model).reduce((a, r) => a + r.count, 0), model.numParameters());
    assert.deepEqual(parameterTable(model).map((r) => r.part), ['wte', 'wpe', 'h.0', 'h.1', 'ln_f']);
  });

  it('one forward pass: [1, T] ids → [1, T, C] through every block → [1, T, V] scores', () => {
    const shapes = forwardShapes(buildGPT(), 12);
    assert.deepEqual(shapes[0]![1], [1, 12]);
    assert.deepEqual(shapes[shapes.length - 1]![1], [1, 12, 27]);
    assert.equal(shapes.filter(([s]) => s.startsWith('after block')).length, CONFIG.n_layer);
  });
});

describe('article: encoder–decoder vs "<SEP>" concatenation', () => {
  it('both learn to write 5 letters backwards (brief, seeded training)', () => {
    for (const kind of ['encoder-decoder', 'gpt-sep'] as const) {
      const t = trainReverser(kind, { steps: 150 });
      const l = t.losses;
      assert.ok(l[l.length - 1]! < 0.3 && l[l.length - 1]! < l[0]! / 5, `${kind}: loss ${l[0]} → ${l[l.length - 1]}`);
      const acc = exactMatch(t, 100);
      assert.ok(acc > 0.5, `${kind}: ${acc}`);
    }
  });
});

describe('the lecture: a multi-modal captioner', () => {
  it('draws items of four classes, in both sizes and brightnesses, and their captions state what is measured', () => {
    const items = drawItems(200, 1);
    assert.deepEqual([...new Set(items.labels)].sort((a, b) => a - b), LABELS);
    const seen = new Set<string>();
    for (let n = 0; n < items.count; n++) {
      const m = measureImage(items.pixels.subarray(n * 784, (n + 1) * 784), 28, 28);
      seen.add(`${m.brightness} ${m.size}`);
    }
    assert.equal(seen.size, 4, [...seen].join(', '));
  });

  it('learns to caption new pictures: class word, properties and BLEU-4 recomputed from the written captions', () => {
    const demo = trainCaptionDemo();
    assert.ok(demo.losses.at(-1)! < demo.losses[0]! / 5, `loss ${demo.losses[0]} → ${demo.losses.at(-1)}`);
    const s = captionTest(demo);
    // By hand: compare each written caption's parts with the reference's.
    const parts = (c: string) => parseCaption(c);
    let classRight = 0;
    let propsRight = 0;
    s.written.forEach((w, i) => {
      const [a, b] = [parts(w), parts(demo.test.captions[i]!)];
      if (a.classWord === b.classWord) classRight++;
      for (const k of ['brightness', 'size', 'position'] as const) if (a[k] === b[k]) propsRight++;
    });
    close(s.class_word_accuracy, classRight / s.written.length, 1e-12);
    close(s.property_accuracy, propsRight / (3 * s.written.length), 1e-12);
    // Chance: 1/4 for the class, about 0.4 for the properties.
    assert.ok(s.class_word_accuracy > 0.8, `class word ${s.class_word_accuracy}`);
    assert.ok(s.property_accuracy > 0.7, `properties ${s.property_accuracy}`);
    assert.ok(s.bleu4 > 0.5, `BLEU-4 ${s.bleu4}`);
    const a = lookWhere(demo, 0);
    assert.equal(a.words.join(' ').replace(/ <eos>$/, ''), s.written[0]);
    for (const [i, p] of a.patches.entries()) {
      assert.equal(p.length, 4 * 6, 'one weight per 7×7 patch of the 28×42 picture');
      close(p.reduce((x, y) => x + y, 0) + a.classToken[i]!, 1, 1e-4);
    }
    assert.equal(testPicture(demo, 0).length, 28 * 42);
  });
});
