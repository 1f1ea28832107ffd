import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { runPointCloudEval, runPointCloudEvalAsync } from '../src/cli/pointcloud.js';
import { generateShapes, shapesDataset } from '../src/data/point_clouds.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { readPointFile } from '../src/data/point_cloud_files.js';
import { loadPointTransformer } from '../src/io/point_transformer_dir.js';
import { PointCloudTransformer } from '../src/models/point_transformer.js';
import { parsePointTransformerConfig } from '../src/models/point_transformer_config.js';
import { moveToBackend } from '../src/nn/placement.js';
import { Tensor } from '../src/tensor/tensor.js';
import { parsePointCloudTrainOptions } from '../src/train/point_cloud_options.js';
import { predictPointClouds, predictPointCloudsAsync, trainPointCloudsAsync } from '../src/train/point_cloud_trainer.js';
import { Rng } from '../src/util/rng.js';
import { runAttn } from './helpers.js';
import { assertNear, sameStep, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * The point-cloud transformer on webgpu against js (the oracle): one training
 * step of a tiny model (the loss and every gradient), then `attn pointcloud
 * train`, `eval` and `predict` with --backend webgpu against --backend js.
 * SwiftShader without a GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu point-cloud tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-pointcloud-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

const rng = new Rng(31);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

describe('a point-cloud transformer training step on webgpu: loss and every gradient as js (rtol 1e-3)', { skip }, () => {
  it('mini-PointNet (max over each patch), centre embedding, class token, encoder layer', async () => {
    const cfg = parsePointTransformerConfig({
      num_groups: 4, group_size: 3, point_hidden: 8, d_model: 8, n_layer: 1, n_head: 2, d_ff: 16, dropout: 0, num_classes: 3, labels: ['a', 'b', 'c'],
    }, 'test config');
    const [N, G, K] = [3, 4, 3];
    const patches = rand(N * G * K * 3);
    const centres = rand(N * G * 3);
    const labels = Int32Array.of(2, 0, 1);
    await sameStep(
      () => new PointCloudTransformer(cfg, new Rng(5)),
      (m) => (m as PointCloudTransformer).forward(Tensor.from(patches, [N, G, K, 3]), Tensor.from(centres, [N, G, 3]), labels).loss!,
      'point-cloud transformer',
    );
  });
});

/** `count` generated clouds written as .xyz files (the shapes in turn, from `seed`); their paths. */
function writeClouds(count: number, seed: number): string[] {
  const set = generateShapes(1, seed, { minPoints: 80, maxPoints: 120 });
  return set.clouds.slice(0, count).map((c, i) => {
    const path = join(work, `${set.classes[set.labels[i]!]}-${i}.xyz`);
    writeFileSync(path, Array.from({ length: c.length / 3 }, (_, p) => `${c[p * 3]} ${c[p * 3 + 1]} ${c[p * 3 + 2]}`).join('\n'));
    return path;
  });
}

describe('attn pointcloud train, eval and predict --backend webgpu', { skip }, () => {
  // Six shapes × 4 training clouds, batches of 8: 3 steps an epoch. 8 patches of 8 points, one layer × 2 heads.
  const model = (backend: string) => join(work, `model-${backend}`);
  const tiny = [
    '--task', 'shapes', '--train-per-class', '4', '--test-per-class', '2', '--groups', '8', '--group-size', '8', '--point-hidden', '16',
    '--d-model', '16', '--layers', '1', '--heads', '2', '--epochs', '2', '--batch-size', '8', '--warmup-steps', '1', '--log-interval', '2', '--seed', '7',
  ];

  it('trains as js does (test loss and accuracy after each epoch, the progress lines\' accuracy) and saves its model', () => {
    const js = runAttn(['pointcloud', 'train', ...tiny, '--backend', 'js', '--out', model('js')], work);
    assert.equal(js.code, 0, js.stderr);
    const gpuRun = runAttn(['pointcloud', 'train', ...tiny, '--backend', 'webgpu', '--out', model('webgpu')], work);
    assert.equal(gpuRun.code, 0, gpuRun.stderr);
    assert.match(gpuRun.stderr, /backend webgpu/);
    const [want, got] = [js, gpuRun].map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { steps: number; test_loss: number; test_accuracy: number });
    assert.equal(got!.steps, 6);
    assert.equal(got!.steps, want!.steps);
    assert.ok(Math.abs(got!.test_loss - want!.test_loss) <= 1e-3 * Math.abs(want!.test_loss), `test loss: webgpu ${got!.test_loss}, js ${want!.test_loss}`);
    assert.equal(got!.test_accuracy, want!.test_accuracy);
    // Every epoch's test line and every progress line: the device's argmax counts what js counts.
    const acc = (r: { stderr: string }) => [...r.stderr.matchAll(/acc(?:uracy)? ([\d.]+)%/g)].map((m) => m[1]);
    assert.equal(acc(js).length, 3 + 2, js.stderr);
    assert.deepEqual(acc(gpuRun), acc(js));
    const trainer = JSON.parse(readFileSync(join(model('webgpu'), 'trainer.json'), 'utf8')) as { step: number };
    assert.equal(trainer.step, got!.steps);
  });

  it('eval of the saved model: the loss js gives (rtol 1e-4), the same accuracy; the command prints it', async () => {
    const want = runPointCloudEval({ model: model('webgpu'), task: 'shapes', backend: 'js' });
    const got = await runPointCloudEvalAsync({ model: model('webgpu'), task: 'shapes', backend: 'webgpu' });
    setBackend('js');
    assert.equal(got.examples, 12);
    assert.equal(got.examples, want.examples);
    assertNear([got.loss], [want.loss], 1e-4, 0, 'test loss');
    assert.equal(got.accuracy, want.accuracy);
    const cli = (backend: string) => runAttn(['pointcloud', 'eval', '--model', model('webgpu'), '--task', 'shapes', '--json', '--backend', backend], work);
    const [jsOut, gpuOut] = [cli('js'), cli('webgpu')];
    assert.equal(jsOut.code, 0, jsOut.stderr);
    assert.equal(gpuOut.code, 0, gpuOut.stderr);
    const [jsLine, jsJson] = jsOut.stdout.trim().split('\n');
    const [gpuLine, gpuJson] = gpuOut.stdout.trim().split('\n');
    assert.equal(gpuJson, jsJson, 'the JSON line: accuracy and examples');
    const parts = (line: string | undefined) => /^(test accuracy [\d.]+% on \d+ clouds) \(mean loss ([\d.]+)\)$/.exec(line ?? '')!;
    assert.equal(parts(gpuLine)[1], parts(jsLine)[1]);
    // The mean loss, printed to 4 places: within rtol 1e-4 and one last place of rounding.
    const [gotLoss, wantLoss] = [Number(parts(gpuLine)[2]), Number(parts(jsLine)[2])];
    assert.ok(Math.abs(gotLoss - wantLoss) <= 1e-4 * wantLoss + 1e-4 + 1e-9, `mean loss ${gotLoss} on webgpu, ${wantLoss} on js`);
  });

  it('predict of the saved model: the labels js gives, probabilities within 1e-4', async () => {
    const files = writeClouds(6, 11);
    const clouds = files.map((f) => readPointFile(f));
    setBackend('js');
    const want = predictPointClouds(loadPointTransformer(model('webgpu')), clouds, files);
    await webgpu();
    try {
      const onDevice = loadPointTransformer(model('webgpu'));
      moveToBackend(onDevice);
      const got = await predictPointCloudsAsync(onDevice, clouds, files);
      assert.deepEqual(got.map((p) => p.label), want.map((p) => p.label));
      got.forEach((p, i) => assertNear(p.probabilities, want[i]!.probabilities, 0, 1e-4, `probabilities of ${files[i]}`));
    } finally {
      setBackend('js');
    }
    const cli = (backend: string) => runAttn(['pointcloud', 'predict', '--model', model('webgpu'), ...files, '--backend', backend], work);
    const [jsOut, gpuOut] = [cli('js'), cli('webgpu')];
    assert.equal(jsOut.code, 0, jsOut.stderr);
    assert.equal(gpuOut.code, 0, gpuOut.stderr);
    const lines = (r: { stdout: string }) => r.stdout.trim().split('\n').map((l) => l.split('\t'));
    const [jsLines, gpuLines] = [lines(jsOut), lines(gpuOut)];
    assert.equal(gpuLines.length, files.length);
    gpuLines.forEach(([file, label, p], i) => {
      const [wantFile, wantLabel, wantP] = jsLines[i]!;
      assert.deepEqual([file, label], [wantFile, wantLabel]);
      // Printed to 3 places: values within 1e-4 round at most one last place apart.
      assert.ok(Math.abs(Number(p) - Number(wantP)) <= 1e-3 + 1e-9, `${file}: probability ${p} on webgpu, ${wantP} on js`);
    });
  });
});

describe('point-cloud training on webgpu in its steady state', { skip }, () => {
  it('after the first epochs, steps and evaluations take every buffer from the pool (the batches, the class tokens and attention\'s saved state go back)', async () => {
    await webgpu();
    const created = () => openedWebGpu()!.stats.buffersCreated;
    const perStep: number[] = [];
    const options = parsePointCloudTrainOptions({ groups: 8, groupSize: 8, pointHidden: 16, dModel: 16, layers: 1, heads: 2, epochs: 4, batchSize: 8, warmupSteps: 1, logInterval: 1, seed: 3 });
    const summary = await trainPointCloudsAsync({ data: shapesDataset(4, 2, 11, { minPoints: 80, maxPoints: 120 }), dataName: 'shapes', options }, { onStep: () => perStep.push(created()) });
    setBackend('js');
    assert.equal(summary.steps, 12);
    // Three steps an epoch (and an evaluation after each): epochs 3 and 4 reuse what epochs 1 and 2 made.
    assert.equal(perStep.length, 12);
    assert.equal(perStep[11]! - perStep[5]!, 0, `buffers created at each step: ${perStep.join(', ')}`);
  });
});
