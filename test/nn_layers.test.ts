import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { CausalSelfAttention, MultiHeadAttention } from '../src/nn/attention.js';
import { activate, GatedFeedForward } from '../src/nn/feed_forward.js';
import type { Linear } from '../src/nn/linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { attention } from '../src/tensor/ops/attention.js';
import { add, mul } from '../src/tensor/ops/elementwise.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

setBackend('js');

describe('nn layers', () => {
  it('silu is x·sigmoid(x), with its gradient', () => {
    const x = randn([3, 5], new Rng(1));
    const y = activate(x, 'silu');
    assertClose(y.data, x.data.map((v) => v / (1 + Math.exp(-v))), 1e-6, 'silu');
    gradCheck(() => activate(x, 'silu'), [x]);
  });

  it('the gated feed-forward is down(silu(gate(x)) ∘ up(x))', () => {
    const rng = new Rng(2);
    const ff = new GatedFeedForward({ d_model: 6, d_ff: 10, std: 0.3 }, rng);
    const x = randn([2, 3, 6], rng);
    const [gate, up, down] = [ff.gate_proj, ff.up_proj, ff.down_proj] as Linear[];
    const want = noGrad(() => down!.forward(mul(activate(gate!.forward(x), 'silu'), up!.forward(x))));
    assertClose(noGrad(() => ff.forward(x)).data, want.data, 1e-6, 'gated');
    assert.deepEqual(ff.namedParameters().map(([n]) => n), ['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']);
  });

  it('packed projections (c_attn) and separate ones (q/k/v_proj) are the same attention', () => {
    const rng = new Rng(3);
    const C = 8;
    const packed = new CausalSelfAttention({ n_embd: C, n_head: 2, n_layer: 1, dropout: 0, bias: true }, rng);
    const separate = new MultiHeadAttention({ d_model: C, n_head: 2, dropout: 0, causal: true }, rng);
    const [cAttn, cProj] = [packed.c_attn, packed.c_proj] as Linear[];
    // Rows 0…C−1 of c_attn make q, C…2C−1 k, 2C…3C−1 v.
    (['q_proj', 'k_proj', 'v_proj'] as const).forEach((name, i) => {
      const lin = separate[name] as Linear;
      lin.weight.data.set(cAttn!.weight.data.subarray(i * C * C, (i + 1) * C * C));
      lin.bias!.data.set(cAttn!.bias!.data.subarray(i * C, (i + 1) * C));
    });
    (separate.out_proj as Linear).weight.data.set(cProj!.weight.data);
    (separate.out_proj as Linear).bias!.data.set(cProj!.bias!.data);
    const x = randn([2, 5, C], rng);
    assertClose(noGrad(() => separate.forward(x)).data, noGrad(() => packed.forward(x)).data, 1e-5, 'packed vs separate');
    gradCheck(() => packed.forward(x), [x]);
  });

  for (const position_encoding of ['learned', 'rope'] as const) {
    it(`a GPT block is x + attn(ln_1(x)), then + mlp(ln_2(x)), and an attend that calls the op changes nothing (${position_encoding})`, () => {
      const m = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 8, vocab_size: 11, position_encoding }), new Rng(4)).eval();
      const block = m.h[0]!;
      const x = randn([1, 6, 8], new Rng(5), 1, false);
      const byHand = noGrad(() => {
        const h = add(x, block.attn.forward(block.ln_1.forward(x)));
        return add(h, block.mlp.forward(block.ln_2.forward(h)));
      });
      assertClose(noGrad(() => block.forward(x)).data, byHand.data, 1e-6, 'block');
      const ids = Int32Array.from([1, 2, 3, 4, 5, 6]);
      const seen: number[] = [];
      const viaAttend = noGrad(() => m.forward(ids, [1, 6], undefined, { attend: (layer, q, k, v, o) => (seen.push(layer), attention(q, k, v, o)) }).logits);
      assert.deepEqual(seen, [0]);
      assertClose(viaAttend.data, noGrad(() => m.forward(ids, [1, 6]).logits).data, 1e-6, 'attend');
      const last = noGrad(() => m.forward(ids, [1, 6], undefined, { last: true }).logits);
      assert.deepEqual(last.shape, [1, 11]);
      assertClose(last.data, viaAttend.data.subarray(5 * 11), 1e-6, 'last position only');
    });
  }

  it('attention dropout drops probabilities (as nanoGPT), only while training', () => {
    const rng = new Rng(7);
    const attn = new CausalSelfAttention({ n_embd: 8, n_head: 2, n_layer: 1, dropout: 0.5, bias: false }, rng);
    const x = randn([1, 6, 8], rng, 1, false);
    const seen: Array<number | null> = [];
    const spy = (q: Tensor, k: Tensor, v: Tensor, o: Parameters<typeof attention>[3]) => (seen.push(o.dropout?.p ?? null), attention(q, k, v, { ...o, dropout: null }));
    attn.forward(x, { attend: spy });
    attn.eval().forward(x, { attend: spy });
    assert.deepEqual(seen, [0.5, null]);
    // With every value 1, an output is the sum of the kept probabilities over 1 − p: dropping the
    // probabilities gives sums other than 0 and 2, which dropping outputs never would.
    const ones = new Tensor(new Float32Array(6 * 8).fill(1), [1, 6, 8]);
    const out = noGrad(() => attention(x, x, ones, { nHead: 2, causal: true, dropout: { p: 0.5, rng: new Rng(8) } }));
    assert.ok(out.data.some((v) => Math.abs(v) > 1e-6 && Math.abs(v - 2) > 1e-6), 'probabilities dropped');
  });

  it('a rotation needs self-attention', () => {
    const mha = new MultiHeadAttention({ d_model: 4, n_head: 2, dropout: 0, rope: true }, new Rng(6));
    assert.throws(() => mha.forward(new Tensor(new Float32Array(8), [1, 2, 4]), { memory: new Tensor(new Float32Array(12), [1, 3, 4]) }), /self-attention only/);
  });
});
