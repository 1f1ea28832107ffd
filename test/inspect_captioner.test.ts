import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { runCaptionTraining } from '../src/cli/caption.js';
import { writeFakeFashion } from './fake_fashion.js';
import { assertUserError, runAttn } from './helpers.js';

describe('attn inspect: a captioner (ViT patches as the source)', () => {
  let work: string;
  let data: string;
  let model: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'attn-inspect-cap-'));
    data = join(work, 'fashion');
    model = join(work, 'model');
    writeFakeFashion(data, { train: 64, t10k: 40 }, 9);
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
