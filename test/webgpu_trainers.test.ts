import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { runEmbedTrainAsync } from '../src/cli/embed.js';
import { runSeq2SeqTrain } from '../src/cli/seq2seq.js';
import { UserError } from '../src/util/errors.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * The CLI trainers beyond `attn train` and `attn vit train` on webgpu
 * against js: `attn embed train` and `attn seq2seq train` with --backend
 * webgpu, run in-process (one device, its pipelines compiled once for the
 * file), their progress lines captured. Each step's loss must equal js's
 * within rtol 1e-3 (the printed 4 decimals; the models are small and the
 * kernels differ from js only in summation order). SwiftShader without a
 * GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu CLI trainer tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-trainers-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

/** Run `f` with stderr captured; its progress lines' "step N/M … loss X" as [N, X] pairs, and all the text. */
async function progressOf(f: () => Promise<unknown>): Promise<{ losses: Array<[number, number]>; text: string }> {
  let text = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((text += String(chunk)), true)) as typeof process.stderr.write;
  try {
    await f();
  } finally {
    process.stderr.write = write;
    setBackend('js');
  }
  const losses = [...text.matchAll(/^step (\d+)\/\d+ .* loss ([\d.]+) /gm)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]);
  return { losses, text };
}

function sameLosses(got: Array<[number, number]>, want: Array<[number, number]>, steps: number, what: string): void {
  assert.equal(want.length, steps, `${what}: js printed ${want.length} step lines`);
  assert.deepEqual(got.map(([s]) => s), want.map(([s]) => s), `${what}: the same steps`);
  got.forEach(([s, l], i) => {
    const w = want[i]![1];
    assert.ok(Math.abs(l - w) <= 1e-3 * Math.abs(w) + 1e-4, `${what}: step ${s} loss ${l} on webgpu, ${w} on js (rtol 1e-3)`);
  });
  assert.ok(new Set(want.map(([, l]) => l)).size > 1, `${what}: the loss moves (a test that can tell)`);
}

describe('CLI trainers on webgpu: each step\'s loss as js', { skip }, () => {
  it('attn seq2seq train (--label-smoothing 0), and the one-line refusal of label smoothing', async () => {
    const flags = { task: 'numbers-de', steps: 3, batchSize: 6, layers: 1, dModel: 16, heads: 2, dFf: 32, warmup: 0, evalInterval: 3, evalSize: 2, logInterval: 1, labelSmoothing: 0 };
    const js = await progressOf(() => runSeq2SeqTrain({ ...flags, out: join(work, 's2s-js'), backend: 'js' }));
    const gpu = await progressOf(() => runSeq2SeqTrain({ ...flags, out: join(work, 's2s-gpu'), backend: 'webgpu' }));
    assert.match(gpu.text, /backend webgpu/);
    sameLosses(gpu.losses, js.losses, 3, 'seq2seq');
    assert.match(gpu.text, /saved checkpoint at step 3/);
    await assert.rejects(
      progressOf(() => runSeq2SeqTrain({ ...flags, labelSmoothing: 0.1, out: join(work, 's2s-ls'), backend: 'webgpu' })),
      (e: unknown) => e instanceof UserError && /label-smoothed cross-entropy has no webgpu kernel yet/.test(e.message) && !e.message.includes('\n'),
    );
  });

  it('attn embed train', async () => {
    const flags = { task: 'templates', pairs: 300, dataSeed: 1, passageWords: 64, windowWords: 24, steps: 3, dModel: 16, heads: 2, layers: 1, batchSize: 8, evalInterval: 3, evalPairs: 8, logInterval: 1, warmupSteps: 0 };
    const js = await progressOf(() => runEmbedTrainAsync({ ...flags, out: join(work, 'emb-js'), backend: 'js' }, () => {}));
    const gpu = await progressOf(() => runEmbedTrainAsync({ ...flags, out: join(work, 'emb-gpu'), backend: 'webgpu' }, () => {}));
    assert.match(gpu.text, /backend webgpu/);
    sameLosses(gpu.losses, js.losses, 3, 'embed');
    assert.match(gpu.text, /saved .*emb-gpu at step 3/);
  });
});
