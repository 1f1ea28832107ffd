import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackend } from '../src/backend/select.js';
import { benchRecipe, runTorchRecipe } from '../src/bench/recipe.js';
import { torchUnavailable } from '../src/bench/torch.js';
import { fablesCorpus } from '../src/data/fables.js';
import { referenceSkip } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'attn-recipe-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
// The native backend when it is built, as `attn bench` would use: the js one takes a minute here.
selectBackend('auto');
after(() => setBackend('js'));
const text = join(dir, 'fables.txt');
writeFileSync(text, fablesCorpus(60_000));

describe('the recipe workload (nanoGPT\'s CPU recipe, shortened here)', () => {
  it('trains, then scores the whole validation split beside the 20-batch estimate', () => {
    const r = benchRecipe(text, 5, { maxIters: 30, evalInterval: 15 });
    assert.equal(r.workload, 'recipe');
    const est = Number(r.val_estimate);
    const full = Number(r.val_full);
    // 30 steps from ln(vocab) ≈ 3.7: learning has started, and both measures see the same model.
    assert.ok(est < 3.5 && full < 3.5, JSON.stringify(r));
    assert.ok(Math.abs(est - full) < 0.3, `estimate ${est} and whole split ${full} should be close`);
    assert.ok(Number(r.seconds) > 0);
    assert.equal(r.precision, 'fp32');
  });

  it('runs in bf16 when asked, and learns as far as fp32 does in the same steps', () => {
    const fp32 = benchRecipe(text, 5, { maxIters: 30, evalInterval: 30 });
    const bf16 = benchRecipe(text, 5, { maxIters: 30, evalInterval: 30, precision: 'bf16' });
    assert.equal(bf16.precision, 'bf16');
    // Same seed, same batches: bf16 operands move the loss by rounding, not by learning less (tolerance: 0.05 nats).
    assert.ok(Math.abs(Number(bf16.val_full) - Number(fp32.val_full)) < 0.05, `fp32 ${fp32.val_full}, bf16 ${bf16.val_full}`);
  });

  const noTorch = torchUnavailable();
  it('runs the PyTorch twin when torch is present', { skip: referenceSkip(noTorch && `PyTorch reference skipped: ${noTorch}`) }, () => {
    const r = runTorchRecipe(text, 5, 1, 30);
    assert.equal(r.impl, 'pytorch');
    assert.ok(Number(r.val_full) < 3.5 && Number(r.val_estimate) < 3.5, JSON.stringify(r));
  });
});
