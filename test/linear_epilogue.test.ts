/**
 * linear's epilogue (tensor/ops/linear.ts): y = act(x·Wᵀ + b) + addend as
 * one product equals the ops it replaces — output and every gradient, the
 * addend's included — on js and native; the blocks that use it (residual.ts's
 * projectInto, the feed-forward's up projection) give the same logits as the
 * composed ops, and keep them where they cannot fold (dropout while training,
 * a quantized layer).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Dropout } from '../src/nn/dropout.js';
import { Linear } from '../src/nn/linear.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { projectInto } from '../src/nn/residual.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { add, gelu, silu } from '../src/tensor/ops/elementwise.js';
import { linear } from '../src/tensor/ops/linear.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, randn } from './helpers.js';

const addon = loadAddon();
const seedOf = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.cos(i + 2));

/** Output and the gradients of x, W, b and the addend: folded into the product, or as separate ops. */
function run(fold: boolean, activation: 'gelu' | 'silu' | null, withAddend: boolean): Float32Array[] {
  const rng = new Rng(3);
  const x = randn([2, 5, 24], rng);
  const W = randn([12, 24], rng, 0.3);
  const b = randn([12], rng);
  const skip = randn([2, 5, 12], rng);
  let y: Tensor;
  if (fold) y = linear(x, W, b, { activation, addend: withAddend ? skip : null });
  else {
    y = linear(x, W, b);
    if (activation) y = activation === 'gelu' ? gelu(y) : silu(y);
    if (withAddend) y = add(y, skip);
  }
  const out = y.data.slice();
  backward(y, seedOf(y.size));
  return [out, x.grad!.slice(), W.grad!.slice(), b.grad!.slice(), ...(withAddend ? [skip.grad!.slice()] : [])];
}

describe('linear with an epilogue: an activation, an addend', () => {
  for (const name of ['js', 'native'] as const) {
    it(`${name}: equals the separate ops, output and gradients (the addend's is dy)`, { skip: name === 'native' && !addon ? 'native addon not built' : false }, () => {
      if (name === 'native') registerBackend(createNativeBackend(addon!));
      setBackend(name);
      try {
        for (const activation of ['gelu', 'silu', null] as const) {
          for (const withAddend of [true, false]) {
            if (!activation && !withAddend) continue;
            const want = run(false, activation, withAddend);
            run(true, activation, withAddend).forEach((g, i) => assertClose(g, want[i]!, 1e-5, `${name} ${activation} addend=${withAddend}: tensor ${i}`));
          }
        }
        // Outside a graph the activation is folded too: the same values.
        const rng = new Rng(8);
        const [x, W, b, skip] = [randn([3, 16], rng, 1, false), randn([8, 16], rng, 0.3, false), randn([8], rng, 1, false), randn([3, 8], rng, 1, false)];
        const folded = noGrad(() => linear(x, W, b, { activation: 'gelu', addend: skip })).data;
        assertClose(folded, add(gelu(linear(x, W, b)), skip).data, 1e-6, `${name} outside a graph`);
      } finally {
        setBackend('js');
      }
    });
  }

  it('an addend of another shape is an error naming both', () => {
    const rng = new Rng(1);
    assert.throws(() => linear(randn([2, 4], rng), randn([3, 4], rng), null, { addend: randn([2, 4], rng) }), /addend \[2,4\] is not the output's shape \[2,3\]/);
  });

  it('projectInto: skip + layer(h), folded when dropout is off, composed when it is on (training) or the layer is quantized', () => {
    const rng = new Rng(2);
    const layer = new Linear(6, 4, { bias: true, std: 0.5, rng });
    const [h, skip] = [randn([3, 6], rng, 1, false), randn([3, 4], rng, 1, false)];
    const want = add(skip, layer.forward(h)).data;
    const off = new Dropout(0.5, new Rng(4));
    off.training = false;
    assertClose(projectInto(layer, h, off, skip).data, want, 1e-6, 'dropout off');
    const on = new Dropout(0.5, new Rng(4));
    const onAgain = new Dropout(0.5, new Rng(4));
    assertClose(projectInto(layer, h, on, skip).data, add(skip, onAgain.forward(layer.forward(h))).data, 1e-6, 'dropout on: skip + dropout(y)');
    assertClose(projectInto(layer, h, off, null).data, layer.forward(h).data, 0, 'no skip');
  });

  it('a GPT (inference, with and without int8 layers) gives the logits of the composed blocks', () => {
    setBackend('js');
    for (const int8 of [false, true]) {
      const m = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 13, bias: true }), new Rng(6)).eval();
      if (int8) quantize(m);
      const ids = Int32Array.of(1, 5, 7, 2, 11);
      const folded = noGrad(() => m.forward(ids, [1, 5]).logits.data.slice());
      // The composed blocks: every sublayer's projection and its residual addition as separate ops.
      for (const blk of m.h) {
        const mlp = blk.mlp;
        mlp.forward = (x: Tensor, skip: Tensor | null = null) => {
          const y = mlp.c_proj.forward(gelu(mlp.c_fc.forward(x)));
          return skip ? add(skip, y) : y;
        };
      }
      const composed = noGrad(() => m.forward(ids, [1, 5]).logits.data.slice());
      assertClose(folded, composed, 1e-5, int8 ? 'int8' : 'fp32');
    }
  });
});
