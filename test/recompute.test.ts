import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import type { DecoderLM } from '../src/models/causal_lm.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { backward, topologicalOrder } from '../src/tensor/autograd.js';
import { withPrecision, type Precision } from '../src/tensor/precision.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

const gpt = () => new GPT(parseGPTConfig({ n_layer: 3, n_head: 2, n_embd: 16, block_size: 12, vocab_size: 19, dropout: 0.2, bias: true }), new Rng(5));
const llama = () =>
  new Llama(parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 16, head_dim: 4, intermediate_size: 24, vocab_size: 19, block_size: 12, dropout: 0.2 }), new Rng(5));

/** Two micro-batches of forward + backward (gradients accumulate across them); returns losses, gradients, the rng state after. */
function run(model: DecoderLM, recompute: boolean, precision: Precision) {
  model.recompute = recompute;
  // The blocks alone: the chunked head (chunked_cross_entropy.test.ts) sums dW in another order, equal only within rounding.
  model.headChunkRows = 0;
  model.train();
  const data = new Rng(9);
  const [B, T] = [3, 12];
  const losses: number[] = [];
  for (let micro = 0; micro < 2; micro++) {
    const ids = Int32Array.from({ length: B * T }, () => data.int(19));
    const targets = Int32Array.from({ length: B * T }, () => data.int(19));
    const loss = withPrecision(precision, () => model.forward(ids, [B, T], targets).loss!);
    losses.push(loss.item());
    // The recomputed run's graph holds one 'recomputed' node per block and none of the blocks' insides.
    const ops = topologicalOrder(loss).map((t) => t.gradFn?.name);
    assert.equal(ops.filter((n) => n === 'recomputed').length, recompute ? model.config.n_layer : 0);
    if (recompute) assert.ok(!ops.includes('attention'), 'a recomputed block keeps no attention node');
    backward(loss, Float32Array.of(0.5), { freeActivations: true });
  }
  return { losses, grads: model.namedParameters().map(([name, p]) => [name, Array.from(p.grad!)] as const), rng: model.rng.getState() };
}

for (const backendName of addon ? ['js', 'native'] : ['js']) {
  describe(`recomputed blocks give bit-identical gradients (${backendName})`, () => {
    for (const [family, make] of [['GPT', gpt], ['Llama', llama]] as const) {
      for (const precision of ['fp32', 'bf16'] as const) {
        it(`${family}, dropout 0.2, ${precision}`, () => {
          setBackend(backendName);
          const stored = run(make(), false, precision);
          const again = run(make(), true, precision);
          assert.deepEqual(again.losses, stored.losses);
          assert.deepEqual(again.rng, stored.rng, 'recomputation must leave the dropout generator where the stored run leaves it');
          for (let i = 0; i < stored.grads.length; i++) {
            const [name, want] = stored.grads[i]!;
            const got = again.grads[i]![1];
            const diff = got.findIndex((g, j) => !Object.is(g, want[j]));
            assert.equal(diff, -1, `${name}[${diff}]: ${got[diff]} vs ${want[diff]}`);
          }
          assert.ok(stored.grads.some(([, g]) => g.some((v) => v !== 0)), 'the gradients should not all be zero');
        });
      }
    }
  });
}
