import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { splitPairs } from '../src/data/positive_pairs.js';
import { templatePairs } from '../src/data/template_pairs.js';
import { inspectEmbedder } from '../src/eval/inspect/inspect_embedder.js';
import { loadEmbedder, saveEmbedder } from '../src/io/embedder_dir.js';
import { padBatch } from '../src/models/pad_batch.js';
import { shuffled } from '../src/data/image_set.js';
import { noGrad } from '../src/tensor/autograd.js';
import { parseEmbedderOptions } from '../src/train/embedder_options.js';
import { trainEmbedder } from '../src/train/embedder_trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, runAttn } from './helpers.js';

const close = (got: number, want: number, atol = 1e-5): void => assert.ok(Math.abs(got - want) <= atol, `${got} vs ${want}`);

const work = mkdtempSync(join(tmpdir(), 'attn-inspect-emb-'));
after(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, 'embedder');
const textPath = join(work, 'texts.txt');
let texts: string[];

before(() => {
  const { train, heldOut } = splitPairs(templatePairs(400, 2));
  const options = parseEmbedderOptions({ dModel: 16, layers: 2, heads: 2, matryoshka: [8], batchSize: 16, steps: 8, lr: 3e-3, warmupSteps: 2, evalInterval: 8, evalPairs: 20 });
  const s = trainEmbedder({ train, heldOut, options });
  saveEmbedder(dir, s.model, s.tokenizer);
  texts = heldOut.slice(0, 20).map((p) => p.anchor);
  writeFileSync(textPath, texts.join('\n') + '\n');
});

describe('inspect: a sentence embedder', () => {
  it('maps over the first text, removal = zeroing a head\'s columns of out_proj (1 − cosine), the last layer pooled is the embedding; the same seed, the same table', () => {
    const { model, tokenizer } = loadEmbedder(dir);
    const r = inspectEmbedder(model, tokenizer, texts, { seed: 1, texts: 12 });
    const idx = shuffled(texts.length, new Rng(1)).subarray(0, 12);
    assert.equal(r.attention.T, tokenizer.encode(texts[idx[0]!]!).length);
    for (const row of r.rollout) close(row.reduce((a, b) => a + b, 0), 1);
    close(r.pooledRollout.reduce((a, b) => a + b, 0), 1);
    close(r.removal.baseline, 0);
    close(r.lens.at(-1)!.loss, 0);
    assert.equal(r.lens.at(-1)!.accuracy, 1);
    assert.equal(r.probes.layers.length, 3);
    for (const x of r.probes.layers) assert.ok(x.scores.every(Number.isFinite));
    // By hand: head 1 of layer 2 zeroed in the output projection, the same texts.
    const b = padBatch(Array.from(idx, (i) => tokenizer.encode(texts[i]!)), model.config.max_len);
    const unit = () => noGrad(() => {
      const v = model.forward(b.ids, [b.B, b.T], b.padding);
      return Array.from({ length: b.B }, (_, i) => { const row = v.data.slice(i * 16, (i + 1) * 16); const n = Math.hypot(...row); return row.map((x) => x / n); });
    });
    const intact = unit();
    const proj = model.layers[1]!.self_attn.out_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    for (let o = 0; o < 16; o++) proj.weight.data.fill(0, o * 16, o * 16 + 8);
    const cut = unit();
    proj.weight.data.set(saved);
    const manual = cut.reduce((s, v, i) => s + 1 - v.reduce((d, x, k) => d + x * intact[i]![k]!, 0), 0) / cut.length;
    close(manual, r.removal.loss[1]![0]!);
    assert.ok(manual > 0, 'removing a head turns the vectors');
    assert.deepEqual(inspectEmbedder(model, tokenizer, texts, { seed: 1, texts: 12 }).removal, r.removal);
  });

  it('attn inspect on an embedder and a text file: PNGs, index.html, report.json; the same seed, the same table; wrong data one line', () => {
    const run = (out: string) => runAttn(['inspect', '--model', dir, '--data', textPath, '--out', join(work, out), '--seed', '2', '--examples', '12', '--backend', 'js'], work);
    const a = run('ea');
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, new RegExp(`vector change loss 0\\.0000 \\(${Math.min(12, texts.length)} texts`));
    assert.equal(run('eb').code, 0);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('ea'), removal('eb'));
    for (const f of ['index.html', 'attention_layer1.png', 'attention_layer2.png', 'rollout.png', 'pooled_rollout.png', 'head_removal.png', 'layer_pooling.png', 'probes.png']) assert.ok(existsSync(join(work, 'ea', f)), f);
    const clouds = join(work, 'clouds', 'sphere');
    mkdirSync(clouds, { recursive: true });
    assertUserError(runAttn(['inspect', '--model', dir, '--data', join(work, 'clouds'), '--out', join(work, 'x')], work), /expected a UTF-8 text file, one text per line, for a sentence embedder/);
  });
});
