import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { runCaptionTraining } from '../src/cli/caption.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, runAttn } from './helpers.js';

/** Fashion-MNIST-shaped IDX files: a bright or dim bar whose width is the class. */
function writeIdx(dir: string, counts: Record<string, number>): void {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(9);
  const idx = (dims: number[], data: Uint8Array): Buffer => {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header[2] = 8;
    header[3] = dims.length;
    dims.forEach((d, k) => header.writeUInt32BE(d, 4 + 4 * k));
    return Buffer.concat([header, data]);
  };
  for (const [split, n] of Object.entries(counts)) {
    const pixels = new Uint8Array(n * 784);
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    for (let i = 0; i < n; i++) {
      const w = 4 + 2 * labels[i]!;
      const v = rng.random() < 0.5 ? 90 : 230;
      for (let y = 2; y < 26; y++) pixels.fill(v, i * 784 + y * 28 + 14 - w / 2, i * 784 + y * 28 + 14 + w / 2);
    }
    writeFileSync(join(dir, `${split}-images-idx3-ubyte`), idx([n, 28, 28], pixels));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), idx([n], labels));
  }
}

describe('attn inspect: a captioner (ViT patches as the source)', () => {
  let work: string;
  let data: string;
  let model: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'attn-inspect-cap-'));
    data = join(work, 'fashion');
    model = join(work, 'model');
    writeIdx(data, { train: 64, t10k: 40 });
    runCaptionTraining({ data, out: model, backend: 'js' }, { dModel: 16, layers: 1, decoderLayers: 1, heads: 2, epochs: 1, batchSize: 32, lr: 4e-3, warmupSteps: 1, testImages: 40, logInterval: 1000 }, () => {});
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('maps of three kinds over the class token and patches, the rollout over the picture; the same seed, the same table; wrong data refused', () => {
    const run = (out: string, d: string) => runAttn(['inspect', '--model', model, '--data', d, '--out', join(work, out), '--seed', '2', '--examples', '8', '--backend', 'js'], work);
    const a = run('a', data);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /costliest heads: (encoder|self|cross) 1\.\d/);
    const b = run('b', data);
    const rep = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8'));
    assert.deepEqual(rep('a').removal, rep('b').removal);
    const r = rep('a');
    const patches = r.srcLabels.length - 1;
    assert.equal(r.attention.cross.keys ?? r.attention.cross.T, 1 + patches);
    assert.equal(r.attention.encoder.T, 1 + patches);
    assert.equal(r.probes.encoder.targets[1].name, 'brightness of the patch');
    for (const f of ['index.html', 'encoder_layer1.png', 'decoder_self_layer1.png', 'cross_layer1.png', 'rollout_cross.png', 'head_removal_cross.png', 'logit_lens.png', 'probes_encoder.png', 'probes_decoder.png', 'rollout_over_image.png']) assert.ok(existsSync(join(work, 'a', f)), f);
    const overlay = PNG.sync.read(readFileSync(join(work, 'a', 'rollout_over_image.png')));
    assert.equal(overlay.height, 28 * 6, 'the picture, enlarged 6 times');
    assert.ok(overlay.width > 42 * 6 * (r.tgtLabels.length - 1), 'one panel per caption position');

    const text = join(work, 'pairs.tsv');
    writeFileSync(text, 'a\tb\n');
    assertUserError(run('x', text), /--data .*pairs\.tsv: expected the Fashion-MNIST folder/);
    assertUserError(run('x', join(work, 'nowhere')), /--data .*nowhere: expected the Fashion-MNIST folder/);
    const pngs = join(work, 'pngs');
    mkdirSync(join(pngs, 'cat'), { recursive: true });
    assertUserError(run('x', pngs), /no \.png files|captioning reads Fashion-MNIST's IDX files/);
  });
});
