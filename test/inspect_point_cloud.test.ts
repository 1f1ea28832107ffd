import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { shapesDataset } from '../src/data/point_clouds.js';
import { inspectPointCloud, type PointCloudView } from '../src/eval/inspect/inspect_point_cloud.js';
import { loadPointTransformer } from '../src/io/point_transformer_dir.js';
import type { PointCloudTransformer } from '../src/models/point_transformer.js';
import { noGrad } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { parsePointCloudTrainOptions } from '../src/train/point_cloud_options.js';
import { pointBatch, tokenizeClouds, trainPointClouds } from '../src/train/point_cloud_trainer.js';
import { runInspect } from '../src/cli/inspect.js';
import { UserError } from '../src/util/errors.js';
import { assertUserError, runAttn } from './helpers.js';

const close = (got: number, want: number, atol = 1e-5): void => assert.ok(Math.abs(got - want) <= atol, `${got} vs ${want}`);

const work = mkdtempSync(join(tmpdir(), 'attn-inspect-pc-'));
after(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, 'pc-model');
// A tiny classifier, a few steps on generated shapes: 8 patches of 8 points, 2 layers × 2 heads.
const options = parsePointCloudTrainOptions({ trainPerClass: 4, testPerClass: 3, epochs: 1, maxSteps: 4, batchSize: 8, warmupSteps: 1, groups: 8, groupSize: 8, pointHidden: 16, dModel: 16, layers: 2, heads: 2, seed: 3 });
let model: PointCloudTransformer;
let view: PointCloudView;

before(() => {
  trainPointClouds({ data: shapesDataset(options.trainPerClass, options.testPerClass, options.seed), dataName: 'task:shapes', options, out: dir });
  model = loadPointTransformer(dir);
  const { test } = shapesDataset(1, 3, options.seed);
  const tokens = tokenizeClouds(model, test);
  view = { tokens, labels: test.labels, names: test.names, batch: (ids) => pointBatch(model, tokens, ids) };
});

describe('inspect: a point-cloud classifier (the class token and point patches)', () => {
  it('maps over every token, the lens ends at the model, head removal = zeroing its columns of out_proj, the same seed the same table', () => {
    const r = inspectPointCloud(model, view, { seed: 2, clouds: 12 });
    assert.equal(r.attention.T, 9);
    assert.ok(r.attention.maps[0]![8]! > 0, 'the class token sees the last patch: no causal mask');
    for (const row of r.rollout) close(row.reduce((a, b) => a + b, 0), 1);
    assert.equal(r.classRollout.length, 8);
    assert.equal(r.lens.length, 3);
    assert.equal(r.probes.layers.length, 3);
    assert.equal(r.probes.targets.length, 3);
    for (const x of r.probes.layers) assert.ok(x.scores.every(Number.isFinite));
    // All 18 test clouds, 12 chosen by the seed: rebuild the same batch by hand.
    const chosen = Array.from({ length: 18 }, (_, i) => i).filter((i) => r.cloud.name === view.names[i]).length;
    assert.equal(chosen, 1);
    const all = inspectPointCloud(model, view, { seed: 2, clouds: 18 });
    const { patches, centres } = view.batch(Array.from({ length: 18 }, (_, i) => i));
    const lossNow = () => noGrad(() => crossEntropy(model.forward(patches, centres).logits, view.labels).item());
    close(all.removal.baseline, lossNow());
    close(all.lens[2]!.loss, lossNow());
    const proj = model.blocks[0]!.self_attn.out_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    for (let o = 0; o < 16; o++) proj.weight.data.fill(0, o * 16 + 8, o * 16 + 16); // head 2 of layer 1
    const manual = lossNow();
    proj.weight.data.set(saved);
    close(manual, all.removal.loss[0]![1]!);
    assert.deepEqual(inspectPointCloud(model, view, { seed: 2, clouds: 12 }).removal, r.removal);
  });

  it('attn inspect --task shapes: PNGs, index.html and report.json; the same seed, the same table', () => {
    const run = (out: string) => runAttn(['inspect', '--model', dir, '--task', 'shapes', '--out', join(work, out), '--seed', '5', '--examples', '12', '--backend', 'js'], work);
    const a = run('pa');
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /test loss [\d.]+ \(12 test clouds, seed 5\)/);
    assert.match(a.stdout, /class token accuracy by layer: embeddings [\d.]+%, layer 1 [\d.]+%, layer 2 [\d.]+%/);
    assert.equal(run('pb').code, 0);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('pa'), removal('pb'));
    for (const f of ['index.html', 'attention_layer1.png', 'attention_layer2.png', 'rollout.png', 'rollout_over_cloud.png', 'head_removal.png', 'logit_lens.png', 'probes.png']) assert.ok(existsSync(join(work, 'pa', f)), f);
    const over = PNG.sync.read(readFileSync(join(work, 'pa', 'rollout_over_cloud.png')));
    assert.ok(over.width > 2 * over.height - 10, 'front and side views side by side');
    assert.equal((readFileSync(join(work, 'pa', 'index.html'), 'utf8').match(/class="top"/g) ?? []).length, 3);
  });

  it('wrong data: text, no data, a point file with NaN — one line each, non-zero exit', () => {
    const text = join(work, 'rhyme.txt');
    writeFileSync(text, 'humpty dumpty sat on a wall\n');
    const inspect = (...args: string[]) => runAttn(['inspect', '--model', dir, '--out', join(work, 'x'), '--backend', 'js', ...args], work);
    assertUserError(inspect('--data', text), /--data .*rhyme\.txt: expected a folder of point files/);
    // The rest in-process (a CLI start costs seconds on a loaded machine): the same UserError the CLI prints in one line.
    const refuses = (o: { data?: string; task?: string }, pattern: RegExp) =>
      assert.throws(() => runInspect({ model: dir, out: join(work, 'x'), seed: 0, windows: 16, mapLength: 24, top: 3, images: 64, examples: 12, backend: 'js', ...o }), (e: Error) => e instanceof UserError && pattern.test(e.message));
    refuses({}, /give --task \(shapes\) or --data DIR/);
    refuses({ task: 'words' }, /--task words is not a point-cloud task/);
    const bad = join(work, 'clouds');
    for (const c of ['sphere', 'cube']) {
      mkdirSync(join(bad, c), { recursive: true });
      writeFileSync(join(bad, c, 'a.xyz'), Array.from({ length: 40 }, (_, i) => `${i % 7} ${i % 5} ${i % 3}`).join('\n'));
    }
    writeFileSync(join(bad, 'cube', 'b.xyz'), '0 0 0\n1 NaN 0\n');
    refuses({ data: bad }, /b\.xyz.*not a finite number/);
  });
});
