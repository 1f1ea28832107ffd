import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { backend, registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { forwardCached, scoresCached } from '../src/generate/cached_forward.js';
import { fusedDecodeStep, setFusedDecode } from '../src/generate/fused_decode.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { argmax } from '../src/generate/sampling.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig, type LlamaConfigInput } from '../src/models/llama_config.js';
import { quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { Linear } from '../src/nn/linear.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';

// Matrices of whole 32-value blocks (q8_0, q4_0): 64 wide, 2 KV heads of 16, SwiGLU 96; Qwen2's q/k/v biases
// and Llama 3's rope_scaling, so every optional part of the step runs.
const config = (over: Partial<LlamaConfigInput> = {}) =>
  parseLlamaConfig({
    n_layer: 3, n_head: 4, n_kv_head: 2, n_embd: 64, head_dim: 16, intermediate_size: 96, vocab_size: 40, block_size: 32, rms_norm_eps: 1e-5,
    attention_bias: true, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, original_max_position_embeddings: 16, low_freq_factor: 1, high_freq_factor: 4 }, ...over,
  });

type Kind = 'f32' | 'int8' | 'q8_0' | 'q4_0';

function model(kind: Kind, tied = false): Llama {
  const m = new Llama(config({ tie_word_embeddings: tied }), new Rng(11)).eval();
  // Scale the random weights up so that the layers change the residual stream a lot (0.02 leaves it near the embedding).
  for (const [, p] of m.namedParameters()) if (p.shape.length === 2) p.data.forEach((v, i) => (p.data[i] = v * 8));
  if (kind === 'int8') quantize(m);
  if (kind === 'q8_0' || kind === 'q4_0') useQuantizedMatrices(m, quantizeMatrices(m, kind));
  return m;
}

/**
 * Greedy decoding of `steps` tokens after a 5-token prompt with the fused path on or off;
 * every step's scores, and where the fused path ran.
 */
function decode(m: Llama, fused: boolean, steps = 8): { scores: Float32Array[]; tokens: number[] } {
  const was = setFusedDecode(fused);
  try {
    return noGrad(() => {
      const cache = new KVCache(m.config, 1, 24);
      const scores: Float32Array[] = [];
      let next = argmax(forwardCached(m, Int32Array.of(3, 9, 27, 1, 30), [1, 5], cache).data);
      const tokens = [next];
      for (let i = 0; i < steps; i++) {
        const s = Float32Array.from(forwardCached(m, Int32Array.of(next), [1, 1], cache).data);
        scores.push(s);
        next = argmax(s);
        tokens.push(next);
      }
      return { scores, tokens };
    });
  } finally {
    setFusedDecode(was);
  }
}

function maxDiff(a: Float32Array[], b: Float32Array[]): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  a.forEach((row, r) => row.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - b[r]![i]!)); scale = Math.max(scale, Math.abs(b[r]![i]!)); }));
  return { diff, scale };
}

const addon = loadAddon();
const backends = ['js', ...(addon ? ['native'] : [])];
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

for (const name of backends) {
  describe(`fused one-token decode step equals the op-by-op forward (${name} backend)`, () => {
    for (const [kind, tied] of [['f32', false], ['f32', true], ['int8', false], ['q8_0', true], ['q4_0', false]] as const) {
      it(`${kind}${tied ? ', tied head' : ''}: the same scores at every step (relative 1e-5) and the same greedy tokens`, () => {
        setBackend(name);
        const m = model(kind, tied);
        const fused = decode(m, true);
        const ops = decode(m, false);
        const { diff, scale } = maxDiff(fused.scores, ops.scores);
        assert.ok(scale > 1, `scores of size ${scale}: the test model should produce large logits`);
        // Same kernels either way; only RoPE's rounding (C float vs js double) and the summation order of fused adds differ.
        assert.ok(diff <= 1e-5 * scale, `${kind} on ${name}: scores differ by ${diff} (largest |score| ${scale})`);
        assert.deepEqual(fused.tokens, ops.tokens);
      });
    }

    it('two caches decoded in turn give each the scores it gets alone, bit for bit (the per-cache records and the stack kept between tokens)', () => {
      setBackend(name);
      const m = model('q4_0');
      const prompts = [Int32Array.of(3, 9, 27), Int32Array.of(5, 1, 30, 2)];
      const alone = (p: Int32Array) => noGrad(() => {
        const cache = new KVCache(m.config, 1, 24);
        let next = argmax(forwardCached(m, p, [1, p.length], cache).data);
        const out: Float32Array[] = [];
        for (let i = 0; i < 5; i++) out.push(Float32Array.from(forwardCached(m, Int32Array.of(next), [1, 1], cache).data)), (next = argmax(out.at(-1)!));
        return out;
      });
      const want = prompts.map(alone);
      const got: Float32Array[][] = [[], []];
      noGrad(() => {
        const caches = prompts.map(() => new KVCache(m.config, 1, 24));
        const next = prompts.map((p, j) => argmax(forwardCached(m, p, [1, p.length], caches[j]!).data));
        for (let i = 0; i < 5; i++)
          for (const j of [0, 1]) {
            const s = Float32Array.from(forwardCached(m, Int32Array.of(next[j]!), [1, 1], caches[j]!).data);
            got[j]!.push(s);
            next[j] = argmax(s);
          }
      });
      assert.deepEqual(got, want);
    });

    it("a cache whose arrays are replaced between tokens is read from the new arrays (the kept stack notices)", () => {
      setBackend(name);
      const m = model('q4_0');
      const run = (swap: boolean) => noGrad(() => {
        const cache = new KVCache(m.config, 1, 24);
        let next = argmax(forwardCached(m, Int32Array.of(3, 9, 27), [1, 3], cache).data);
        const out: Float32Array[] = [];
        for (let i = 0; i < 5; i++) {
          if (swap && i === 2)
            for (const l of cache.layers) {
              const [k, v] = [l.k as Float32Array, l.v as Float32Array];
              l.k = Float32Array.from(k);
              l.v = Float32Array.from(v);
              k.fill(NaN), v.fill(NaN); // the old arrays must not be read again
            }
          out.push(Float32Array.from(forwardCached(m, Int32Array.of(next), [1, 1], cache).data));
          next = argmax(out.at(-1)!);
        }
        return out;
      });
      assert.deepEqual(run(true), run(false));
    });

    it('writes the cache exactly as the op-by-op path does: a prompt after fused steps sees the same keys and values', () => {
      setBackend(name);
      const m = model('q8_0');
      const run = (fused: boolean) => {
        const was = setFusedDecode(fused);
        try {
          return noGrad(() => {
            const cache = new KVCache(m.config, 1, 24);
            forwardCached(m, Int32Array.of(4, 5), [1, 2], cache);
            for (const id of [6, 7, 8]) forwardCached(m, Int32Array.of(id), [1, 1], cache);
            return { k: Float32Array.from(cache.layers[2]!.k as Float32Array), logits: Float32Array.from(forwardCached(m, Int32Array.of(9, 10), [1, 2], cache).data) };
          });
        } finally {
          setFusedDecode(was);
        }
      };
      const a = run(true);
      const b = run(false);
      const { diff, scale } = maxDiff([a.k, a.logits], [b.k, b.logits]);
      assert.ok(diff <= 1e-5 * Math.max(1, scale), `cache or later scores differ by ${diff}`);
    });
  });
}

describe('a decode loop may hand the fused step its scores buffer', () => {
  for (const name of backends) {
    it(`${name}: scoresCached(…, into) writes the same scores into the caller's buffer, token after token`, () => {
      setBackend(name);
      try {
        const m = model('q4_0');
        const fresh = new KVCache(m.config, 1, 8);
        const reused = new KVCache(m.config, 1, 8);
        const into = new Float32Array(m.config.vocab_size);
        noGrad(() => {
          scoresCached(m, Int32Array.of(1, 2, 3), [1, 3], fresh);
          const first = scoresCached(m, Int32Array.of(1, 2, 3), [1, 3], reused, into);
          assert.notEqual(first, into, 'a prompt pass is not fused: a new array, into untouched');
          for (const id of [4, 5, 6]) {
            const a = scoresCached(m, Int32Array.of(id), [1, 1], fresh);
            const b = scoresCached(m, Int32Array.of(id), [1, 1], reused, into);
            assert.equal(b, into);
            assert.deepEqual(Array.from(b), Array.from(a));
          }
        });
      } finally {
        setBackend('js');
      }
    });
  }
});

describe('the fused path steps aside where it does not apply', () => {
  it('a replaced projection (a Linear subclass, as an adapter would be), training mode, two rows, or switched off: null, nothing written', () => {
    setBackend('js');
    const m = model('f32');
    const cache = new KVCache(m.config, 1, 8);
    noGrad(() => {
      assert.ok(fusedDecodeStep(m, 1, cache), 'a plain model takes the fused path');
      assert.equal(cache.length, 1);
      class Wrapped extends Linear {}
      const q = m.model.layers[1]!.self_attn.q_proj as Linear;
      m.replaceModule('model.layers.1.self_attn.q_proj', new Wrapped(64, 64, { weight: q.weight, bias: q.bias }));
      assert.equal(fusedDecodeStep(m, 1, cache), null);
      m.replaceModule('model.layers.1.self_attn.q_proj', q);
      assert.ok(fusedDecodeStep(m, 1, cache), 'the original layer back: fused again');
      m.train();
      assert.equal(fusedDecodeStep(m, 1, cache), null);
      m.eval();
      assert.equal(fusedDecodeStep(m, 1, new KVCache(m.config, 2, 8)), null);
      const was = setFusedDecode(false);
      assert.equal(fusedDecodeStep(m, 1, cache), null);
      setFusedDecode(was);
      assert.equal(cache.length, 2);
    });
    assert.equal(backend().name, 'js');
  });
});

// Wider layers, so that the native step splits each product's rows between the threads
// (static ranges of whole 16-row groups); and 8 query heads over 2 cached heads, which
// 3 threads split unevenly (one thread gets no KV head). The split must not change a bit.
describe('fused decode step on the native pool: 1, 2 and 3 threads give the op-by-op scores', { skip: addon ? false : 'native addon not built' }, () => {
  after(() => addon?.setThreads(2));
  const wide = (kind: Kind): Llama => {
    const m = new Llama(config({ n_embd: 256, n_head: 8, n_kv_head: 2, head_dim: 32, intermediate_size: 768, attention_bias: false }), new Rng(5)).eval();
    for (const [, p] of m.namedParameters()) if (p.shape.length === 2) p.data.forEach((v, i) => (p.data[i] = v * 8));
    if (kind === 'int8') quantize(m);
    if (kind === 'q8_0' || kind === 'q4_0') useQuantizedMatrices(m, quantizeMatrices(m, kind));
    return m;
  };
  for (const kind of ['f32', 'int8', 'q8_0', 'q4_0'] as const) {
    it(`${kind}: every step's scores within 1e-5 of the largest, the same greedy tokens`, () => {
      setBackend('native');
      const m = wide(kind);
      addon!.setThreads(1);
      const ops = decode(m, false, 12);
      const one = decode(m, true, 12);
      addon!.setThreads(2);
      const two = decode(m, true, 12);
      addon!.setThreads(3);
      const three = decode(m, true, 12);
      for (const [name, got] of [['1 thread', one], ['2 threads', two], ['3 threads', three]] as const) {
        const { diff, scale } = maxDiff(got.scores, ops.scores);
        assert.ok(scale > 1, `scores of size ${scale}`);
        assert.ok(diff <= 1e-5 * scale, `${kind}, ${name}: scores differ by ${diff} (largest |score| ${scale})`);
        assert.deepEqual(got.tokens, ops.tokens);
      }
      if (kind === 'q8_0' || kind === 'q4_0') {
        assert.deepEqual(two.scores, one.scores, `${kind}: 2 threads changed the scores`);
        assert.deepEqual(three.scores, one.scores, `${kind}: 3 threads changed the scores`);
      }
      // The whole stack in one call (decoderLayersStep) against one call a layer: the same bits.
      const b = backend() as { decoderLayersStep?: unknown };
      const stack = b.decoderLayersStep;
      assert.ok(stack, 'the native backend has decoderLayersStep');
      b.decoderLayersStep = undefined;
      try {
        const perLayer = decode(m, true, 12);
        assert.deepEqual(perLayer.scores, three.scores, `${kind}: one call a layer changed the scores`);
      } finally {
        b.decoderLayersStep = stack;
      }
    });
  }
});
