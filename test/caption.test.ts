import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { runCaption, runCaptionEval, runCaptionTraining } from '../src/cli/caption.js';
import { captionFashion, captionVocabulary, decodeCaption, encodeCaption, FASHION_WORDS, measureImage, parseCaption, writeCaption } from '../src/data/fashion_captions.js';
import { bleu4 } from '../src/eval/bleu.js';
import { scoreCaptions } from '../src/eval/caption_scores.js';
import { attentionHeatmapPng } from '../src/io/attention_heatmap_png.js';
import { UserError } from '../src/util/errors.js';
import { rect, writeFakeFashion } from './fake_fashion.js';

const root = mkdtempSync(join(tmpdir(), 'attn-caption-'));
after(() => rmSync(root, { recursive: true, force: true }));
const quiet = (): void => {};


describe('caption data', () => {
  it('measures brightness, size and position on the picture', () => {
    // 10×28 = 280 pixels of a 28×28 square (0.36 < 0.45): small; value 100 < 150: dark; centre at x = 5.5 of 42: left.
    assert.deepEqual(measureImage(rect(42, 28, 1, 11, 0, 28, 100), 28, 42), { brightness: 'dark', size: 'small', position: 'on the left' });
    assert.deepEqual(measureImage(rect(42, 28, 7, 35, 2, 26, 220), 28, 42), { brightness: 'bright', size: 'large', position: 'in the middle' });
    assert.deepEqual(measureImage(rect(42, 28, 30, 42, 0, 28, 200), 28, 42), { brightness: 'bright', size: 'small', position: 'on the right' });
  });

  it('writes, parses and tokenizes captions', () => {
    const c = writeCaption('ankle boot', { brightness: 'dark', size: 'small', position: 'on the left' });
    assert.equal(c, 'a dark small ankle boot on the left');
    assert.deepEqual(parseCaption(c), { classWord: 'ankle boot', brightness: 'dark', size: 'small', position: 'on the left' });
    // "shirt" is not found inside "t-shirt".
    assert.equal(parseCaption('a bright large t-shirt in the middle').classWord, 't-shirt');
    const vocab = captionVocabulary();
    assert.deepEqual(vocab.slice(0, 3), ['<pad>', '<bos>', '<eos>']);
    assert.equal(decodeCaption(encodeCaption(c, vocab), vocab), c);
    assert.throws(() => encodeCaption('a purple sock', vocab), (e) => e instanceof UserError && /caption word "purple" is not in the vocabulary/.test(e.message));
  });

  it('places each item on the wide canvas and captions what it measures there', () => {
    const item = rect(28, 28, 10, 18, 0, 28, 255);
    const set = { pixels: Uint8Array.from([...item, ...item]), labels: Int32Array.of(1, 5), count: 2, height: 28, width: 28, channels: 1, classes: FASHION_WORDS.map(String) };
    const { images, captions } = captionFashion(set, 3);
    assert.equal(images.width, 42);
    captions.forEach((caption, n) => {
      const m = measureImage(images.pixels.subarray(n * 28 * 42, (n + 1) * 28 * 42), 28, 42);
      assert.equal(caption, writeCaption(FASHION_WORDS[set.labels[n]!]!, m));
    });
    assert.throws(() => captionFashion({ ...set, width: 14, pixels: new Uint8Array(2 * 28 * 14) }, 1), /captioning expects Fashion-MNIST's 28×28 grayscale images, got 14×28×1/);
  });
});

describe('caption scores', () => {
  it('BLEU-4 is 1 for identical text and follows the formula otherwise', () => {
    assert.equal(bleu4(['a b c d e'], ['a b c d e']), 1);
    // Hypothesis "a b c d x" against "a b c d e": precisions 4/5, 3/4, 2/3, 1/2, same length.
    const want = Math.exp((Math.log(4 / 5) + Math.log(3 / 4) + Math.log(2 / 3) + Math.log(1 / 2)) / 4);
    assert.ok(Math.abs(bleu4(['a b c d x'], ['a b c d e']) - want) < 1e-12);
    // Shorter than the reference: the brevity penalty exp(1 − 6/5).
    assert.ok(Math.abs(bleu4(['a b c d e'], ['a b c d e f']) - Math.exp(1 - 6 / 5)) < 1e-12);
    assert.equal(bleu4(['x y z w'], ['a b c d']), 0);
  });

  it('class word and property accuracy compare the parts of each caption', () => {
    const s = scoreCaptions(
      ['a dark small coat on the left', 'a bright small bag in the middle'],
      ['a dark large coat on the left', 'a bright small sandal on the right'],
    );
    assert.equal(s.class_word_accuracy, 1 / 2);
    assert.equal(s.property_accuracy, 4 / 6);
  });
});

describe('attention heatmap PNG', () => {
  it('draws one panel per map, the attended patch in the hot colours', () => {
    const png = PNG.sync.read(Buffer.from(attentionHeatmapPng({ pixels: new Uint8Array(4 * 6), height: 4, width: 6, patch: 2 }, [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]], 2)));
    assert.equal(png.width, 2 * 12 + 4);
    assert.equal(png.height, 8);
    const at = (x: number, y: number): number[] => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3));
    assert.deepEqual(at(9, 1), [166, 166, 166]); // patch 2 of panel 1: full weight, 0.65 × white over black
    assert.deepEqual(at(1, 1), [0, 0, 0]); // patch 0: no weight, the (black) picture
    assert.deepEqual(at(16 + 9, 5), [166, 166, 166]); // panel 2, patch 5 (second row, third column)
  });
});

describe('attn caption', () => {
  const data = join(root, 'fake-fashion');
  const out = join(root, 'model');
  const tiny = { dModel: 32, layers: 1, decoderLayers: 1, heads: 2, epochs: 8, batchSize: 32, lr: 4e-3, warmupSteps: 10, testImages: 60, logInterval: 1000 };

  it('trains a captioner that learns the grammar and the measured properties; eval rebuilds the same test captions', () => {
    writeFakeFashion(data, { train: 400, t10k: 60 });
    const s = runCaptionTraining({ data, out, backend: 'js' }, tiny, quiet);
    // Chance for the properties is about 0.4 (2, 2 and 3 choices); the grammar alone gives a BLEU-4 far above 0.
    assert.ok(s.property_accuracy > 0.6, `property accuracy ${s.property_accuracy}`);
    assert.ok(s.bleu4 > 0.4, `BLEU-4 ${s.bleu4}`);
    const e = runCaptionEval({ model: out, data, backend: 'js' });
    assert.equal(e.images, 60);
    assert.equal(e.class_word_accuracy, s.class_word_accuracy);
    assert.equal(e.property_accuracy, s.property_accuracy);
  });

  it('captions a PNG and draws its cross-attention; a PNG of the wrong size or channels is one line', () => {
    const png = (path: string, width: number, color: boolean): string => {
      const p = new PNG({ width, height: 28 });
      const px = rect(width, 28, 2, 16, 2, 26, 230);
      for (let i = 0; i < width * 28; i++) p.data.set([px[i]!, px[i]!, color ? 0 : px[i]!, 255], i * 4);
      writeFileSync(path, PNG.sync.write(p, { colorType: color ? 2 : 0 }));
      return path;
    };
    const image = png(join(root, 'left.png'), 42, false);
    const heatmap = join(root, 'heat.png');
    const [r] = runCaption([image], { model: out, heatmap, backend: 'js' });
    assert.equal(r!.image, image);
    assert.ok(r!.words!.length >= 2 && r!.words!.at(-1) === '<eos>', r!.words!.join(' '));
    const heat = PNG.sync.read(readFileSync(heatmap));
    assert.equal(heat.height, 28 * 8);
    assert.equal(heat.width, r!.words!.length * 42 * 8 + (r!.words!.length - 1) * 4);

    const cli = (...args: string[]) => spawnSync(process.execPath, [resolve(process.cwd(), 'dist/src/cli/main.js'), 'caption', ...args], { encoding: 'utf8' });
    const narrow = png(join(root, 'narrow.png'), 28, false);
    const r1 = cli(narrow, '--model', out, '--backend', 'js');
    assert.equal(r1.status, 1);
    assert.equal(r1.stderr, `attn: error: ${narrow} is 28×28 but the model takes 42×28 images\n`);
    // `--model` after the subcommand is the subcommand's (positional options), and eval --json ends with the scores.
    const ev = cli('eval', '--model', out, '--data', data, '--json', '--show', '1', '--backend', 'js');
    assert.equal(ev.status, 0, ev.stderr);
    const lines = ev.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.deepEqual(Object.keys(JSON.parse(lines[2]!) as object), ['class_word_accuracy', 'property_accuracy', 'bleu4']);
    const colour = png(join(root, 'colour.png'), 42, true);
    assert.throws(() => runCaption([colour], { model: out, backend: 'js' }), (e) => e instanceof UserError && e.message === `${colour} is a colour image (3 channels) but the model takes grayscale (1 channel) images`);
  });
});
