import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { backward } from '../src/tensor/autograd.js';
import { fillPooled, scratchBytesAllocated, takeZeroed, withScratch } from '../src/tensor/buffer_pool.js';
import { forwardCached, scoresCached } from '../src/generate/cached_forward.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';

describe('scratch scopes recycle an inference pass\'s buffers', () => {
  it('gives back what a scope took, zeroed on reuse, but never the array its result lives in', () => {
    const n = 5000; // above the small-buffer slabs
    let first: Float32Array | null = null;
    const result = withScratch(() => {
      first = takeZeroed(n);
      first.fill(7);
      new Float32Array(first.buffer).fill(7); // past the view too: reuse must still zero what it hands out
      const out = takeZeroed(n);
      out.fill(3);
      return out;
    });
    const again = withScratch(() => {
      const a = takeZeroed(n);
      const b = takeZeroed(n);
      assert.ok(a.buffer === first!.buffer || b.buffer === first!.buffer, 'the intermediate buffer is handed out again');
      assert.ok(a.buffer !== result.buffer && b.buffer !== result.buffer, 'the returned array is not recycled while its caller holds it');
      assert.equal(a.length, n, 'a view of exactly the length asked for');
      assert.ok(a.every((v) => v === 0) && b.every((v) => v === 0), 'recycled buffers come back zeroed');
      return 0;
    });
    assert.equal(again, 0);
    assert.ok(result.every((v) => v === 3), 'the result is untouched by later passes');
  });

  it('a nested result passes to the enclosing scope, which recycles it when it ends; sizes of one class share buffers', () => {
    const n = 6000;
    let inner: Float32Array | null = null;
    withScratch(() => {
      inner = withScratch(() => takeZeroed(n));
      return null;
    });
    const next = withScratch(() => takeZeroed(n - 100)); // another row count, the same capacity class
    assert.equal(next.buffer, inner!.buffer, 'the inner result was recycled by the outer scope');
  });
});

describe('a decoder\'s layers recycle each other\'s buffers within one scratch pass', () => {
  // Sizes no other test uses (their capacity classes start empty): 37 positions × 72 dims, above the small-buffer slabs.
  const config = (n_layer: number) => parseLlamaConfig({ n_layer, n_head: 4, n_kv_head: 2, n_embd: 72, head_dim: 18, intermediate_size: 200, vocab_size: 50, block_size: 64, rms_norm_eps: 1e-5 });
  const ids = Int32Array.from({ length: 37 }, (_, i) => (i * 7) % 50);
  const prefill = (model: Llama) => {
    const before = scratchBytesAllocated();
    const scores = scoresCached(model, ids, [1, ids.length], new KVCache(model.config, 1, 64));
    return { scores, fresh: scratchBytesAllocated() - before };
  };

  it('six layers take barely more new memory than two, and score the same as a pass that recycles nothing', () => {
    setBackend('js');
    const two = prefill(new Llama(config(2), new Rng(5)));
    const six = new Llama(config(6), new Rng(5));
    const reference = noGrad(() => Float32Array.from(forwardCached(six, ids, [1, ids.length], new KVCache(six.config, 1, 64)).data));
    fillPooled(NaN); // a buffer handed out again while still read would show
    const { scores, fresh } = prefill(six);
    assert.ok(two.fresh > 0);
    // Without per-layer recycling the six-layer pass holds every layer's activations at once: ≥ 2× what the two-layer pass left in the pool.
    assert.ok(fresh < two.fresh / 2, `six layers allocated ${fresh} new bytes, two layers ${two.fresh}`);
    assert.deepEqual(scores, reference);
  });
});

describe('outputs taken uninitialized (Tensor.empty) are overwritten in full', () => {
  const addon = loadAddon();
  if (addon) registerBackend(createNativeBackend(addon));
  after(() => setBackend('js'));
  for (const name of addon ? ['js', 'native'] : ['js']) it(`a training step gives the same loss and gradients when every pooled buffer holds NaN (${name} backend)`, () => {
    setBackend(name);
    // Big enough that activations (2·16 rows × 64…256) come from the pool, not the small-buffer slabs.
    const config = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 64, block_size: 16, vocab_size: 40, bias: true, dropout: 0 });
    const rng = new Rng(3);
    const ids = Int32Array.from({ length: 2 * 16 }, () => rng.int(40));
    const targets = Int32Array.from({ length: 2 * 16 }, () => rng.int(40));
    const step = (): { loss: number; grads: Float32Array[] } => {
      const model = new GPT(config, new Rng(9));
      const { loss } = model.forward(ids, [2, 16], targets);
      backward(loss!, undefined, { freeActivations: true });
      return { loss: loss!.item(), grads: model.parameters().map((p) => Float32Array.from(p.grad!)) };
    };
    const clean = step();
    // The first step's activations are back in the pool now: poison them, then step again.
    fillPooled(NaN);
    const poisoned = step();
    assert.ok(Number.isFinite(poisoned.loss), 'no NaN leaked into the loss');
    assert.equal(poisoned.loss, clean.loss);
    poisoned.grads.forEach((g, i) => assert.deepEqual(g, clean.grads[i], `gradient ${i}`));
  });
});
