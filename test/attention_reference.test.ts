import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dropBits, dropThreshold } from '../src/backend/js/dropout.js';
import { CausalSelfAttention } from '../src/nn/attention.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { add, attention, attentionWeights, concat, matmul, mul, packedAttention, scale, slice, softmax, sum, transpose } from '../src/tensor/index.js';
import { cachedAttention } from '../src/generate/cached_attention.js';
import type { KVLayer } from '../src/generate/kv_cache.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

interface Case {
  name: string;
  B: number;
  Tq: number;
  Tk: number;
  nHead: number;
  nKvHead: number;
  D: number;
  causal: boolean;
  pad?: (b: number, j: number) => boolean;
}

// Every row of these sees at least one key (a row that sees none is tested on its own below).
const cases: Case[] = [
  { name: 'self', B: 2, Tq: 5, Tk: 5, nHead: 2, nKvHead: 2, D: 3, causal: false },
  { name: 'causal', B: 2, Tq: 6, Tk: 6, nHead: 3, nKvHead: 3, D: 2, causal: true },
  { name: 'cross, Tq < Tk', B: 2, Tq: 3, Tk: 7, nHead: 2, nKvHead: 2, D: 4, causal: false },
  { name: 'causal, Tq < Tk (the diagonal shifts)', B: 1, Tq: 3, Tk: 7, nHead: 2, nKvHead: 2, D: 4, causal: true },
  { name: 'cross, Tq > Tk', B: 1, Tq: 6, Tk: 4, nHead: 2, nKvHead: 2, D: 2, causal: false },
  { name: 'key padding', B: 2, Tq: 4, Tk: 6, nHead: 2, nKvHead: 2, D: 3, causal: false, pad: (b, j) => j === 5 || (b === 1 && j >= 3) },
  { name: 'causal and padding', B: 2, Tq: 5, Tk: 5, nHead: 2, nKvHead: 2, D: 3, causal: true, pad: (b, j) => b === 1 && j === 2 },
  { name: 'grouped-query (6 query heads, 2 key/value heads)', B: 2, Tq: 5, Tk: 5, nHead: 6, nKvHead: 2, D: 2, causal: true },
  { name: 'multi-query (4 query heads, 1 key/value head), cross', B: 1, Tq: 3, Tk: 5, nHead: 4, nKvHead: 1, D: 3, causal: false },
];

function inputs(c: Case, rng: Rng): [Tensor, Tensor, Tensor, Uint8Array | undefined] {
  const q = randn([c.B, c.Tq, c.nHead * c.D], rng);
  const k = randn([c.B, c.Tk, c.nKvHead * c.D], rng);
  const v = randn([c.B, c.Tk, c.nKvHead * c.D], rng);
  const pad = c.pad ? Uint8Array.from({ length: c.B * c.Tk }, (_, i) => (c.pad!(Math.floor(i / c.Tk), i % c.Tk) ? 1 : 0)) : undefined;
  return [q, k, v, pad];
}

/** Attention spelled out op by op, as the article draws it: scores, mask, softmax, weighted sum; head h reads key/value head h/(nHead/nKvHead). */
function composed(q: Tensor, k: Tensor, v: Tensor, c: Case, pad?: Uint8Array): Tensor {
  const { B, Tq, Tk, D } = c;
  const mask = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Tq; i++)
      for (let j = 0; j < Tk; j++) if ((c.causal && j > i + Tk - Tq) || pad?.[b * Tk + j]) mask[(b * Tq + i) * Tk + j] = -Infinity;
  const heads: Tensor[] = [];
  for (let h = 0; h < c.nHead; h++) {
    const g = Math.floor(h / (c.nHead / c.nKvHead));
    const qh = slice(q, 2, h * D, (h + 1) * D);
    const kh = slice(k, 2, g * D, (g + 1) * D);
    const vh = slice(v, 2, g * D, (g + 1) * D);
    const scores = add(scale(matmul(qh, transpose(kh, 1, 2)), 1 / Math.sqrt(D)), new Tensor(mask, [B, Tq, Tk]));
    heads.push(matmul(softmax(scores), vh));
  }
  return concat(heads, 2);
}

/** Values and the gradients of Σ out∘R with respect to the given inputs. */
function valueAndGrads(f: () => Tensor, xs: Tensor[], R: Float32Array): Float32Array[] {
  for (const x of xs) x.grad = null;
  const out = f();
  backward(sum(mul(out, new Tensor(R, out.shape))));
  const result = [Float32Array.from(out.data), ...xs.map((x) => Float32Array.from(x.grad!))];
  for (const x of xs) x.grad = null;
  return result;
}

/** An Rng that always draws the same seed, so that repeated forwards (finite differences) drop the same weights. */
function fixedSeed(seed: number): Rng {
  const rng = new Rng(1);
  rng.nextUint32 = () => seed;
  return rng;
}

describe('the js attention reference equals attention composed from matmul, softmax and a mask', () => {
  for (const c of cases) {
    it(`${c.name}: values and gradients`, () => {
      const rng = new Rng(31);
      const [q, k, v, pad] = inputs(c, rng);
      const R = Float32Array.from({ length: c.B * c.Tq * c.nHead * c.D }, () => rng.normal());
      const fused = valueAndGrads(() => attention(q, k, v, { nHead: c.nHead, nKvHead: c.nKvHead, causal: c.causal, keyPadding: pad }), [q, k, v], R);
      const plain = valueAndGrads(() => composed(q, k, v, c, pad), [q, k, v], R);
      fused.forEach((t, i) => assertClose(t, plain[i]!, 1e-5, ['output', 'dq', 'dk', 'dv'][i]));
    });
  }

  it('attentionWeights are the composed softmax weights, each visible row summing to 1, hidden keys 0', () => {
    const c = cases[6]!; // causal and padding
    const [q, k, , pad] = inputs(c, new Rng(2));
    const w = attentionWeights(q, k, { nHead: c.nHead, causal: true, keyPadding: pad });
    for (let b = 0; b < c.B; b++)
      for (let h = 0; h < c.nHead; h++)
        for (let i = 0; i < c.Tq; i++) {
          const row = w.subarray(((b * c.nHead + h) * c.Tq + i) * c.Tk, ((b * c.nHead + h) * c.Tq + i + 1) * c.Tk);
          for (let j = 0; j < c.Tk; j++) if (j > i || pad![b * c.Tk + j]) assert.equal(row[j], 0);
          assert.ok(Math.abs(row.reduce((a, x) => a + x, 0) - 1) < 1e-6);
        }
  });

  it('a query that sees no key outputs zeros and passes no gradient (causal Tq > Tk; a fully padded row)', () => {
    const rng = new Rng(8);
    const [B, Tq, Tk, H, D] = [2, 5, 3, 2, 2];
    const q = randn([B, Tq, H * D], rng);
    const k = randn([B, Tk, H * D], rng);
    const v = randn([B, Tk, H * D], rng);
    const pad = Uint8Array.from([0, 0, 0, 1, 1, 1]); // row 1 sees nothing at all
    const out = attention(q, k, v, { nHead: H, causal: true, keyPadding: pad });
    backward(sum(out));
    // Row 0: query i sees keys j ≤ i − 2, so queries 0 and 1 see none.
    for (const [b, i] of [[0, 0], [0, 1], [1, 0], [1, 2], [1, 4]]) {
      const at = (b! * Tq + i!) * H * D;
      assert.deepEqual(Array.from(out.data.subarray(at, at + H * D)), [0, 0, 0, 0]);
      assert.deepEqual(Array.from(q.grad!.subarray(at, at + H * D)), [0, 0, 0, 0]);
    }
    assert.ok(k.grad!.subarray(Tk * H * D).every((g) => g === 0));
    assert.ok(out.data.subarray(2 * H * D, Tq * H * D).some((x) => x !== 0));
  });
});

describe('grouped-query attention', () => {
  it('equals multi-head attention with each key/value head repeated for its query heads (values and gradients)', () => {
    const rng = new Rng(12);
    const [B, T, H, Hkv, D] = [2, 6, 6, 2, 3];
    const q = randn([B, T, H * D], rng);
    const k = randn([B, T, Hkv * D], rng);
    const v = randn([B, T, Hkv * D], rng);
    const R = Float32Array.from({ length: B * T * H * D }, () => rng.normal());
    // Repeat key/value head g for query heads g·3 … g·3 + 2: [B, T, H·D]; autograd sums the copies' gradients back.
    const repeat = (x: Tensor) => concat(Array.from({ length: H }, (_, h) => slice(x, 2, Math.floor(h / (H / Hkv)) * D, (Math.floor(h / (H / Hkv)) + 1) * D)), 2);
    const grouped = valueAndGrads(() => attention(q, k, v, { nHead: H, nKvHead: Hkv, causal: true }), [q, k, v], R);
    const repeated = valueAndGrads(() => attention(q, repeat(k), repeat(v), { nHead: H, causal: true }), [q, k, v], R);
    grouped.forEach((t, i) => assertClose(t, repeated[i]!, 1e-6, ['output', 'dq', 'dk', 'dv'][i]));
  });

  it('packed grouped attention (one [B, T, (H + 2·Hkv)·D] projection) equals split + attention', () => {
    const rng = new Rng(13);
    const [H, Hkv, D] = [4, 2, 3];
    const qkv = randn([2, 5, (H + 2 * Hkv) * D], rng);
    const R = Float32Array.from({ length: 2 * 5 * H * D }, () => rng.normal());
    const packed = valueAndGrads(() => packedAttention(qkv, { nHead: H, nKvHead: Hkv, causal: true }), [qkv], R);
    const parts = () => {
      const q = slice(qkv, 2, 0, H * D);
      const k = slice(qkv, 2, H * D, (H + Hkv) * D);
      const v = slice(qkv, 2, (H + Hkv) * D, (H + 2 * Hkv) * D);
      return attention(q, k, v, { nHead: H, nKvHead: Hkv, causal: true });
    };
    const plain = valueAndGrads(parts, [qkv], R);
    packed.forEach((t, i) => assertClose(t, plain[i]!, 1e-6, ['output', 'dqkv'][i]));
  });

  it('a KV cache with fewer key/value heads: prefill then decode equals attention over the whole sequence', () => {
    const rng = new Rng(14);
    const [T, H, Hkv, D, prompt] = [7, 4, 2, 3, 4];
    const q = randn([1, T, H * D], rng, 1, false);
    const k = randn([1, T, Hkv * D], rng, 1, false);
    const v = randn([1, T, Hkv * D], rng, 1, false);
    const want = noGrad(() => attention(q, k, v, { nHead: H, nKvHead: Hkv, causal: true }));
    const kv: KVLayer = { k: new Float32Array(T * Hkv * D), v: new Float32Array(T * Hkv * D), cap: T, past: 0, start: new Int32Array(1) };
    const rows = (x: Tensor, a: number, b: number) => slice(x, 1, a, b);
    const got: Tensor[] = [];
    for (const [a, b] of [[0, prompt], ...Array.from({ length: T - prompt }, (_, i) => [prompt + i, prompt + i + 1])] as [number, number][]) {
      got.push(noGrad(() => cachedAttention(rows(q, a, b), rows(k, a, b), rows(v, a, b), kv, { nHead: H, nKvHead: Hkv })));
      kv.past = b;
    }
    assertClose(concat(got, 1).data, want.data, 1e-6);
  });

  it('rejects a key/value head count that does not divide the query heads', () => {
    const rng = new Rng(1);
    assert.throws(() => attention(randn([1, 2, 6], rng), randn([1, 2, 4], rng), randn([1, 2, 4], rng), { nHead: 3, nKvHead: 2 }), /do not divide/);
  });
});

describe('attention gradients match finite differences', () => {
  const rng = new Rng(15);
  it('cross, padded, grouped', () => {
    const q = randn([2, 3, 4 * 2], rng);
    const k = randn([2, 4, 2 * 2], rng);
    const v = randn([2, 4, 2 * 2], rng);
    const pad = Uint8Array.from([0, 1, 0, 0, 0, 0, 0, 1]);
    gradCheck(() => attention(q, k, v, { nHead: 4, nKvHead: 2, keyPadding: pad }), [q, k, v]);
  });
  it('causal multi-query with dropout on the probabilities (a fixed seed: the same mask every forward)', () => {
    const q = randn([1, 5, 3 * 2], rng);
    const k = randn([1, 5, 2], rng);
    const v = randn([1, 5, 2], rng);
    gradCheck(() => attention(q, k, v, { nHead: 3, nKvHead: 1, causal: true, dropout: { p: 0.4, rng: fixedSeed(99) } }), [q, k, v]);
  });
});

describe("the GPT's attention dropout acts on the weights, as in nanoGPT", () => {
  it('training output = c_proj((softmax(q·kᵀ/√d) ∘ mask)·v), the mask drawn from the layer generator\'s next seed', () => {
    const cfg = { n_embd: 8, n_head: 2, n_layer: 1, dropout: 0.3, bias: true };
    const [B, T, H, D] = [2, 6, 2, 4];
    const attn = new CausalSelfAttention(cfg, new Rng(5));
    const twin = new Rng(5); // the same draws: the twin layer's weights, then the seed the forward will take
    new CausalSelfAttention(cfg, twin);
    const seed = twin.nextUint32();
    attn.resid_dropout.train(false); // isolate the attention dropout
    const x = randn([B, T, 8], new Rng(6), 1, false);
    const y = noGrad(() => attn.forward(x));

    // By hand: the weights, the mask of weight (b, h, i, j) from the shared hash, the weighted sum of values.
    const qkv = noGrad(() => attn.c_attn.forward(x)).data;
    const o = new Float32Array(B * T * H * D);
    const keep = Math.fround(1 / (1 - cfg.dropout));
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++) {
          const at = (t: number, part: number, e: number) => qkv[(b * T + t) * 24 + part * 8 + h * D + e]!;
          const s = Array.from({ length: i + 1 }, (_, j) => Array.from({ length: D }, (_, e) => at(i, 0, e) * at(j, 1, e)).reduce((a, z) => a + z, 0) / Math.sqrt(D));
          const max = Math.max(...s);
          const z = s.reduce((a, sj) => a + Math.exp(sj - max), 0);
          for (let j = 0; j <= i; j++) {
            const mask = dropBits(seed, ((b * H + h) * T + i) * T + j) < dropThreshold(cfg.dropout) ? 0 : keep;
            for (let e = 0; e < D; e++) o[(b * T + i) * H * D + h * D + e]! += (Math.exp(s[j]! - max) / z) * mask * at(j, 2, e);
          }
        }
    const want = noGrad(() => attn.c_proj.forward(new Tensor(o, [B, T, H * D])));
    assertClose(y.data, want.data, 1e-5);

    // And in evaluation mode nothing is dropped: the output differs from the training one.
    attn.eval();
    const evalOut = noGrad(() => attn.forward(x));
    assert.ok(evalOut.data.some((val, i) => Math.abs(val - y.data[i]!) > 1e-3));
  });
});
