import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import type { Seq2SeqTask } from '../src/data/seq2seq_task.js';
import { crossAttentionMap, crossAttentionMapAsync } from '../src/generate/cross_attention.js';
import { translate, translateAsync, type Translation } from '../src/generate/translate.js';
import { loadSeq2Seq } from '../src/io/seq2seq_dir.js';
import { moveToBackend } from '../src/nn/placement.js';
import { exactMatch, exactMatchAsync } from '../src/train/seq2seq_eval.js';
import { parseSeq2SeqOptions } from '../src/train/seq2seq_options.js';
import { trainSeq2Seq } from '../src/train/seq2seq_trainer.js';
import { runAttn } from './helpers.js';
import { assertNear, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * Translation on webgpu against js: a tiny encoder–decoder overfitted on
 * js, then loaded a second time and moved to the device. Greedy decoding
 * (a batch of sources of different lengths: padding masks) and beam search
 * must pick exactly js's tokens, their log-probabilities within 1e-4 (the
 * scores are read back and normalised on the host; the kernels differ from
 * js only in summation order); the cross-attention map within 1e-5; exact
 * match, `attn translate` (with its attention map) and `attn seq2seq eval`
 * print what js prints. SwiftShader without a GPU; skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu translation tests');

const pairs = [
  { source: 'one', target: 'eins' },
  { source: 'two', target: 'zwei' },
  { source: 'three', target: 'drei' },
  { source: 'seven', target: 'sieben' },
  { source: 'twenty-one', target: 'einundzwanzig' },
  { source: 'forty-two', target: 'zweiundvierzig' },
];
const task: Seq2SeqTask = {
  source: { data: 'pairs.tsv', reverse: false },
  sample: () => pairs,
  heldOut: (n) => pairs.slice(0, n),
  texts: () => pairs.flatMap((p) => [p.source, p.target]),
  pieces: [],
};
// Unseen sources too: their outputs are less certain, so near-ties would show.
const sources = [...pairs.map((p) => p.source), 'nine', 'thirty-three'];

function sameTranslations(got: Translation[], want: Translation[], what: string): void {
  assert.deepEqual(got.map((t) => t.ids), want.map((t) => t.ids), `${what}: the same tokens`);
  assert.deepEqual(got.map((t) => t.finished), want.map((t) => t.finished), `${what}: the same endings`);
  got.forEach((t, i) => assert.ok(Math.abs(t.logProb - want[i]!.logProb) <= 1e-4, `${what}, ${sources[i]}: log-probability ${t.logProb} on webgpu, ${want[i]!.logProb} on js`));
}

describe('translation on webgpu: js\'s tokens and scores', { skip }, () => {
  let dir: string;
  before(() => {
    setBackend('js');
    dir = mkdtempSync(join(tmpdir(), 'attn-webgpu-translate-'));
    writeFileSync(join(dir, 'pairs.tsv'), pairs.map((p) => `${p.source}\t${p.target}`).join('\n') + '\n');
    // For attn seq2seq eval, which scores the held-out tenth of a file (by a hash of the source): pairs of pairs, 36 of them.
    const joined = pairs.flatMap((a) => pairs.map((b) => `${a.source}-${b.source}\t${a.target}${b.target}`));
    writeFileSync(join(dir, 'joined.tsv'), joined.join('\n') + '\n');
    const options = parseSeq2SeqOptions({ layers: 1, dModel: 32, heads: 2, dFf: 64, steps: 120, batchSize: pairs.length, lr: 5e-3, minLr: 1e-3, warmup: 10, labelSmoothing: 0, evalInterval: 1000, evalSize: pairs.length });
    trainSeq2Seq({ task, options, out: join(dir, 'model') });
  });
  after(() => {
    setBackend('js');
    rmSync(dir, { recursive: true, force: true });
  });

  it('greedy (one batch, padded) and beam search; exact match; a second run allocates no new device buffers', async () => {
    const js = loadSeq2Seq(join(dir, 'model'));
    const greedy = translate(js.model, js.tokenizer, sources);
    const beams = sources.map((s) => translate(js.model, js.tokenizer, [s], { beamWidth: 3, lengthPenalty: 0.6 })[0]!);
    const match = exactMatch(js.model, js.tokenizer, pairs);
    const map = crossAttentionMap(js.model, js.tokenizer, 'forty-two', greedy[5]!.ids);
    assert.equal(match.accuracy, 1, 'the model learned its pairs (a test that can tell a wrong token)');

    await webgpu();
    const gpu = loadSeq2Seq(join(dir, 'model'));
    moveToBackend(gpu.model);
    sameTranslations(await translateAsync(gpu.model, gpu.tokenizer, sources), greedy, 'greedy');
    const gpuBeams: Translation[] = [];
    for (const s of sources) gpuBeams.push((await translateAsync(gpu.model, gpu.tokenizer, [s], { beamWidth: 3, lengthPenalty: 0.6 }))[0]!);
    sameTranslations(gpuBeams, beams, 'beam 3');
    assert.deepEqual(await exactMatchAsync(gpu.model, gpu.tokenizer, pairs), match);
    // The cross-attention map: the queries and keys read back, the weights from their values (atol 1e-5).
    const gpuMap = await crossAttentionMapAsync(gpu.model, gpu.tokenizer, 'forty-two', greedy[5]!.ids);
    assert.deepEqual(gpuMap.targetTokens, map.targetTokens);
    assertNear(gpuMap.heads.flat(2), map.heads.flat(2), 0, 1e-5, 'cross-attention weights');

    // Each step's pass is scratch and the encoder's output is given back: the same work again takes every buffer from the pool.
    const created = openedWebGpu()!.stats.buffersCreated;
    await translateAsync(gpu.model, gpu.tokenizer, sources);
    assert.equal(openedWebGpu()!.stats.buffersCreated - created, 0, 'buffers created by a second translation');
  });

  it('attn translate --show-attention and attn seq2seq eval --backend webgpu print what js prints', () => {
    for (const args of [
      ['translate', '--model', join(dir, 'model'), '--show-attention', '--beam', '2', 'forty-two', 'nine'],
      ['seq2seq', 'eval', '--model', join(dir, 'model'), '--data', join(dir, 'joined.tsv'), '--beam', '1'],
    ]) {
      const [js, gpu] = ['js', 'webgpu'].map((b) => runAttn([...args, '--backend', b], dir));
      assert.equal(js!.code, 0, js!.stderr);
      assert.equal(gpu!.code, 0, gpu!.stderr);
      const strip = (out: string) => out.replace(/"seconds":[\d.e+-]+/, '"seconds":0');
      assert.equal(strip(gpu!.stdout), strip(js!.stdout), `attn ${args.slice(0, 2).join(' ')}`);
      if (args[0] === 'seq2seq') assert.ok((JSON.parse(js!.stdout) as { total: number }).total > 0, 'some pairs are held out');
    }
  });
});
