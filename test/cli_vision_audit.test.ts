import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { FASHION_MNIST_DIR } from '../src/cli/caption.js';
import { captionVocabulary } from '../src/data/fashion_captions.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { captionerFiles } from '../src/io/captioner_dir.js';
import { pointTransformerFiles } from '../src/io/point_transformer_dir.js';
import { vitFiles } from '../src/io/vit_dir.js';
import { Captioner } from '../src/models/captioner.js';
import { parseCaptionerConfig } from '../src/models/captioner_config.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig, type ViTConfigInput } from '../src/models/vit_config.js';
import { parsePointCloudTrainOptions } from '../src/train/point_cloud_options.js';
import { pointModelFor } from '../src/train/point_cloud_trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, runAttn } from './helpers.js';

// `attn vit`, `attn caption` and `attn pointcloud` given bad input: one `attn: error:` line, a non-zero exit, nothing written.
const work = mkdtempSync(join(tmpdir(), 'attn-cli-vision-'));
after(() => rmSync(work, { recursive: true, force: true }));
const attn = (args: string[]) => runAttn(args, work);

/** A user error that printed nothing on stdout and left `out` (if given) unmade. */
function refused(args: string[], pattern: RegExp, out?: string): void {
  const r = attn(args);
  assertUserError(r, pattern);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal(r.stdout, '', 'nothing on stdout');
  if (out !== undefined) assert.ok(!existsSync(out), `${out} was written`);
}

function writeGrayPng(path: string, width: number, height: number, value: (x: number) => number): void {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    const v = value(i % width);
    png.data.set([v, v, v, 255], i * 4);
  }
  writeFileSync(path, PNG.sync.write(png, { colorType: 0 }));
}

function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** Fashion-MNIST-shaped IDX files: `train` images of 28×28 with labels 0…9, `test` of them in t10k. */
function writeIdx(dir: string, train: number, test: number): void {
  mkdirSync(dir, { recursive: true });
  for (const [split, n] of [['train', train], ['t10k', test]] as const) {
    const pixels = new Uint8Array(n * 28 * 28);
    for (let i = 0; i < n; i++) pixels.fill(120 + i, i * 784 + 200, i * 784 + 500);
    writeFileSync(join(dir, `${split}-images-idx3-ubyte`), idxBytes([n, 28, 28], pixels));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), idxBytes([n], Uint8Array.from({ length: n }, (_, i) => i % 10)));
  }
}

const vitConfig = (o: Partial<ViTConfigInput> = {}): ViTConfigInput => ({
  image_height: 8, image_width: 8, channels: 1, patch_size: 4, d_model: 8, n_layer: 1, n_head: 2, d_ff: 16,
  num_classes: 2, labels: ['left', 'right'], pixel_mean: [0.5], pixel_std: [0.25], ...o,
});

const pngs = join(work, 'pngs');
const emptyTest = join(work, 'empty-test');
const fashion = join(work, 'fashion');
const file = join(work, 'a-file');
const vitDir = join(work, 'vit');
const captionDir = join(work, 'captioner');
const pointDir = join(work, 'points');
const picture = join(work, 'item.png');

before(() => {
  for (const [c, lit] of [['left', 0], ['right', 1]] as const) {
    mkdirSync(join(pngs, c), { recursive: true });
    for (let n = 0; n < 5; n++) writeGrayPng(join(pngs, c, `${n}.png`), 8, 8, (x) => ((x < 4) === (lit === 0) ? 200 : 40));
  }
  writeIdx(emptyTest, 20, 0);
  writeIdx(fashion, 20, 10);
  writeFileSync(file, 'not a directory');
  writeGrayPng(picture, 42, 28, (x) => (x > 5 && x < 20 ? 220 : 0));
  // Untrained models of each kind, each with a trainer.json that is not JSON.
  const garbage = { 'trainer.json': 'garbage\n' };
  writeDirAtomic(vitDir, { ...vitFiles(new ViT(parseViTConfig(vitConfig()), new Rng(1))), ...garbage });
  const image = parseViTConfig(vitConfig({ image_height: 28, image_width: 42, patch_size: 7, num_classes: 10, labels: Array.from({ length: 10 }, (_, i) => String(i)) }));
  const captioner = new Captioner(parseCaptionerConfig({ image, vocab: captionVocabulary(), max_length: 12, n_decoder_layers: 1 }), new Rng(1));
  writeDirAtomic(captionDir, { ...captionerFiles(captioner), ...garbage });
  const options = parsePointCloudTrainOptions({ groups: 8, groupSize: 8, pointHidden: 8, dModel: 8, layers: 1, heads: 2, seed: 1 });
  writeDirAtomic(pointDir, { ...pointTransformerFiles(pointModelFor(['a', 'b'], options)), ...garbage });
});

describe('attn vit, caption, pointcloud: bad input is one line', () => {
  it('sizes too large for memory are refused before anything is allocated (was a RangeError stack, or a hang)', () => {
    const out = join(work, 'never');
    refused(['vit', 'train', '--data', pngs, '--out', out, '--d-model', '1000000000', '--heads', '2'], /^attn: error: --d-model 1000000000, --d-ff 2000000000, --layers 4: one weight matrix would hold .* more than an array can/, out);
    refused(['vit', 'train', '--data', pngs, '--out', out, '--d-model', '4096', '--layers', '1024'], /--layers 1024: training about 1\.37e\+11 weights .* needs about 2048\.0 GiB of memory, more than this machine's/, out);
    refused(['caption', 'train', '--data', fashion, '--out', out, '--d-model', '100000', '--heads', '2'], /--decoder-layers 2: one weight matrix would hold/, out);
    refused(['pointcloud', 'train', '--task', 'shapes', '--out', out, '--point-hidden', '1000000000'], /--point-hidden 1000000000: one weight matrix would hold/, out);
    refused(['pointcloud', 'train', '--task', 'shapes', '--out', out, '--train-per-class', '1000000000'], /--train-per-class 1000000000, --test-per-class 100: generating the clouds needs about .* GiB of memory/, out);
  });

  it('an empty split is refused before training, saying why (an empty IDX test split trained, then was called divergence)', () => {
    const out = join(work, 'never-empty');
    refused(['vit', 'train', '--data', emptyTest, '--out', out, '--patch', '7', '--d-model', '8', '--heads', '2', '--layers', '1', '--backend', 'js'], /t10k-images-idx3-ubyte: no images \(the test split is empty/, out);
    refused(['caption', 'train', '--data', emptyTest, '--out', out, '--d-model', '8', '--heads', '2', '--backend', 'js'], /t10k-images-idx3-ubyte: no images/, out);
    // A --held-out that takes every image or cloud: was "no training images" with no reason given.
    refused(['vit', 'train', '--data', pngs, '--out', out, '--held-out', '0.99', '--backend', 'js'], /--data .*pngs: holding out 99% of 10 images leaves none to train on; lower --held-out/, out);
    const clouds = join(work, 'clouds');
    for (const c of ['ring', 'line']) {
      mkdirSync(join(clouds, c), { recursive: true });
      writeFileSync(join(clouds, c, 'a.xyz'), Array.from({ length: 64 }, (_, i) => `${Math.cos(i)} ${c === 'ring' ? Math.sin(i) : 0} ${i / 64}`).join('\n'));
    }
    refused(['pointcloud', 'train', '--data', clouds, '--out', out, '--held-out', '0.9', '--backend', 'js'], /--data .*clouds: holding out 90% of 2 clouds leaves none to train on/, out);
  });

  it('a trainer.json that is not JSON is named, not replaced by the defaults (eval scored another test set)', () => {
    refused(['vit', 'eval', '--model', vitDir, '--data', pngs, '--backend', 'js'], /vit[/\\]trainer\.json: not readable JSON \(.*\); it says how the model was trained/);
    refused(['caption', 'eval', '--model', captionDir, '--data', fashion, '--backend', 'js'], /captioner[/\\]trainer\.json: not readable JSON/);
    refused(['pointcloud', 'eval', '--model', pointDir, '--task', 'shapes', '--backend', 'js'], /points[/\\]trainer\.json: not readable JSON/);
    // Without trainer.json (a model saved by a program) eval goes on with the defaults.
    rmSync(join(vitDir, 'trainer.json'));
    const r = attn(['vit', 'eval', '--model', vitDir, '--data', pngs, '--backend', 'js']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { images: number }).images, 1);
  });

  it('caption eval: a negative --test-images or --show is refused (was taken as "all" / ignored)', () => {
    refused(['caption', 'eval', '--model', captionDir, '--data', fashion, '--test-images', '-1'], /--test-images <n>' argument '-1' is invalid\. must be ≥ 0/);
    refused(['caption', 'eval', '--model', captionDir, '--data', fashion, '--show', '-2'], /--show <n>' argument '-2' is invalid\. must be ≥ 0/);
  });

  it('caption --data that is a file says so (was "no such directory"); the missing default says how to install it', () => {
    refused(['caption', 'train', '--data', file, '--out', join(work, 'never-file')], /^attn: error: --data .*a-file is a file, not a directory$/m, join(work, 'never-file'));
    refused(['caption', 'eval', '--model', captionDir, '--data', file], /--data .*a-file is a file, not a directory/);
    if (!existsSync(FASHION_MNIST_DIR)) refused(['caption', 'eval', '--model', captionDir], /Fashion-MNIST is not installed at .*apt-get install dataset-fashion-mnist/);
  });

  it('caption --heatmap: an empty name is refused (was silently no heatmap), and so is the image being captioned (was overwritten)', () => {
    refused(['caption', '--model', captionDir, '--heatmap', '', picture, '--backend', 'js'], /--heatmap is empty: give a file name/);
    const before = readFileSync(picture);
    refused(['caption', '--model', captionDir, '--heatmap', join(work, '.', 'item.png'), picture, '--backend', 'js'], /--heatmap .*item\.png is the image .*item\.png being captioned/);
    assert.deepEqual(readFileSync(picture), before, 'the picture is untouched');
    const heat = join(work, 'heat.png');
    const r = attn(['caption', '--model', captionDir, '--heatmap', heat, picture, '--backend', 'js']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(heat));
  });

  it('--out holding a model of another kind is refused, and kept (a ViT was replaced by a language model)', () => {
    const before = readFileSync(join(captionDir, 'model.safetensors'));
    refused(['vit', 'train', '--data', pngs, '--out', captionDir, '--backend', 'js'], /^attn: error: --out .*captioner holds an image captioner, which writing a ViT image classifier there would replace; choose another path$/m);
    refused(['pointcloud', 'train', '--task', 'shapes', '--out', captionDir, '--backend', 'js'], /holds an image captioner, which writing a point-cloud classifier there would replace/);
    const text = join(work, 'text.txt');
    writeFileSync(text, 'to be or not to be, that is the question. '.repeat(20));
    refused(['train', '--data', text, '--out', pointDir, '--max-iters', '1'], /--out .*points holds a point-cloud classifier, which writing a language model there would replace/);
    assert.deepEqual(readFileSync(join(captionDir, 'model.safetensors')), before, 'the captioner is untouched');
  });
});
