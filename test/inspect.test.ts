import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { RHYME, trainCharModel, type CharModel } from '../examples/humpty_dumpty.js';
import { attentionMaps, attentionRollout } from '../src/eval/inspect/attention_maps.js';
import { headRemoval } from '../src/eval/inspect/head_removal.js';
import { fitProbes, rSquared } from '../src/eval/inspect/linear_probe.js';
import { logitLens } from '../src/eval/inspect/logit_lens.js';
import { probeLayers } from '../src/eval/inspect/probes.js';
import { sampleWindows } from '../src/eval/inspect/residual_stream.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { inspectViT } from '../src/eval/inspect/inspect_vit.js';
import { vitFiles } from '../src/io/vit_dir.js';
import { Llama } from '../src/models/llama.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import { Tensor } from '../src/tensor/tensor.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, runAttn } from './helpers.js';

const close = (got: number, want: number, atol = 1e-5): void => assert.ok(Math.abs(got - want) <= atol, `${got} vs ${want}`);

const work = mkdtempSync(join(tmpdir(), 'attn-inspect-'));
after(() => rmSync(work, { recursive: true, force: true }));

let cm: CharModel;
const modelDir = join(work, 'humpty');
const textPath = join(work, 'rhyme.txt');
const windows = (seed: number, count = 8) => sampleWindows(cm.tokenizer.encode(RHYME), 12, count, new Rng(seed));

before(() => {
  cm = trainCharModel({ steps: 150 });
  writeDirAtomic(modelDir, modelFiles(cm.model, cm.tokenizer));
  writeFileSync(textPath, RHYME.repeat(3));
});

describe('inspect: the parts, checked independently', () => {
  it('attention maps are causal with rows summing to 1; rollout rows sum to 1', () => {
    const m = attentionMaps(cm.model, cm.tokenizer.encode('humpty dumpt'));
    assert.equal(m.maps.length, 2);
    const T = m.T;
    for (const map of m.maps) {
      for (let h = 0; h < m.heads; h++) {
        for (let i = 0; i < T; i++) {
          const row = map.subarray(h * T * T + i * T, h * T * T + (i + 1) * T);
          assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
          for (let j = i + 1; j < T; j++) assert.equal(row[j], 0);
        }
      }
    }
    for (const row of attentionRollout(m)) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  });

  it('removing a head = zeroing its columns of c_proj; the same seed gives the same table', () => {
    const { x, y, B, T } = windows(3);
    const r = headRemoval(cm.model, x, y, [B, T]);
    const D = 32 / 2;
    const proj = cm.model.h[1]!.attn.c_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    // c_proj's input channels h·D … (h+1)·D are head h's output: zero them, and that head is gone.
    for (let o = 0; o < 32; o++) proj.weight.data.fill(0, o * 32 + D, o * 32 + 2 * D);
    const manual = noGrad(() => crossEntropy(cm.model.forward(x, [B, T]).logits, y).item());
    proj.weight.data.set(saved);
    assert.ok(Math.abs(manual - r.loss[1]![1]!) < 1e-5, `${manual} vs ${r.loss[1]![1]}`);
    assert.deepEqual(headRemoval(cm.model, x, y, [B, T]), r);
    assert.ok(r.loss.flat().some((v) => v > r.baseline + 1e-3), 'some head matters');
    assert.equal(r.costliest.length, 3);
    const costs = r.loss.flat().sort((a, b) => b - a);
    assert.equal(r.loss[r.costliest[0]![0]]![r.costliest[0]![1]], costs[0]);
  });

  it('the logit lens\'s last layer is the model itself', () => {
    const { x, y, B, T } = windows(4);
    const lens = logitLens(cm.model, x, y, [B, T]);
    assert.deepEqual(lens.map((l) => l.name), ['embeddings', 'block 1', 'block 2']);
    const full = noGrad(() => crossEntropy(cm.model.forward(x, [B, T]).logits, y).item());
    assert.ok(Math.abs(lens[2]!.loss - full) < 1e-5);
    assert.ok(lens[2]!.loss < lens[0]!.loss);
  });

  it('a linear probe recovers a linear rule; position is readable from the embeddings (learned positions)', () => {
    const rng = new Rng(1);
    const rows = 200;
    const f = Float32Array.from({ length: rows * 3 }, () => rng.normal());
    const t = Float64Array.from({ length: rows }, (_, r) => 2 * f[r * 3]! - f[r * 3 + 1]! + 3);
    const { predictions: [p] } = fitProbes(f, rows, 3, [t], 150, 1e-6);
    assert.ok(rSquared(t.subarray(150), p!) > 0.9999);
    const { x, y, B, T } = windows(5, 32);
    const probes = probeLayers(cm.model, cm.tokenizer, x, y, [B, T]);
    assert.equal(probes.layers.length, 3);
    // Learned position vectors are added at the start: a line through the embeddings finds the position (≈ 0.7 here).
    assert.ok(probes.layers[0]!.positionR2 > 0.5, `position R² ${probes.layers[0]!.positionR2}`);
    // After the blocks the stream knows what comes next better than always guessing the commoner answer.
    assert.ok(probes.layers[2]!.vowelAccuracy > probes.vowelBaseline, `${probes.layers[2]!.vowelAccuracy} vs ${probes.vowelBaseline}`);
  });
});

describe('inspect: the Llama family (RMSNorm, RoPE, grouped-query heads)', () => {
  // 4 query heads sharing 2 key/value heads, each 6 wide: the heads' outputs (24) are wider than the stream (16).
  const config = () => parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 16, head_dim: 6, intermediate_size: 24, vocab_size: cm.tokenizer.vocabSize, block_size: 16, rms_norm_eps: 1e-5 });
  const llama = () => {
    const m = new Llama(config(), new Rng(9));
    m.eval();
    return m;
  };

  it('removing a head = zeroing its columns of o_proj; the lens\'s last layer is the model; maps are causal', () => {
    const m = llama();
    const { x, y, B, T } = windows(6);
    const r = headRemoval(m, x, y, [B, T]);
    assert.equal(r.loss.length, 2);
    assert.equal(r.loss[0]!.length, 4);
    const proj = m.model.layers[0]!.self_attn.o_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    for (let o = 0; o < 16; o++) proj.weight.data.fill(0, o * 24 + 2 * 6, o * 24 + 3 * 6); // head 3 of layer 1
    const manual = noGrad(() => crossEntropy(m.forward(x, [B, T]).logits, y).item());
    proj.weight.data.set(saved);
    assert.ok(Math.abs(manual - r.loss[0]![2]!) < 1e-5, `${manual} vs ${r.loss[0]![2]}`);
    const lens = logitLens(m, x, y, [B, T]);
    assert.deepEqual(lens.map((l) => l.name), ['embeddings', 'block 1', 'block 2']);
    assert.ok(Math.abs(lens[2]!.loss - r.baseline) < 1e-5);
    const maps = attentionMaps(m, cm.tokenizer.encode('humpty'));
    assert.equal(maps.maps[0]!.length, 4 * 6 * 6);
    assert.equal(maps.maps[1]![0 * 36 + 0 * 6 + 1], 0, 'position 1 is not seen from position 0');
  });

  it('attn inspect reads an attn Llama directory; the same seed gives the same table', () => {
    const dir = join(work, 'llama');
    writeDirAtomic(dir, modelFiles(llama(), cm.tokenizer));
    const run = (out: string) => runAttn(['inspect', '--model', dir, '--data', textPath, '--out', join(work, out), '--seed', '2', '--windows', '4', '--backend', 'js'], work);
    const a = run('la');
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /1\.4: .*\n.*2\.4: /, 'four heads in each of the two layers');
    assert.equal(run('lb').code, 0);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('la'), removal('lb'));
    assert.ok(existsSync(join(work, 'la', 'probes.png')));
  });
});

describe('inspect: a ViT (the class token and image patches, no causal mask)', () => {
  // 8×8 pictures, 4×4 patches: the class token and 4 patches. Class k is bright in quarter k.
  const images = (count: number, seed: number) => {
    const rng = new Rng(seed);
    const pixels = new Uint8Array(count * 64);
    const labels = new Int32Array(count);
    for (let n = 0; n < count; n++) {
      labels[n] = n % 4;
      for (let i = 0; i < 64; i++) {
        const [x, y] = [i % 8, Math.floor(i / 8)];
        pixels[n * 64 + i] = (Math.floor(y / 4) * 2 + Math.floor(x / 4) === labels[n] ? 200 : 50) + rng.int(40);
      }
    }
    return { pixels, labels, count, height: 8, width: 8, channels: 1, classes: ['0', '1', '2', '3'] };
  };
  const vit = () => {
    const m = new ViT(parseViTConfig({ image_height: 8, image_width: 8, channels: 1, patch_size: 4, d_model: 16, n_layer: 2, n_head: 2, d_ff: 32, num_classes: 4, labels: ['0', '1', '2', '3'], pixel_mean: [0.4], pixel_std: [0.3] }), new Rng(5));
    m.eval();
    return m;
  };

  it('removing a head = zeroing its columns of out_proj; the last lens reading is the model; maps see every token', () => {
    const m = vit();
    const set = images(16, 1);
    const r = inspectViT(m, set, { seed: 3, images: 16 });
    assert.equal(r.attention.T, 5);
    assert.ok(r.attention.maps[0]![0 * 25 + 0 * 5 + 4]! > 0, 'the class token sees the last patch: no causal mask');
    for (const row of r.rollout) close(row.reduce((a, b) => a + b, 0), 1);
    assert.equal(r.classRollout.length, 4);
    assert.deepEqual(r.probes.targets.map((t) => t.name), ['position', 'brightness of the patch']);
    assert.equal(r.probes.layers.length, 3);
    for (const x of r.probes.layers) assert.ok(x.scores.every(Number.isFinite));
    // The same 16 images in the order the seed chose are the whole set: the loss does not depend on order.
    const x = new Tensor(Float32Array.from(set.pixels, (v) => (v / 255 - 0.4) / 0.3), [16, 8, 8, 1]);
    const lossNow = () => noGrad(() => crossEntropy(m.forward(x).logits, set.labels).item());
    close(r.removal.baseline, lossNow());
    close(r.lens[2]!.loss, lossNow());
    const proj = m.blocks[1]!.self_attn.out_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    for (let o = 0; o < 16; o++) proj.weight.data.fill(0, o * 16 + 8, o * 16 + 16); // head 2 of layer 2
    const manual = lossNow();
    proj.weight.data.set(saved);
    close(manual, r.removal.loss[1]![1]!);
    assert.deepEqual(inspectViT(m, set, { seed: 3, images: 16 }).removal, r.removal);
  });

  it('attn inspect on a ViT directory and its images: PNGs with the rollout over the picture; the same seed, the same table', () => {
    const dir = join(work, 'vit-model');
    writeDirAtomic(dir, vitFiles(vit()));
    const data = join(work, 'quarters');
    mkdirSync(data, { recursive: true });
    const idx = (dims: number[], bytes: Uint8Array) => {
      const header = Buffer.alloc(4 + 4 * dims.length);
      header[2] = 8;
      header[3] = dims.length;
      dims.forEach((d, k) => header.writeUInt32BE(d, 4 + 4 * k));
      return Buffer.concat([header, bytes]);
    };
    for (const [split, n] of [['train', 8], ['t10k', 24]] as const) {
      const set = images(n, n);
      writeFileSync(join(data, `${split}-images-idx3-ubyte`), idx([n, 8, 8], set.pixels));
      writeFileSync(join(data, `${split}-labels-idx1-ubyte`), idx([n], Uint8Array.from(set.labels)));
    }
    const run = (out: string) => runAttn(['inspect', '--model', dir, '--data', data, '--out', join(work, out), '--seed', '4', '--images', '20', '--backend', 'js'], work);
    const a = run('va');
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /test loss [\d.]+ \(20 test images, seed 4\)/);
    assert.match(a.stdout, /class token accuracy by layer: embeddings [\d.]+%, layer 1 [\d.]+%, layer 2 [\d.]+%/);
    assert.equal(run('vb').code, 0);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('va'), removal('vb'));
    const over = PNG.sync.read(readFileSync(join(work, 'va', 'rollout_over_image.png')));
    assert.deepEqual([over.width, over.height], [64, 64], 'the 8×8 picture, 8 times larger');
    assert.equal((readFileSync(join(work, 'va', 'index.html'), 'utf8').match(/class="top"/g) ?? []).length, 3);
    assertUserError(runAttn(['inspect', '--model', dir, '--out', join(work, 'x')], work), /give --data DIR: the images/);
  });
});

describe('attn inspect', () => {
  it('writes PNGs, report.json and index.html; the same seed reproduces the head-removal table', () => {
    const a = runAttn(['inspect', '--model', modelDir, '--data', textPath, '--out', join(work, 'a'), '--seed', '7', '--windows', '8', '--backend', 'js'], work);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /costliest heads: \d\.\d, \d\.\d, \d\.\d/);
    const b = runAttn(['inspect', '--model', modelDir, '--data', textPath, '--out', join(work, 'b'), '--seed', '7', '--windows', '8', '--backend', 'js'], work);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('a'), removal('b'));
    for (const f of ['index.html', 'attention_layer1.png', 'attention_layer2.png', 'rollout.png', 'head_removal.png', 'logit_lens.png', 'probes.png']) assert.ok(existsSync(join(work, 'a', f)), f);
    const png = PNG.sync.read(readFileSync(join(work, 'a', 'attention_layer1.png')));
    assert.ok(png.width > png.height, 'two heads side by side');
    const html = readFileSync(join(work, 'a', 'index.html'), 'utf8');
    assert.equal((html.match(/class="top"/g) ?? []).length, 3);
  });

  it('an unsupported model kind, or no text: one clear line, non-zero exit', () => {
    // Every attn model kind is supported now; a foreign directory (a BERT config, no weights attn reads) is refused in one line.
    const other = join(work, 'bert');
    writeDirAtomic(other, { 'config.json': JSON.stringify({ model_type: 'bert', architectures: ['BertModel'] }) });
    assertUserError(runAttn(['inspect', '--model', other, '--data', textPath, '--out', join(work, 'x')], work), /bert has no model\.safetensors/);
    assertUserError(runAttn(['inspect', '--model', modelDir, '--out', join(work, 'x')], work), /give --data FILE/);
    assertUserError(runAttn(['inspect', '--model', modelDir, '--data', textPath, '--out', join(work, 'x'), '--windows', '2'], work), /--windows must be ≥ 4/);
  });
});
