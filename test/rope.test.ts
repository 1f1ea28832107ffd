import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rope, ropeFrequencies, type RopeScaling } from '../src/tensor/ops/rope.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

/**
 * Hugging Face's apply_rotary_pos_emb written out for one head vector:
 * x·cos + rotate_half(x)·sin, cos = cat(cos f, cos f), rotate_half(x) = cat(−x[h:], x[:h]).
 */
function hfRotateHalf(x: number[], p: number, invFreq: number[]): number[] {
  const h = x.length / 2;
  const f = [...invFreq, ...invFreq].map((w) => p * w);
  const rot = [...x.slice(h).map((v) => -v), ...x.slice(0, h)];
  return x.map((v, j) => v * Math.cos(f[j]!) + rot[j]! * Math.sin(f[j]!));
}

describe('rotary position embedding, Hugging Face layout and rope_scaling', () => {
  const rng = new Rng(5);

  it('layout "half" equals a hand-written rotate_half, for every head and position', () => {
    const [B, T, H, D] = [2, 5, 3, 8];
    const x = randn([B, T, H * D], rng, 1, false);
    const positions = Int32Array.of(0, 1, 2, 7, 30);
    const base = 500000;
    const y = rope(x, H, positions, { base, layout: 'half' });
    const invFreq = Array.from({ length: D / 2 }, (_, i) => Math.pow(base, (-2 * i) / D));
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = ((b * T + t) * H + h) * D;
      const want = hfRotateHalf(Array.from(x.data.subarray(o, o + D)), positions[t]!, invFreq);
      assertClose(y.data.subarray(o, o + D), want, 1e-5, `b${b} t${t} h${h}`);
    }
    // …and is not the interleaved layout (the default, kept for attn's own GPTs).
    const inter = rope(x, H, positions, base);
    assert.ok(inter.data.some((v, i) => Math.abs(v - y.data[i]!) > 1e-3));
  });

  it('gradients match finite differences, with and without scaling', () => {
    const x = randn([2, 3, 8], rng);
    gradCheck(() => rope(x, 2, undefined, { layout: 'half' }), [x]);
    const yarn: RopeScaling = { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 };
    gradCheck(() => rope(x, 2, Int32Array.of(3, 9, 40), { layout: 'half', scaling: yarn }), [x]);
  });

  it('frequencies: linear, llama3, dynamic and yarn against hand-computed values', () => {
    // D = 8, θ = 10000: the plain frequencies are 10^0, 10^−1, 10^−2, 10^−3.
    const plain = [1, 0.1, 0.01, 0.001];
    assertClose(ropeFrequencies(8, 10000, null).invFreq, plain, 1e-12);
    assertClose(ropeFrequencies(8, 10000, { rope_type: 'linear', factor: 2 }).invFreq, [0.5, 0.05, 0.005, 0.0005], 1e-12);

    // llama3, original context 1024, low 1, high 4, factor 8: wavelengths 2π/f = 6.28, 62.8, 628, 6283;
    // below 1024/4 = 256 kept, above 1024/1 divided by 8, 628 blended with smooth = (1024/628.3 − 1)/3.
    const smooth = (1024 / (2 * Math.PI / 0.01) - 1) / 3;
    const llama3: RopeScaling = { rope_type: 'llama3', factor: 8, original_max_position_embeddings: 1024, low_freq_factor: 1, high_freq_factor: 4 };
    const l3 = ropeFrequencies(8, 10000, llama3);
    assertClose(l3.invFreq, [1, 0.1, (1 - smooth) * 0.01 / 8 + smooth * 0.01, 0.001 / 8], 1e-12);
    assert.equal(l3.attentionFactor, 1);

    // dynamic: within the context unchanged; at 32 positions of 16 with factor 2, θ' = θ·(2·32/16 − 1)^(8/6).
    const dyn: RopeScaling = { rope_type: 'dynamic', factor: 2, max_position_embeddings: 16 };
    assertClose(ropeFrequencies(8, 10000, dyn, 16).invFreq, plain, 1e-12);
    const b = 10000 * Math.pow(3, 4 / 3);
    assertClose(ropeFrequencies(8, 10000, dyn, 32).invFreq, [1, b ** -0.25, b ** -0.5, b ** -0.75], 1e-12);

    // yarn, factor 4, original 64, β 32 and 1: correction dims floor(−0.497) → 0 and ceil(1.008) = 2,
    // so the ramp over the 4 frequencies is 0, ½, 1, 1: kept, half-blended, interpolated, interpolated.
    const yarn = ropeFrequencies(8, 10000, { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 });
    assertClose(yarn.invFreq, [1, 0.5 * 0.1 + 0.5 * 0.1 / 4, 0.01 / 4, 0.001 / 4], 1e-12);
    assert.ok(Math.abs(yarn.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-12);
  });

  it('yarn scales cos and sin by its attention factor', () => {
    const x = randn([1, 2, 8], rng, 1, false);
    const scaling: RopeScaling = { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 };
    const y = rope(x, 1, Int32Array.of(0, 5), { layout: 'half', scaling });
    // At position 0 the rotation is the identity: only the factor remains.
    assertClose(y.data.subarray(0, 8), Array.from(x.data.subarray(0, 8), (v) => v * (0.1 * Math.log(4) + 1)), 1e-6);
  });

  it('an unknown rope_scaling type is a UserError naming it', () => {
    const bad = { rope_type: 'longrope', factor: 2 } as unknown as RopeScaling;
    assert.throws(() => ropeFrequencies(8, 10000, bad), (e: unknown) => e instanceof UserError && /longrope/.test(e.message) && /llama3/.test(e.message));
  });
});
