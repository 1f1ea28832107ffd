/**
 * activationLinear (tensor/ops/activation_linear.ts): act(u)·Wᵀ + b as one
 * op equals the activation followed by linear — output and every gradient —
 * and keeps act(u) for backward only when W trains. The pool is filled with
 * NaN between forward and backward: a backward that read a buffer it had
 * given back would turn NaN.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { addLoRA, loraParameters } from '../src/nn/lora.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { fillPooled } from '../src/tensor/buffer_pool.js';
import { activationLinear, type InputOnlyActivation } from '../src/tensor/ops/activation_linear.js';
import { add, gelu, relu } from '../src/tensor/ops/elementwise.js';
import { linear } from '../src/tensor/ops/linear.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, randn } from './helpers.js';

const addon = loadAddon();
const seedOf = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));

/** Output and the gradients of u, W, b — of the fused op, or of activation then linear. */
function run(fused: boolean, act: InputOnlyActivation, weightTrains: boolean): Float32Array[] {
  const rng = new Rng(5);
  // Above the pool's small-buffer size (1024 floats), so that act(u) really goes through the pool.
  const u = randn([2, 16, 64], rng);
  const W = randn([20, 64], rng, 0.2, weightTrains);
  const b = randn([20], rng);
  const y = fused ? activationLinear(u, act, W, b) : linear(act === 'gelu' ? gelu(u) : relu(u), W, b);
  const out = y.data.slice();
  fillPooled(Number.NaN);
  backward(y, seedOf(y.size), { freeActivations: true });
  return [out, u.grad!.slice(), b.grad!.slice(), ...(weightTrains ? [W.grad!.slice()] : [])];
}

describe('activationLinear: activation and down projection as one op', () => {
  for (const backendName of ['js', 'native']) {
    it(`${backendName}: equals activation then linear, with W trained or frozen`, { skip: backendName === 'native' && !addon ? 'native addon not built' : false }, () => {
      if (backendName === 'native') registerBackend(createNativeBackend(addon!));
      setBackend(backendName);
      try {
        for (const act of ['gelu', 'relu'] as const) {
          for (const weightTrains of [true, false]) {
            const want = run(false, act, weightTrains);
            const got = run(true, act, weightTrains);
            assert.equal(got.length, want.length);
            got.forEach((g, i) => {
              assert.ok(g.every(Number.isFinite), `${act} W ${weightTrains ? 'trains' : 'frozen'}: tensor ${i} is finite`);
              assertClose(g, want[i]!, 1e-5, `${act} W ${weightTrains ? 'trains' : 'frozen'}: tensor ${i}`);
            });
          }
        }
      } finally {
        setBackend('js');
      }
    });
  }

  it('a GPT with LoRA trains the same through the fused MLP as through the composed one (frozen c_proj)', () => {
    setBackend('js');
    const grads = (fused: boolean): Float32Array[] => {
      const m = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 8, block_size: 8, vocab_size: 11 }), new Rng(4));
      addLoRA(m, { r: 2, alpha: 4, targets: ['c_attn', 'c_fc'], rng: new Rng(6) });
      for (const [, p] of loraParameters(m)) for (let i = 0; i < p.size; i++) p.data[i] = Math.cos(i);
      m.eval();
      const ids = Int32Array.of(1, 4, 9, 2, 3, 7, 0, 10);
      const targets = Int32Array.of(4, 9, 2, 3, 7, 0, 10, 5);
      let loss: Tensor;
      if (fused) loss = m.forward(ids, [1, 8], targets).loss!;
      else {
        // The composed path: each MLP's activation, then its c_proj, as two ops.
        for (const blk of m.h) {
          blk.mlp.forward = function (this: typeof blk.mlp, x: Tensor, skip: Tensor | null = null) {
            const y = this.c_proj.forward(gelu(this.c_fc.forward(x)));
            return skip ? add(skip, y) : y;
          };
        }
        loss = m.forward(ids, [1, 8], targets).loss!;
      }
      backward(loss);
      return loraParameters(m).map(([, p]) => p.grad!.slice());
    };
    const want = grads(false);
    grads(true).forEach((g, i) => assertClose(g, want[i]!, 1e-6, `adapter tensor ${i}`));
    // Outside a graph (sampling) the MLP keeps its composed path: same logits either way.
    const m = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 8, vocab_size: 11 }), new Rng(4));
    const ids = Int32Array.of(1, 4, 9, 2);
    const a = m.forward(ids, [1, 4]).logits.data.slice();
    const b = noGrad(() => m.forward(ids, [1, 4]).logits.data.slice());
    assertClose(a, b, 1e-6, 'logits');
  });
});
