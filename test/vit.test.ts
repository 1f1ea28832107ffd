import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { runViTEval, runViTTraining } from '../src/cli/vit.js';
import { loadImageDataset } from '../src/data/image_dataset.js';
import { readImageFolder, readPngFiles } from '../src/data/image_folder.js';
import { parseIdx, readIdxImages } from '../src/data/idx.js';
import { UserError } from '../src/util/errors.js';
import { loadViT } from '../src/io/vit_dir.js';
import { patchify } from '../src/models/patchify.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import { Tensor } from '../src/tensor/tensor.js';
import { evaluateViT, predictViT } from '../src/train/vit_trainer.js';
import { Rng } from '../src/util/rng.js';
import { gradCheck, randn } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'attn-vit-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SIDE = 8;

/**
 * A toy task a ViT can only solve by looking at where the light is: class 0
 * images are bright in the left half, class 1 in the right half, with noise.
 */
function halves(count: number, seed: number): { pixels: Uint8Array; labels: Uint8Array } {
  const rng = new Rng(seed);
  const pixels = new Uint8Array(count * SIDE * SIDE);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    labels[n] = n % 2;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const lit = (x < SIDE / 2) === (labels[n] === 0);
        pixels[(n * SIDE + y) * SIDE + x] = Math.round(Math.min(255, Math.max(0, (lit ? 170 : 85) + rng.normal() * 40)));
      }
    }
  }
  return { pixels, labels };
}

function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  const view = new DataView(header.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  return Buffer.concat([header, data]);
}

function writeIdxSet(dir: string, split: 'train' | 't10k', count: number, seed: number, gz: boolean): void {
  const { pixels, labels } = halves(count, seed);
  const ext = gz ? '.gz' : '';
  const enc = (b: Uint8Array) => (gz ? gzipSync(b) : b);
  writeFileSync(join(dir, `${split}-images-idx3-ubyte${ext}`), enc(idxBytes([count, SIDE, SIDE], pixels)));
  writeFileSync(join(dir, `${split}-labels-idx1-ubyte${ext}`), enc(idxBytes([count], labels)));
}

function writePng(path: string, width: number, height: number, gray: (x: number, y: number) => number): void {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    const v = gray(i % width, Math.floor(i / width));
    png.data.set([v, v, v, 255], i * 4);
  }
  writeFileSync(path, PNG.sync.write(png, { colorType: 0 }));
}

function writePngFolder(dir: string, count: number, seed: number): void {
  const { pixels, labels } = halves(count, seed);
  for (const name of ['left', 'right']) mkdirSync(join(dir, name), { recursive: true });
  for (let n = 0; n < count; n++) {
    writePng(join(dir, labels[n] === 0 ? 'left' : 'right', `${n}.png`), SIDE, SIDE, (x, y) => pixels[(n * SIDE + y) * SIDE + x]!);
  }
}

const tiny = { patch: 4, dModel: 16, layers: 1, heads: 2, epochs: 6, batchSize: 16, lr: 1e-2, warmupSteps: 5, logInterval: 1000 };
const quiet = (): void => {};

function tinyConfig() {
  return parseViTConfig({
    image_height: 4, image_width: 4, channels: 2, patch_size: 2, d_model: 8, n_layer: 1, n_head: 2, d_ff: 16,
    num_classes: 3, labels: ['a', 'b', 'c'], pixel_mean: [0, 0], pixel_std: [1, 1],
  });
}

describe('patchify', () => {
  it('cuts a known image into patches in reading order, rows within a patch, channels last', () => {
    const img = Tensor.from(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
    const p = patchify(img, 2);
    assert.deepEqual(p.shape, [1, 4, 4]);
    assert.deepEqual([...p.data], [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
    // Two channels: pixel (y, x) holds (10·y + x, −(10·y + x)).
    const rgb = Tensor.from(Array.from({ length: 2 * 2 * 4 * 2 }, (_, i) => { const px = Math.floor(i / 2); const v = 10 * Math.floor(px / 4) + (px % 4); return i % 2 ? -v : v; }), [2, 2, 4, 2]);
    const q = patchify(rgb, 2);
    assert.deepEqual(q.shape, [2, 2, 8]);
    assert.deepEqual([...q.data.subarray(8, 16)], [2, -2, 3, -3, 12, -12, 13, -13]);
  });

  it('refuses a patch size that does not divide the image', () => {
    assert.throws(() => patchify(Tensor.zeros([1, 6, 6, 1]), 4), /patch size 4 does not divide the 6×6 image/);
    assert.throws(() => parseViTConfig({ ...tinyConfig(), patch_size: 3 }), /patch size must divide/);
  });
});

describe('ViT', () => {
  it('class token, positions and the blocks pass a gradient check', () => {
    const model = new ViT(tinyConfig(), new Rng(3));
    const x = randn([2, 4, 4, 2], new Rng(4), 1, false);
    gradCheck(() => model.forward(x).logits, [model.cls_token, model.pos_embed, model.patch_embed.weight]);
  });

  it('learns which half of the image is bright (IDX, gzipped), saves, loads, evaluates', () => {
    const dir = join(root, 'idx');
    mkdirSync(dir);
    writeIdxSet(dir, 'train', 256, 1, true);
    writeIdxSet(dir, 't10k', 64, 2, true);
    const out = join(root, 'model-idx');
    const summary = runViTTraining({ data: dir, out, backend: 'js' }, tiny, quiet);
    assert.ok(summary.test_accuracy >= 0.9, `test accuracy ${summary.test_accuracy}`);
    const model = loadViT(out);
    assert.equal(model.config.patch_size, 4);
    const again = runViTEval({ model: out, data: dir, backend: 'js' });
    assert.equal(again.accuracy, summary.test_accuracy);
    assert.equal(again.images, 64);
  });

  it('learns from a PNG folder with held-out images, and predicts loose PNG files', () => {
    const dir = join(root, 'png');
    writePngFolder(dir, 160, 3);
    const out = join(root, 'model-png');
    const summary = runViTTraining({ data: dir, out, backend: 'js' }, { ...tiny, heldOut: 0.25 }, quiet);
    assert.ok(summary.test_accuracy >= 0.9, `test accuracy ${summary.test_accuracy}`);
    const model = loadViT(out);
    assert.deepEqual(model.config.labels, ['left', 'right']);
    // Evaluation holds out the same images training did (trainer.json records the fraction and seed).
    const again = runViTEval({ model: out, data: dir, backend: 'js' });
    assert.deepEqual([again.images, again.accuracy], [40, summary.test_accuracy]);
    const left = join(root, 'left.png');
    writePng(left, SIDE, SIDE, (x) => (x < SIDE / 2 ? 200 : 60));
    const [p] = predictViT(model, readPngFiles([left], { height: SIDE, width: SIDE, channels: 1 }));
    assert.equal(model.config.labels[p!.label], 'left');
  });
});

describe('image data', () => {
  it('reads IDX files, plain and gzipped, alike', () => {
    const dir = join(root, 'idx-plain');
    mkdirSync(dir);
    writeIdxSet(dir, 'train', 10, 5, false);
    writeIdxSet(dir, 't10k', 4, 6, true);
    const { train, test, source } = loadImageDataset(dir);
    assert.equal(source, 'IDX files');
    assert.deepEqual([train.count, train.height, train.width, train.channels], [10, SIDE, SIDE, 1]);
    assert.deepEqual(train.classes, ['0', '1']);
    assert.deepEqual([...test.labels], [0, 1, 0, 1]);
    const direct = readIdxImages(join(dir, 'train-images-idx3-ubyte'), join(dir, 'train-labels-idx1-ubyte'));
    assert.deepEqual(Uint8Array.from(direct.pixels), halves(10, 5).pixels);
  });

  it('reports corrupt IDX data clearly', () => {
    const good = idxBytes([2, 2, 2], new Uint8Array(8));
    assert.throws(() => parseIdx(Uint8Array.of(1, 2, 3, 4), 'x'), (e) => e instanceof UserError && /not an IDX file \(bad magic number\)/.test(e.message));
    const float = Uint8Array.from(good);
    float[2] = 0x0d;
    assert.throws(() => parseIdx(float, 'x'), /value type 0x0d is not supported/);
    assert.throws(() => parseIdx(good.subarray(0, good.length - 1), 'x'), /dimensions \[2, 2, 2\] need 24 bytes but the file has 23/);
    const dir = join(root, 'idx-bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 'imgs'), idxBytes([3, 2, 2], new Uint8Array(12)));
    writeFileSync(join(dir, 'labels'), idxBytes([2], new Uint8Array(2)));
    assert.throws(() => readIdxImages(join(dir, 'imgs'), join(dir, 'labels')), /has 2 labels but .* has 3 images/);
    writeFileSync(join(dir, 'bad.gz'), Uint8Array.of(0x1f, 0x8b, 1, 2, 3));
    assert.throws(() => readIdxImages(join(dir, 'bad.gz'), join(dir, 'labels')), /corrupt gzip data/);
    writeIdxSet(dir, 'train', 4, 1, false);
    assert.throws(() => loadImageDataset(dir), /IDX dataset is incomplete, missing testImages, testLabels/);
  });

  it('reads PNG train/test folders and names the file of a mismatched size', () => {
    const dir = join(root, 'split');
    writePngFolder(join(dir, 'train'), 6, 7);
    writePngFolder(join(dir, 'test'), 4, 8);
    const { train, test, source } = loadImageDataset(dir);
    assert.equal(source, 'PNG folders train/ and test/');
    assert.deepEqual([train.count, test.count, train.channels], [6, 4, 1]);
    assert.deepEqual(test.classes, ['left', 'right']);
    const odd = join(dir, 'train', 'right', 'odd.png');
    writePng(odd, SIDE + 1, SIDE, () => 0);
    assert.throws(() => readImageFolder(join(dir, 'train')), (e) => e instanceof UserError && e.message.includes(odd) && /is 9×8 but .* is 8×8/.test(e.message));
  });

  it('refuses a patch that does not divide the images, and a folder with no images', () => {
    const dir = join(root, 'png-small');
    writePngFolder(dir, 8, 9);
    assert.throws(() => runViTTraining({ data: dir, out: join(root, 'never'), backend: 'js' }, { ...tiny, patch: 3 }, quiet), (e) => e instanceof UserError && /--patch 3 does not divide the 8×8 images .*\(patch sizes that do: 2, 4\)/.test(e.message));
    const one = join(root, 'one-class');
    writePngFolder(one, 4, 9);
    rmSync(join(one, 'right'), { recursive: true });
    assert.throws(() => runViTTraining({ data: one, out: join(root, 'never'), backend: 'js' }, tiny, quiet), /found 1 class \(left\); a classifier needs at least 2/);
    // An empty class folder (or one without PNG files) is not a class.
    mkdirSync(join(one, 'right'));
    writeFileSync(join(one, 'right', 'notes.txt'), 'no images here');
    assert.deepEqual(readImageFolder(one).classes, ['left']);
    assert.throws(() => runViTTraining({ data: one, out: join(root, 'never'), backend: 'js' }, tiny, quiet), /found 1 class \(left\); a classifier needs at least 2/);
    rmSync(join(one, 'left'), { recursive: true });
    assert.throws(() => readImageFolder(one), (e) => e instanceof UserError && e.message === `${one}: no .png files in the class subfolders`);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    assert.throws(() => loadImageDataset(empty), /found neither IDX files .* nor PNG class subfolders/);
  });
});

describe('ViT model directories', () => {
  it('loadViT rejects a directory of another model type', () => {
    const dir = join(root, 'gpt-like');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ format: 'attn', model_type: 'attn-gpt' }));
    assert.throws(() => loadViT(dir), /is not a ViT model \(config.json model_type is "attn-gpt"\)/);
  });

  it('evaluateViT counts right answers', () => {
    const model = new ViT(tinyConfig(), new Rng(1));
    const set = { pixels: new Uint8Array(3 * 32), labels: Int32Array.of(0, 1, 2), count: 3, height: 4, width: 4, channels: 2, classes: ['a', 'b', 'c'] };
    const r = evaluateViT(model, set);
    // An untrained model gives every blank image the same class: exactly one of the three is right.
    assert.equal(r.accuracy, 1 / 3);
  });
});

describe('attn vit (CLI)', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [resolve(process.cwd(), 'dist/src/cli/main.js'), 'vit', ...args], { encoding: 'utf8' });

  it('reports bad input as one line, without a stack trace', () => {
    const dir = join(root, 'cli-png');
    writePngFolder(dir, 8, 10);
    const r = cli('train', '--data', dir, '--out', join(root, 'cli-out'), '--patch', '3', '--backend', 'js');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^attn: error: --patch 3 does not divide the 8×8 images/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});
