import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { setBackend } from '../src/backend/index.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { captionVocabulary, encodeCaption } from '../src/data/fashion_captions.js';
import { captionAttention, captionAttentionAsync, writeCaptions, writeCaptionsAsync } from '../src/generate/caption.js';
import { Captioner } from '../src/models/captioner.js';
import { parseCaptionerConfig } from '../src/models/captioner_config.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import { moveToBackend } from '../src/nn/placement.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { runAttn } from './helpers.js';
import { assertNear, sameStep, webgpu, webgpuSkip } from './webgpu_helpers.js';
import { writeFakeFashion } from './fake_fashion.js';

/*
 * The image captioner on webgpu against js (the oracle): one training step
 * (the loss and every gradient), greedy captions (the same words) and the
 * cross-attention behind them, then `attn caption train`, `eval` and
 * captioning a PNG with --heatmap through the CLI. SwiftShader without a
 * GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu captioner tests');
const root = mkdtempSync(join(tmpdir(), 'attn-webgpu-caption-'));
after(() => {
  setBackend('js');
  rmSync(root, { recursive: true, force: true });
});

/** A captioner over 14×21 canvases in 7×7 patches (6 patches + the class token), one encoder and one decoder layer. */
function tinyCaptioner(seed: number): Captioner {
  const image = parseViTConfig({
    image_height: 14, image_width: 21, channels: 1, patch_size: 7, d_model: 16, n_layer: 1, n_head: 2, d_ff: 32,
    num_classes: 10, labels: Array.from({ length: 10 }, (_, i) => `c${i}`), pixel_mean: [0.3], pixel_std: [0.4],
  });
  return new Captioner(parseCaptionerConfig({ image, vocab: captionVocabulary(), max_length: 9, n_decoder_layers: 1 }, 'test'), new Rng(seed));
}

const rng = new Rng(41);
const pictures = (n: number) => Float32Array.from({ length: n * 14 * 21 }, () => rng.normal());

describe('the captioner on webgpu against js', { skip }, () => {
  it('one training step: the caption and class losses and every gradient', async () => {
    const vocab = captionVocabulary();
    const captions = ['a dark small coat on the left', 'a bright large bag in the middle', 'a dark large sandal on the right'];
    const T = 9;
    const tokensIn = new Int32Array(captions.length * T);
    const targets = new Int32Array(captions.length * T);
    captions.forEach((c, r) => {
      const ids = encodeCaption(c, vocab); // words + <eos>
      tokensIn[r * T] = 1; // <bos>
      tokensIn.set(ids.subarray(0, ids.length - 1), r * T + 1);
      targets.set(ids, r * T);
    });
    const images = pictures(captions.length);
    const labels = Int32Array.of(4, 8, 5);
    await sameStep(
      () => tinyCaptioner(3),
      (m) => (m as Captioner).forward(Tensor.from(images, [3, 14, 21, 1]), tokensIn, targets, { labels, classLossWeight: 0.5 }).loss!,
      'captioner',
    );
  });

  it("greedy captions are js's words; the cross-attention behind one is js's within 1e-5", async () => {
    const images = pictures(4);
    setBackend('js');
    const ref = tinyCaptioner(7);
    const want = writeCaptions(ref, Tensor.from(images, [4, 14, 21, 1]));
    const wantAtt = captionAttention(ref, Tensor.from(images.subarray(0, 14 * 21), [1, 14, 21, 1]), want.ids[0]!);
    await webgpu();
    try {
      const model = tinyCaptioner(7);
      moveToBackend(model);
      const got = await writeCaptionsAsync(model, Tensor.from(images, [4, 14, 21, 1]));
      assert.deepEqual(got.ids, want.ids);
      assert.deepEqual(got.captions, want.captions);
      const att = await captionAttentionAsync(model, Tensor.from(images.subarray(0, 14 * 21), [1, 14, 21, 1]), want.ids[0]!);
      assert.deepEqual(att.words, wantAtt.words);
      assert.equal(att.patches.length, wantAtt.patches.length);
      att.patches.forEach((p, i) => assertNear(p, wantAtt.patches[i]!, 0, 1e-5, `word ${i}'s patch weights`));
      assertNear(att.classToken, wantAtt.classToken, 0, 1e-5, 'class-token shares');
    } finally {
      setBackend('js');
    }
  });

  it('decoding again creates no device buffers: every step gives its scratch, its picks, attention\'s saved state and its constants back', async () => {
    await webgpu();
    try {
      const model = tinyCaptioner(7);
      moveToBackend(model);
      const batch = Tensor.from(pictures(4), [4, 14, 21, 1]);
      // Two decodings first: what the last read of one leaves released is reusable only from the next one's first read on.
      await writeCaptionsAsync(model, batch);
      await writeCaptionsAsync(model, batch);
      const created = openedWebGpu()!.stats.buffersCreated;
      await writeCaptionsAsync(model, batch);
      assert.equal(openedWebGpu()!.stats.buffersCreated, created, 'buffers created by a second decoding');
    } finally {
      setBackend('js');
    }
  });
});

describe('attn caption --backend webgpu', { skip }, () => {
  it("trains as js does (every step's loss, the scores after each epoch), then eval and a PNG's caption and heatmap are js's", () => {
    const data = join(root, 'fake-fashion');
    writeFakeFashion(data, { train: 32, t10k: 8 });
    const args = ['caption', 'train', '--data', data, '--d-model', '16', '--layers', '1', '--decoder-layers', '1', '--heads', '2', '--patch', '7',
      '--epochs', '2', '--batch-size', '16', '--lr', '4e-3', '--warmup-steps', '1', '--test-images', '8', '--log-interval', '1'];
    const js = runAttn([...args, '--backend', 'js', '--out', join(root, 'js')], root);
    assert.equal(js.code, 0, js.stderr);
    const gpu = runAttn([...args, '--backend', 'webgpu', '--out', join(root, 'gpu')], root);
    assert.equal(gpu.code, 0, gpu.stderr);
    assert.match(gpu.stderr, /backend webgpu/);
    type Summary = { steps: number; epochs: number; class_word_accuracy: number; property_accuracy: number; bleu4: number };
    const [want, got] = [js, gpu].map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Summary);
    assert.equal(got!.steps, want!.steps);
    assert.equal(got!.epochs, 2);
    // Every step's loss (one step a progress line) within 1e-3 relative.
    const losses = (r: { stderr: string }) => [...r.stderr.matchAll(/ loss ([\d.]+)/g)].map((m) => Number(m[1]));
    assert.equal(losses(gpu).length, want!.steps);
    assertNear(losses(gpu), losses(js), 1e-3, 0, 'step losses');
    // Greedy captions of a model this close to js's: the same words, so the same scores after each epoch.
    const evals = (r: { stderr: string }) => r.stderr.split('\n').filter((l) => /^epoch \d+ \(step/.test(l));
    assert.equal(evals(gpu).length, 2);
    assert.deepEqual(evals(gpu), evals(js));
    assert.deepEqual([got!.class_word_accuracy, got!.property_accuracy, got!.bleu4], [want!.class_word_accuracy, want!.property_accuracy, want!.bleu4]);
    const trainer = JSON.parse(readFileSync(join(root, 'gpu', 'trainer.json'), 'utf8')) as { step: number };
    assert.equal(trainer.step, got!.steps);

    // The webgpu-trained model, evaluated and captioning a PNG on webgpu and on js: the same output.
    const model = join(root, 'gpu');
    const evaluate = (backend: string) => runAttn(['caption', 'eval', '--model', model, '--data', data, '--show', '8', '--json', '--backend', backend], root);
    const [evalJs, evalGpu] = [evaluate('js'), evaluate('webgpu')];
    assert.equal(evalGpu.code, 0, evalGpu.stderr);
    assert.equal(evalJs.code, 0, evalJs.stderr);
    assert.equal(evalGpu.stdout, evalJs.stdout);
    const image = join(root, 'bar.png');
    const png = new PNG({ width: 42, height: 28, colorType: 0 });
    for (let i = 0; i < 42 * 28; i++) {
      const v = i % 42 >= 4 && i % 42 < 18 && i >= 2 * 42 && i < 26 * 42 ? 230 : 0;
      png.data.set([v, v, v, 255], i * 4);
    }
    writeFileSync(image, PNG.sync.write(png, { colorType: 0 }));
    const caption = (backend: string) => {
      const heatmap = join(root, `heat-${backend}.png`);
      const r = runAttn(['caption', image, '--model', model, '--heatmap', heatmap, '--backend', backend], root);
      assert.equal(r.code, 0, r.stderr);
      return { r, heat: PNG.sync.read(readFileSync(heatmap)) };
    };
    const [capJs, capGpu] = [caption('js'), caption('webgpu')];
    assert.equal(capGpu.r.stdout, capJs.r.stdout);
    const words = (r: { stderr: string }) => /one panel per word, left to right: (.*)/.exec(r.stderr)?.[1];
    assert.ok(words(capJs.r), capJs.r.stderr);
    assert.equal(words(capGpu.r), words(capJs.r));
    assert.equal(capGpu.heat.width, capJs.heat.width);
    // Weights within 1e-5 of js's: a pixel's colour, rounded to a byte, may differ by one step.
    const worst = capGpu.heat.data.reduce((m, v, i) => Math.max(m, Math.abs(v - capJs.heat.data[i]!)), 0);
    assert.ok(worst <= 1, `heatmap pixels differ by up to ${worst}`);
  });
});
