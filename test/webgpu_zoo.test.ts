import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import type { DeviceArray } from '../src/backend/storage.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { Transformer } from '../src/models/transformer.js';
import { parseTransformerConfig } from '../src/models/transformer_config.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import type { Module } from '../src/nn/module.js';
import { backward } from '../src/tensor/autograd.js';
import { loraLinear } from '../src/tensor/ops/lora_linear.js';
import { maxPool } from '../src/tensor/ops/max_pool.js';
import { meanPool } from '../src/tensor/ops/mean_pool.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { concat, slice, transpose } from '../src/tensor/ops/shape.js';
import { mul } from '../src/tensor/ops/elementwise.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matryoshkaInfoNCE } from '../src/train/contrastive.js';
import { encodePng } from '../src/util/png.js';
import { Rng } from '../src/util/rng.js';
import { runAttn } from './helpers.js';
import { assertNear, readGrad, sameStep, webgpu, webgpuSkip } from './webgpu_helpers.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * The ops the ViT, the embedder, the encoder–decoder and the LoRA trainers
 * add to a GPT — max and mean pooling, L2 normalisation, the layout copies
 * (transpose, slice, concat, patchify) and the fused LoRA linear — on webgpu
 * against js (the oracle): each Backend entry point on its own, then the
 * ops' gradients, then one training step of a tiny ViT and a tiny embedder
 * (the loss and every gradient). SwiftShader without a GPU; skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu model-zoo tests');
after(() => setBackend('js'));

const rng = new Rng(29);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

const gpu = webgpu;

/** Host values on the device, from element 3 of a larger array (the kernels must honour views' offsets). */
function up(be: Backend<DeviceArray>, values: Float32Array): DeviceArray {
  const padded = new Float32Array(values.length + 4);
  padded.set(values, 3);
  return be.device!.view(be.device!.upload(padded), 3, values.length);
}
const down = (be: Backend<DeviceArray>, s: DeviceArray) => be.device!.read(s);

describe('webgpu entry points of the model zoo against js', { skip }, () => {
  it('maxPool forward (ties: the first position wins) and backward', async () => {
    const [B, T, C] = [3, 5, 7];
    const x = rand(B * T * C).map((v) => Math.round(v * 2) / 2); // ties are common
    const dy = rand(B * C);
    const dx0 = rand(B * T * C);
    const [out, winner, dx] = [new Float32Array(B * C), new Float32Array(B * C), dx0.slice()];
    jsBackend.maxPoolForward(x, out, winner, B, T, C);
    jsBackend.maxPoolBackward(dy, winner, dx, B, T, C);
    const be = await gpu();
    const [gOut, gWin, gDx] = [up(be, new Float32Array(B * C)), up(be, new Float32Array(B * C)), up(be, dx0)];
    be.maxPoolForward(up(be, x), gOut, gWin, B, T, C);
    be.maxPoolBackward(up(be, dy), gWin, gDx, B, T, C);
    assert.deepEqual(await down(be, gOut), out);
    assert.deepEqual(await down(be, gWin), winner);
    assert.deepEqual(await down(be, gDx), dx, 'one add per slot: bit-identical');
    setBackend('js');
  });

  it('l2Normalize forward and backward (a zero row stays finite; 64 and 32 lanes a row)', async () => {
    const be = await gpu();
    for (const [rows, D] of [[5, 300], [11, 48]] as const) {
      const x = rand(rows * D);
      x.fill(0, D, 2 * D);
      const [dy, dx0] = [rand(rows * D), rand(rows * D)];
      const [y, norms, dx] = [new Float32Array(rows * D), new Float32Array(rows), dx0.slice()];
      jsBackend.l2NormalizeForward(x, y, norms, rows, D);
      jsBackend.l2NormalizeBackward(y, norms, dy, dx, rows, D);
      const [gy, gn, gdx] = [up(be, new Float32Array(rows * D)), up(be, new Float32Array(rows)), up(be, dx0)];
      be.l2NormalizeForward(up(be, x), gy, gn, rows, D);
      be.l2NormalizeBackward(gy, gn, up(be, dy), gdx, rows, D);
      assertNear(await down(be, gy), y, 1e-5, 1e-7, `y ${rows}×${D}`);
      assertNear(await down(be, gn), norms, 1e-5, 0, `norms ${rows}×${D}`);
      assertNear(await down(be, gdx), dx, 1e-4, 1e-6, `dx ${rows}×${D}`);
    }
    setBackend('js');
  });

  it('permute (rank 5, written and accumulated) and copyRows (strided, written and accumulated): bit-identical', async () => {
    const shape = [2, 3, 4, 5, 3];
    const perm = [0, 3, 1, 4, 2];
    const n = shape.reduce((a, b) => a * b, 1);
    const src = rand(n);
    const dst0 = rand(n);
    const be = await gpu();
    for (const acc of [false, true]) {
      const want = dst0.slice();
      jsBackend.permute(src, shape, perm, want, acc);
      const got = up(be, dst0);
      be.permute(up(be, src), shape, perm, got, acc);
      assert.deepEqual(await down(be, got), want, `permute accumulate=${acc}`);

      const layout = { rows: 4, cols: 7, srcOffset: 2, srcStride: 11, dstOffset: 5, dstStride: 9 };
      const rowsWant = dst0.slice(0, 60);
      jsBackend.copyRows(src, rowsWant, layout, acc);
      const rowsGot = up(be, dst0.slice(0, 60));
      be.copyRows(up(be, src), rowsGot, layout, acc);
      assert.deepEqual(await down(be, rowsGot), rowsWant, `copyRows accumulate=${acc}`);
    }
    setBackend('js');
  });
});

/** Run `f` on js and on webgpu from the same host inputs; compare its value and the inputs' gradients. */
async function sameOnBoth(inputs: Float32Array[], shapes: number[][], f: (xs: Tensor[]) => Tensor, what: string, rtol = 1e-4): Promise<void> {
  const run = async () => {
    const xs = inputs.map((v, i) => Tensor.from(v, shapes[i], true));
    const y = f(xs);
    const weights = Tensor.from(Float32Array.from({ length: y.size }, (_, i) => Math.sin(i + 1)), y.shape);
    const loss = sum(mul(y, weights));
    backward(loss);
    return { y: await y.read(), grads: await Promise.all(xs.map(readGrad)) };
  };
  setBackend('js');
  const want = await run();
  await gpu();
  const got = await run();
  setBackend('js');
  assertNear(got.y, want.y, rtol, 1e-6, `${what}: value`);
  got.grads.forEach((g, i) => assertNear(g, want.grads[i]!, rtol, 1e-6, `${what}: gradient of input ${i}`));
}

describe('webgpu ops of the model zoo: values and gradients as js', { skip }, () => {
  it('maxPool, meanPool (padding), transpose, slice, concat', async () => {
    const [B, T, C] = [2, 5, 6];
    const padding = Uint8Array.from({ length: B * T }, (_, i) => (i % 5 >= 3 && i >= 5 ? 1 : 0));
    await sameOnBoth([rand(B * T * C)], [[B, T, C]], ([x]) => maxPool(x!), 'maxPool');
    await sameOnBoth([rand(B * T * C)], [[B, T, C]], ([x]) => meanPool(x!, padding), 'meanPool');
    await sameOnBoth([rand(B * T * C)], [[B, T, C]], ([x]) => transpose(x!, 0, 2), 'transpose');
    await sameOnBoth([rand(B * T * C), rand(B * 2 * C)], [[B, T, C], [B, 2, C]], ([x, y]) => concat([slice(x!, 1, 1, 4), y!, x!], 1), 'slice + concat');
  });

  it('loraLinear (separate adapter input, every gradient)', async () => {
    const [rows, inF, outF, r] = [6, 8, 5, 2];
    await sameOnBoth(
      [rand(rows * inF), rand(outF * inF), rand(outF), rand(rows * inF), rand(r * inF), rand(outF * r)],
      [[rows, inF], [outF, inF], [outF], [rows, inF], [r, inF], [outF, r]],
      ([x, w, b, u, A, Bm]) => loraLinear(x!, w!, b!, u!, A!, Bm!, 0.5),
      'loraLinear',
    );
  });
});

describe('a training step of the model zoo on webgpu: loss and every gradient as js (rtol 1e-3)', { skip }, () => {
  it('ViT (patchify, concat, class-token slice)', async () => {
    const cfg = parseViTConfig({
      image_height: 4, image_width: 4, channels: 2, patch_size: 2, d_model: 8, n_layer: 1, n_head: 2, d_ff: 16,
      num_classes: 3, labels: ['a', 'b', 'c'], pixel_mean: [0, 0], pixel_std: [1, 1],
    });
    const images = rand(3 * 4 * 4 * 2);
    const labels = Int32Array.of(0, 2, 1);
    await sameStep(() => new ViT(cfg, new Rng(3)), (m) => (m as ViT).forward(Tensor.from(images, [3, 4, 4, 2]), labels).loss!, 'ViT');
  });

  it('encoder–decoder (padding masks, cross-attention, sinusoidal positions, tied output)', async () => {
    const cfg = parseTransformerConfig({ vocab_size: 13, n_encoder_layers: 1, n_decoder_layers: 1, d_model: 16, n_head: 2, d_ff: 32, pad_id: 0 });
    const [B, Ts, Tt] = [2, 5, 4];
    const src = { ids: Int32Array.of(3, 4, 5, 6, 7, 8, 9, 10, 0, 0), shape: [B, Ts] as [number, number] };
    const tgtIn = { ids: Int32Array.of(1, 5, 6, 7, 1, 9, 0, 0), shape: [B, Tt] as [number, number] };
    const targets = Int32Array.of(5, 6, 7, 2, 9, 2, 0, 0);
    await sameStep(() => new Transformer(cfg, new Rng(6)), (m) => (m as Transformer).forward(src, tgtIn, targets).loss!, 'seq2seq');
  });

  it('embedder (mean pool with padding, Matryoshka InfoNCE: l2Normalize, transpose, slice)', async () => {
    const cfg = parseEmbedderConfig({ vocab_size: 20, d_model: 16, n_layer: 1, n_head: 2, matryoshka_dims: [4, 8] });
    const [B, T] = [4, 5];
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % 20);
    const padding = Uint8Array.from({ length: B * T }, (_, i) => (i % T === 4 && i > T ? 1 : 0));
    const loss = (m: Module) => {
      const emb = (m as Embedder).forward(ids, [B, T], padding);
      return matryoshkaInfoNCE(slice(emb, 0, 0, 2), slice(emb, 0, 2, 4), [4, 8, 16], { temperature: 0.5, symmetric: true }).loss;
    };
    await sameStep(() => new Embedder(cfg, new Rng(2)), loss, 'embedder');
  });
});

/** IDX files (MNIST's format) of `count` 8×8 images: class 0 bright on the left, class 1 on the right. */
function writeIdxSet(dir: string, split: 'train' | 't10k', count: number, seed: number): void {
  const r = new Rng(seed);
  const side = 8;
  const idx = (dims: number[], data: Uint8Array) => {
    const header = new Uint8Array(4 + 4 * dims.length);
    header[2] = 0x08;
    header[3] = dims.length;
    dims.forEach((d, i) => new DataView(header.buffer).setUint32(4 + 4 * i, d));
    return Buffer.concat([header, data]);
  };
  const labels = Uint8Array.from({ length: count }, (_, n) => n % 2);
  const pixels = Uint8Array.from({ length: count * side * side }, (_, i) => {
    const n = Math.floor(i / (side * side));
    const lit = (i % side < side / 2) === (labels[n] === 0);
    return Math.round(Math.min(255, Math.max(0, (lit ? 170 : 85) + r.normal() * 40)));
  });
  writeFileSync(join(dir, `${split}-images-idx3-ubyte`), idx([count, side, side], pixels));
  writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), idx([count], labels));
}

describe('attn vit train --backend webgpu', { skip }, () => {
  it('trains as js does (test loss and accuracy after each epoch) and saves a model js can evaluate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-webgpu-vit-'));
    writeIdxSet(dir, 'train', 24, 1);
    writeIdxSet(dir, 't10k', 8, 2);
    const args = ['vit', 'train', '--data', dir, '--patch', '4', '--d-model', '16', '--layers', '1', '--heads', '2', '--epochs', '2', '--batch-size', '8', '--warmup-steps', '1', '--log-interval', '2'];
    const js = runAttn([...args, '--backend', 'js', '--out', join(dir, 'js')], dir);
    assert.equal(js.code, 0, js.stderr);
    const gpuRun = runAttn([...args, '--backend', 'webgpu', '--out', join(dir, 'gpu')], dir);
    assert.equal(gpuRun.code, 0, gpuRun.stderr);
    assert.match(gpuRun.stderr, /backend webgpu/);
    const [want, got] = [js, gpuRun].map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { steps: number; test_loss: number; test_accuracy: number });
    assert.equal(got!.steps, want!.steps);
    assert.ok(Math.abs(got!.test_loss - want!.test_loss) <= 1e-3 * Math.abs(want!.test_loss), `test loss: webgpu ${got!.test_loss}, js ${want!.test_loss}`);
    assert.equal(got!.test_accuracy, want!.test_accuracy);
    // The progress lines' accuracy, counted from the device's argmax, is the one js counts.
    const acc = (r: { stderr: string }) => [...r.stderr.matchAll(/acc(?:uracy)? ([\d.]+)%/g)].map((m) => m[1]);
    assert.deepEqual(acc(gpuRun), acc(js));
    // With --log-interval 2 a device reads every other step's loss: its lines show the loss of the steps read (a number, not NaN), within 5 % of js's window means here.
    const losses = (r: { stderr: string }) => [...r.stderr.matchAll(/ loss ([\d.]+|NaN) acc/g)].map((m) => Number(m[1]));
    const [jsLosses, gpuLosses] = [losses(js), losses(gpuRun)];
    assert.equal(gpuLosses.length, jsLosses.length);
    gpuLosses.forEach((l, i) => assert.ok(Number.isFinite(l) && Math.abs(l - jsLosses[i]!) <= 0.05 * jsLosses[i]!, `progress line ${i}: loss ${l} on webgpu, ${jsLosses[i]} on js`));
    // The saved model: vit eval and vit predict on webgpu print what they print on js.
    const png = join(dir, 'one.png');
    writeFileSync(png, encodePng({ width: 8, height: 8, rgba: Uint8Array.from({ length: 256 }, (_, i) => (i % 4 === 3 ? 255 : (i >> 2) % 8 < 4 ? 200 : 60)) }));
    for (const args of [['vit', 'eval', '--model', join(dir, 'gpu'), '--data', dir], ['vit', 'predict', '--model', join(dir, 'gpu'), png]]) {
      const [onJs, onGpu] = ['js', 'webgpu'].map((b) => runAttn([...args, '--backend', b], dir));
      assert.equal(onJs!.code, 0, onJs!.stderr);
      assert.equal(onGpu!.code, 0, onGpu!.stderr);
      if (args[1] === 'predict') assert.equal(onGpu!.stdout, onJs!.stdout);
      else {
        const [want, got] = [onJs, onGpu].map((r) => JSON.parse(r!.stdout) as { accuracy: number; loss: number; images: number });
        assert.equal(got!.accuracy, want!.accuracy);
        assert.equal(got!.images, want!.images);
        assert.ok(Math.abs(got!.loss - want!.loss) <= 1e-4 * Math.abs(want!.loss), `vit eval loss: webgpu ${got!.loss}, js ${want!.loss}`);
      }
    }
    const trainer = JSON.parse(readFileSync(join(dir, 'gpu', 'trainer.json'), 'utf8')) as { step: number };
    assert.equal(trainer.step, got!.steps);
  });
});
