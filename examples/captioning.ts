/**
 * The lecture, "multi-modal transformers": an image encoder (the ViT: the
 * picture cut into 7×7 patches, each patch a token) and a text decoder joined
 * by cross-attention, trained to write captions — "a bright small trouser on
 * the left". The captions say more than the class: attn measures each
 * picture's brightness, size and position (src/data/fashion_captions.ts). As
 * the decoder writes each word it looks at the patches through
 * cross-attention; drawn over the picture, that shows where.
 *
 * The pictures are drawn here (four shapes standing in for Fashion-MNIST's
 * trousers, dresses, sandals and bags), so the example trains in seconds;
 * `attn caption train` does the same on Fashion-MNIST itself.
 *
 *   npm run build && node dist/examples/captioning.js
 */
import { captionFashion, FASHION_WORDS, type CaptionedImages } from '../src/data/fashion_captions.js';
import { scoreCaptions, type CaptionScores } from '../src/eval/caption_scores.js';
import { captionAttention, writeCaptions, type CaptionAttention } from '../src/generate/caption.js';
import type { Captioner } from '../src/models/captioner.js';
import { AdamW } from '../src/optim/adamw.js';
import { learningRate } from '../src/optim/schedule.js';
import { captionerFor, captionTokens } from '../src/train/caption_setup.js';
import { imageBatch } from '../src/train/image_batch.js';
import { trainStep } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';
import { isMain } from './is_main.js';

/** The shapes, by Fashion-MNIST label, as "is (u, v) inside?" on the unit square (u across, v down). */
const SHAPES: Record<number, (u: number, v: number) => boolean> = {
  // trouser: a waistband and two legs
  1: (u, v) => (v < 0.2 && u > 0.1 && u < 0.9) || ((u > 0.1 && u < 0.45) || (u > 0.55 && u < 0.9)),
  // dress: narrow at the top, wide at the hem
  3: (u, v) => Math.abs(u - 0.5) < 0.15 + 0.35 * v,
  // sandal: a sole and three straps
  5: (u, v) => v > 0.6 || (v > 0.3 && [0.25, 0.55, 0.75].some((c) => Math.abs(u - c) < 0.05)),
  // bag: a body and a handle
  8: (u, v) => (v > 0.3 && u > 0.05 && u < 0.95) || (v > 0.05 && v <= 0.3 && Math.abs(Math.abs(u - 0.5) - 0.2) < 0.05),
};
export const LABELS = Object.keys(SHAPES).map(Number);

/**
 * `count` 28×28 grayscale items: a shape drawn at a random scale (so some are
 * "small", some "large") and brightness (dark or bright), in Fashion-MNIST's
 * layout, ready for captionFashion to place on the wide canvas.
 */
export function drawItems(count: number, seed: number): { pixels: Uint8Array; labels: Int32Array; count: number; height: number; width: number; channels: number; classes: string[] } {
  const rng = new Rng(seed);
  const pixels = new Uint8Array(count * 28 * 28);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const label = LABELS[rng.int(LABELS.length)]!;
    const scale = 0.72 + 0.28 * rng.random();
    const value = rng.random() < 0.5 ? 80 + rng.int(40) : 200 + rng.int(50);
    labels[n] = label;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const u = 0.5 + ((x + 0.5) / 28 - 0.5) / scale;
        const v = 0.5 + ((y + 0.5) / 28 - 0.5) / scale;
        if (u >= 0 && u <= 1 && v >= 0 && v <= 1 && SHAPES[label]!(u, v)) pixels[n * 784 + y * 28 + x] = value;
      }
    }
  }
  return { pixels, labels, count, height: 28, width: 28, channels: 1, classes: FASHION_WORDS };
}

export interface CaptionDemo {
  model: Captioner;
  train: CaptionedImages;
  test: CaptionedImages;
  losses: number[];
}

/**
 * Train a small captioner (a 1-layer ViT encoder and a 1-layer decoder,
 * width 32, 2 heads) on captioned pictures: teacher forcing — the decoder
 * reads "<bos> a bright small …" and learns each next word — with AdamW.
 */
export function trainCaptionDemo({ steps = 200, batchSize = 32, lr = 6e-3, seed = 7, trainCount = 400, testCount = 80 } = {}): CaptionDemo {
  const train = captionFashion(drawItems(trainCount, seed), seed + 1);
  const test = captionFashion(drawItems(testCount, seed + 2), seed + 3);
  const model = captionerFor(train.images, train.captions, { patch: 7, dModel: 32, layers: 1, heads: 2, dFf: 64, dropout: 0, decoderLayers: 1, seed });
  const opt = new AdamW(model.namedParameters(), { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  const rng = new Rng(seed + 4);
  const losses: number[] = [];
  model.train();
  for (let step = 0; step < steps; step++) {
    const idx = Int32Array.from({ length: batchSize }, () => rng.int(trainCount));
    const objective = {
      loss: (b: Int32Array) => {
        const { tokensIn, targets } = captionTokens(model, train.captions, b);
        return model.forward(imageBatch(model.encoder, train.images, b), tokensIn, targets).loss!;
      },
    };
    losses.push(trainStep(opt, objective, [idx], { lr: learningRate(step, { lr, minLr: lr / 10, warmupIters: 10, decayIters: steps }), gradClip: 1 }).loss);
  }
  model.eval();
  return { model, train, test, losses };
}

/** Captions for the test pictures (greedy), and how many say the right class and the right measurements. */
export function captionTest({ model, test }: CaptionDemo): CaptionScores & { written: string[] } {
  const idx = Int32Array.from({ length: test.images.count }, (_, i) => i);
  const { captions } = writeCaptions(model, imageBatch(model.encoder, test.images, idx));
  return { ...scoreCaptions(captions, test.captions), written: captions };
}

/** Where the decoder looked while writing test picture `n`'s caption: one map over the 4×6 patches per word. */
export function lookWhere({ model, test }: CaptionDemo, n: number): CaptionAttention {
  const image = imageBatch(model.encoder, test.images, [n]);
  return captionAttention(model, image, writeCaptions(model, image).ids[0]!);
}

/** Test picture n's grayscale pixels (28 × 42). */
export function testPicture({ test }: CaptionDemo, n: number): Uint8Array {
  const size = test.images.height * test.images.width;
  return test.images.pixels.subarray(n * size, (n + 1) * size);
}

function main(): void {
  const t0 = performance.now();
  const demo = trainCaptionDemo();
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`trained a ${demo.model.numParameters()}-parameter captioner on ${demo.train.images.count} pictures in ${secs}s: loss ${demo.losses[0]!.toFixed(3)} → ${demo.losses[demo.losses.length - 1]!.toFixed(3)}`);
  const s = captionTest(demo);
  console.log(`on ${demo.test.images.count} new pictures: class word ${(100 * s.class_word_accuracy).toFixed(1)}%, properties ${(100 * s.property_accuracy).toFixed(1)}%, BLEU-4 ${s.bleu4.toFixed(3)}`);
  for (let n = 0; n < 3; n++) console.log(`  wrote "${s.written[n]}"   reference "${demo.test.captions[n]}"`);
  const a = lookWhere(demo, 0);
  const cols = demo.test.images.width / 7;
  console.log('\nwhere the decoder looked while writing picture 0 (the patch with the most weight, row and column of 4×6):');
  a.words.forEach((w, i) => {
    const p = a.patches[i]!;
    const best = p.indexOf(Math.max(...p));
    console.log(`  ${w.padEnd(8)} patch (${Math.floor(best / cols) + 1}, ${(best % cols) + 1}) ${p[best]!.toFixed(2)}`);
  });
}

if (isMain(import.meta.url)) main();
