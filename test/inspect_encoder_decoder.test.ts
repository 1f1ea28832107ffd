import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { pairsTask } from '../src/data/seq2seq_task.js';
import { parsePairsTSV } from '../src/data/translation_pairs.js';
import { inspectEncoderDecoder } from '../src/eval/inspect/inspect_encoder_decoder.js';
import { seq2seqView } from '../src/eval/inspect/seq2seq_view.js';
import { loadSeq2Seq } from '../src/io/seq2seq_dir.js';
import { parseSeq2SeqOptions } from '../src/train/seq2seq_options.js';
import { trainSeq2Seq } from '../src/train/seq2seq_trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, runAttn } from './helpers.js';

// A toy translation: three-letter words, target = the words reversed and upper-cased. 240 pairs: ~24 held out.
const rng = new Rng(11);
const word = (): string => Array.from({ length: 2 + rng.int(2) }, () => 'abcdeiou'[rng.int(8)]).join('');
const LINES = Array.from({ length: 240 }, () => {
  const ws = Array.from({ length: 2 + rng.int(3) }, word);
  return `${ws.join(' ')}\t${[...ws].reverse().join(' ').toUpperCase()}`;
});

describe('inspect: an encoder–decoder translation model', () => {
  let work: string;
  let modelDir: string;
  let pairsPath: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'attn-inspect-s2s-'));
    pairsPath = join(work, 'pairs.tsv');
    writeFileSync(pairsPath, LINES.join('\n') + '\n');
    modelDir = join(work, 'model');
    const task = pairsTask(parsePairsTSV(LINES.join('\n'), pairsPath), pairsPath);
    trainSeq2Seq({ task, out: modelDir, options: parseSeq2SeqOptions({ layers: 2, dModel: 16, heads: 2, dFf: 32, steps: 25, batchSize: 16, lr: 1e-2, warmup: 0, evalInterval: 1000, evalSize: 4 }) });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const report = (loaded = loadSeq2Seq(modelDir)) => {
    const { model, tokenizer, task } = loaded;
    assert.ok('data' in task);
    const pairs = pairsTask(parsePairsTSV(readFileSync(pairsPath, 'utf8')), pairsPath).heldOut(100);
    const view = seq2seqView(model, tokenizer, pairs);
    return { loaded, model, view, r: inspectEncoderDecoder(view, { seed: 5, examples: 12 }) };
  };

  it('maps of three kinds with their shapes; causal self-attention; the cross rollout keeps 1 − ½^L of each row on the source', () => {
    const { r } = report();
    const Ts = r.srcLabels.length;
    const Tt = r.tgtLabels.length;
    assert.equal(r.attention.encoder.T, Ts);
    assert.equal(r.attention.self.T, Tt);
    assert.equal(r.attention.cross.T, Tt);
    assert.equal(r.attention.cross.keys ?? r.attention.cross.T, Ts);
    assert.equal(r.attention.cross.maps[1]!.length, 2 * Tt * Ts);
    const self = r.attention.self.maps[0]!;
    for (let i = 0; i < Tt; i++) for (let j = i + 1; j < Tt; j++) assert.ok(self[i * Tt + j]! < 1e-7, 'no weight on later target positions');
    for (const row of r.rollout.encoder) assert.ok(Math.abs(row.reduce((a, b) => a + b) - 1) < 1e-5);
    // Each decoder layer's cross-attention halves what stays on the target side (docs/inspect.md).
    for (const row of r.rollout.cross) assert.ok(Math.abs(row.reduce((a, b) => a + b) - (1 - 0.5 ** 2)) < 1e-5);
    assert.equal(r.lens.length, 3);
    assert.equal(r.probes.encoder.layers.length, 3);
    assert.equal(r.probes.decoder.targets[1]!.binary, true);
  });

  it('removing a cross-attention head = zeroing its columns of out_proj by hand; the same seed, the same table', () => {
    const { loaded, model, view, r } = report();
    const again = inspectEncoderDecoder(view, { seed: 5, examples: 12 });
    assert.deepEqual(again.removal, r.removal);
    const proj = model.decoder[1]!.cross_attn.out_proj as unknown as { weight: { data: Float32Array } };
    const saved = Float32Array.from(proj.weight.data);
    const D = 8;
    for (let o = 0; o < 16; o++) proj.weight.data.fill(0, o * 16 + D, o * 16 + 2 * D); // head 2's input channels
    const { r: manual } = report(loaded);
    proj.weight.data.set(saved);
    const want = r.removal.kinds.cross.loss[1]![1]!;
    assert.ok(Math.abs(manual.removal.baseline - want) < 1e-5, `${manual.removal.baseline} vs ${want}`);
    for (const kind of ['encoder', 'self', 'cross'] as const) assert.ok(r.removal.kinds[kind].loss.flat().some((v) => Math.abs(v - r.removal.baseline) > 1e-6), `${kind} heads change the loss`);
    // The lens's last layer is the model's own loss.
    assert.ok(Math.abs(r.lens.at(-1)!.loss - r.removal.baseline) < 1e-5);
  });

  it('attn inspect: PNGs, index.html, report.json; reproducible; bad or missing data in one line', () => {
    const run = (out: string, ...more: string[]) => runAttn(['inspect', '--model', modelDir, '--out', join(work, out), '--seed', '3', '--examples', '8', '--backend', 'js', ...more], work);
    const a = run('a', '--data', pairsPath);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /costliest heads: (encoder|self|cross) \d\.\d/);
    const b = run('b'); // the pairs file trainer recorded in the model's config
    assert.equal(b.code, 0, b.stderr);
    const removal = (d: string) => JSON.parse(readFileSync(join(work, d, 'report.json'), 'utf8')).removal;
    assert.deepEqual(removal('a'), removal('b'));
    for (const f of ['index.html', 'encoder_layer2.png', 'decoder_self_layer1.png', 'cross_layer2.png', 'rollout_encoder.png', 'rollout_cross.png', 'head_removal_encoder.png', 'head_removal_decoder_self.png', 'head_removal_cross.png', 'logit_lens.png', 'probes_encoder.png', 'probes_decoder.png']) assert.ok(existsSync(join(work, 'a', f)), f);
    const rep = JSON.parse(readFileSync(join(work, 'a', 'report.json'), 'utf8'));
    const cross = PNG.sync.read(readFileSync(join(work, 'a', 'cross_layer1.png')));
    assert.equal(cross.height, 8 + rep.tgtLabels.length * 12 + 8, 'rows: target positions');
    assert.equal(cross.width, 8 + 2 * (rep.srcLabels.length * 12 + 8), 'two heads of source-position columns');
    assert.equal((readFileSync(join(work, 'a', 'index.html'), 'utf8').match(/class="top"/g) ?? []).length, 3);

    const text = join(work, 'story.txt');
    writeFileSync(text, 'Once upon a time there was a model.\n');
    assertUserError(run('x', '--data', text), /no tab; each line must be "source<TAB>target"/);
    const images = join(work, 'images');
    mkdirSync(images);
    assertUserError(run('x', '--data', images), /--data .*images: expected the sentence-pair file/);
    rmSync(pairsPath);
    assertUserError(run('x'), /give --data PAIRS\.tsv: .* was trained on .*pairs\.tsv, which does not exist here/);
    writeFileSync(pairsPath, LINES.join('\n') + '\n');
  });
});
