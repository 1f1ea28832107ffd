import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { runPointCloudEval, runPointCloudTraining } from '../src/cli/pointcloud.js';
import { loadPointCloudFolder, readPointFile } from '../src/data/point_cloud_files.js';
import { generateShapes, randomRotation, rotatePoints, SHAPES } from '../src/data/point_clouds.js';
import { loadPointTransformer } from '../src/io/point_transformer_dir.js';
import { predictPointClouds } from '../src/train/point_cloud_trainer.js';
import { farthestPoints, nearestPoints, normalizeCloud, pointPatches } from '../src/models/point_patches.js';
import { maxPool } from '../src/tensor/ops/max_pool.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { gradCheck, randn } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'attn-pointcloud-'));
after(() => rmSync(root, { recursive: true, force: true }));
const quiet = (): void => {};

describe('maxPool', () => {
  it('takes the largest value per channel, and its gradient flows to the winners only', () => {
    const x = randn([2, 5, 3], new Rng(3));
    const y = maxPool(x);
    for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) {
      assert.equal(y.data[b * 3 + c], Math.max(...Array.from({ length: 5 }, (_, t) => x.data[(b * 5 + t) * 3 + c]!)));
    }
    gradCheck(() => maxPool(x), [x]);
  });
});

describe('point patches', () => {
  const cloud = generateShapes(1, 5, { minPoints: 300, maxPoints: 300 }).clouds[3]!; // a cone

  it('farthest-point sampling spreads its picks: each is farther from the others than a random pair of neighbours', () => {
    const p = normalizeCloud(cloud);
    const picks = farthestPoints(p, 16);
    assert.equal(new Set(picks).size, 16);
    const d = (i: number, j: number): number => Math.hypot(p[i * 3]! - p[j * 3]!, p[i * 3 + 1]! - p[j * 3 + 1]!, p[i * 3 + 2]! - p[j * 3 + 2]!);
    let minPick = Infinity;
    for (const i of picks) for (const j of picks) if (i !== j) minPick = Math.min(minPick, d(i, j));
    // A point's nearest neighbour in the whole cloud is much closer than the closest two picks.
    assert.ok(minPick > 3 * d(0, nearestPoints(p, 0, 2)[1]!), `closest picks ${minPick}`);
  });

  it('k nearest neighbours match a brute-force sort', () => {
    const p = normalizeCloud(cloud);
    const got = Array.from(nearestPoints(p, 7, 10));
    const dist = (i: number): number => (p[i * 3]! - p[21]!) ** 2 + (p[i * 3 + 1]! - p[22]!) ** 2 + (p[i * 3 + 2]! - p[23]!) ** 2;
    const want = Array.from({ length: p.length / 3 }, (_, i) => i).sort((a, b) => dist(a) - dist(b) || a - b).slice(0, 10);
    assert.deepEqual(got.map(dist), want.map(dist));
    assert.equal(got[0], 7);
  });

  it('patches are centred on their centre, and turning the cloud turns its tokens', () => {
    const a = pointPatches(cloud, 8, 6);
    for (let g = 0; g < 8; g++) assert.deepEqual(Array.from(a.patches.subarray(g * 18, g * 18 + 3)), [0, 0, 0]);
    const m = randomRotation(new Rng(9));
    const b = pointPatches(rotatePoints(Float32Array.from(cloud), m), 8, 6);
    const turned = rotatePoints(Float32Array.from(a.centres), m);
    turned.forEach((v, i) => assert.ok(Math.abs(v - b.centres[i]!) < 1e-4, `centre ${i}: ${v} vs ${b.centres[i]}`));
  });

  it('a cloud with fewer points than the sampler needs is one clear error', () => {
    assert.throws(() => pointPatches(new Float32Array(30), 32, 16, 'tiny.xyz'),
      (e) => e instanceof UserError && e.message === 'tiny.xyz: 10 points, but the sampler needs at least 32 (32 groups of 16 neighbours)');
  });
});

describe('point files', () => {
  it('reads .xyz (extra columns ignored), .off meshes (sampled on the surface) and .ply (ascii and binary)', () => {
    const xyz = join(root, 'a.xyz');
    writeFileSync(xyz, '# a comment\n0 0 0 1 0 0\n1 2 3\n\n4,5,6\n');
    assert.deepEqual(Array.from(readPointFile(xyz)), [0, 0, 0, 1, 2, 3, 4, 5, 6]);
    const off = join(root, 'square.off');
    writeFileSync(off, 'OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n');
    const s = readPointFile(off);
    assert.equal(s.length, 1024 * 3);
    for (let i = 0; i < s.length; i += 3) assert.ok(s[i]! >= 0 && s[i]! <= 1 && s[i + 1]! >= 0 && s[i + 1]! <= 1 && s[i + 2] === 0);
    const ply = join(root, 'a.ply');
    writeFileSync(ply, 'ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nend_header\n1 2 3 255\n4 5 6 0\n');
    assert.deepEqual(Array.from(readPointFile(ply)), [1, 2, 3, 4, 5, 6]);
    const body = Buffer.alloc(2 * 13);
    [[1, 2, 3], [4, 5, 6]].forEach((p, i) => { body.writeUInt8(7, i * 13); p.forEach((v, k) => body.writeFloatLE(v, i * 13 + 1 + 4 * k)); });
    const bin = join(root, 'b.ply');
    writeFileSync(bin, Buffer.concat([Buffer.from('ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty uchar flag\nproperty float x\nproperty float y\nproperty float z\nend_header\n'), body]));
    assert.deepEqual(Array.from(readPointFile(bin)), [1, 2, 3, 4, 5, 6]);
  });

  it('missing coordinates and NaN are one-line errors naming the file and line', () => {
    const bad = join(root, 'bad.xyz');
    writeFileSync(bad, '0 0 0\n1 2\n');
    assert.throws(() => readPointFile(bad), (e) => e instanceof UserError && e.message === `${bad}:2: expected x y z, found 2 values`);
    writeFileSync(bad, '0 0 0\n1 NaN 3\n');
    assert.throws(() => readPointFile(bad), (e) => e instanceof UserError && e.message === `${bad}:2: y "NaN" is not a finite number`);
    const ply = join(root, 'noz.ply');
    writeFileSync(ply, 'ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n');
    assert.throws(() => readPointFile(ply), /noz.ply: the vertex element has no z property/);
    assert.throws(() => readPointFile(root), (e) => e instanceof UserError && e.message === `${root} is a directory, not a point file (.xyz, .off, .ply)`);
  });

  it('a class folder without point files is not a class: one class left is one clear error', () => {
    const dir = join(root, 'one-real-class');
    mkdirSync(join(dir, 'cube'), { recursive: true });
    mkdirSync(join(dir, 'sphere'));
    for (let i = 0; i < 3; i++) writeFileSync(join(dir, 'cube', `${i}.xyz`), '0 0 0\n1 0 0\n0 1 0\n');
    const d = loadPointCloudFolder(dir);
    assert.deepEqual([d.train.classes, d.test.classes], [['cube'], ['cube']]);
    assert.throws(() => runPointCloudTraining({ data: dir, out: join(root, 'never'), backend: 'js' }, {}, quiet), (e) => e instanceof UserError && /found 1 class \(cube\); a classifier needs at least 2/.test(e.message));
  });

  it('a folder of class subfolders is split into train and test', () => {
    const dir = join(root, 'folder');
    const set = generateShapes(3, 1, { minPoints: 40, maxPoints: 60 });
    set.clouds.forEach((c, i) => {
      const cls = set.classes[set.labels[i]!]!;
      mkdirSync(join(dir, cls), { recursive: true });
      const lines: string[] = [];
      for (let p = 0; p < c.length; p += 3) lines.push(`${c[p]} ${c[p + 1]} ${c[p + 2]}`);
      writeFileSync(join(dir, cls, `${i}.xyz`), lines.join('\n'));
    });
    mkdirSync(join(dir, 'zzz-empty')); // an empty class folder is not a class
    const d = loadPointCloudFolder(dir, { heldOut: 0.25, seed: 0 });
    assert.deepEqual(d.train.classes, [...SHAPES].sort());
    assert.equal(d.train.clouds.length + d.test.clouds.length, 18);
    assert.equal(d.test.clouds.length, 5); // round(18 × 0.25)
  });
});

describe('attn pointcloud', () => {
  const tiny = { groups: 16, groupSize: 8, pointHidden: 32, dModel: 32, layers: 1, heads: 2, epochs: 8, batchSize: 16, lr: 3e-3, warmupSteps: 5, trainPerClass: 40, testPerClass: 6 };

  it('trains on generated shapes, saves, reloads and evaluates the same test set', () => {
    const out = join(root, 'model');
    const s = runPointCloudTraining({ task: 'shapes', out, backend: 'js' }, tiny, quiet);
    // Six classes: chance is 1/6. 120 steps on 240 clouds already do clearly better (0.61 measured).
    assert.ok(s.test_accuracy > 0.4, `test accuracy ${s.test_accuracy}`);
    const model = loadPointTransformer(out);
    assert.equal(model.config.num_groups, 16);
    const e = runPointCloudEval({ model: out, task: 'shapes', backend: 'js' });
    assert.equal(e.examples, 36);
    assert.ok(Math.abs(e.accuracy - s.test_accuracy) < 1e-9, `${e.accuracy} vs ${s.test_accuracy}`);
  });

  const cli = (...args: string[]) => spawnSync(process.execPath, [resolve(process.cwd(), 'dist/src/cli/main.js'), 'pointcloud', ...args], { encoding: 'utf8' });

  it('eval --json ends with one JSON line; predict classifies files; bad input is one line', () => {
    const out = join(root, 'model');
    const r = cli('eval', '--model', out, '--task', 'shapes', '--json', '--backend', 'js');
    assert.equal(r.status, 0, r.stderr);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { accuracy: number; examples: number };
    assert.deepEqual(Object.keys(last), ['accuracy', 'examples']);
    assert.equal(last.examples, 36);
    const cone = join(root, 'cone.xyz');
    const c = generateShapes(1, 77).clouds[3]!;
    writeFileSync(cone, Array.from({ length: c.length / 3 }, (_, i) => `${c[i * 3]} ${c[i * 3 + 1]} ${c[i * 3 + 2]}`).join('\n'));
    const [p] = predictPointClouds(loadPointTransformer(out), [readPointFile(cone)], [cone]);
    assert.ok(Math.abs(p!.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    assert.equal(p!.probabilities.indexOf(Math.max(...p!.probabilities)), p!.label);
    const few = join(root, 'few.xyz');
    writeFileSync(few, '0 0 0\n1 1 1\n2 2 2\n');
    const bad = cli('predict', '--model', out, few, '--backend', 'js');
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, `attn: error: ${few}: 3 points, but the sampler needs at least 16 (16 groups of 8 neighbours)\n`);
    // Missing coordinates and NaN: the same one line from the command, naming the file and line.
    const nan = join(root, 'nan.xyz');
    writeFileSync(nan, '0 0 0\n1 nan 3\n');
    const r2 = cli('predict', '--model', out, nan, '--backend', 'js');
    assert.equal(r2.status, 1);
    assert.equal(r2.stderr, `attn: error: ${nan}:2: y "nan" is not a finite number\n`);
    const short = join(root, 'short.xyz');
    writeFileSync(short, '0 0 0\n1 2\n');
    const r3 = cli('predict', '--model', out, short, '--backend', 'js');
    assert.equal(r3.status, 1);
    assert.equal(r3.stderr, `attn: error: ${short}:2: expected x y z, found 2 values\n`);
    assert.throws(() => runPointCloudTraining({ out: join(root, 'x'), backend: 'js' }, tiny, quiet), /^UserError: give --task \(shapes\) or --data DIR/);
  });
});
