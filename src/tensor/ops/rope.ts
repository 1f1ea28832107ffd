import { backend } from '../../backend/index.js';
import { UserError } from '../../util/errors.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/**
 * How the channels of a head are paired for rotation.
 * - "interleaved": pairs (2i, 2i+1), as in the RoPE paper (attn's `--positions rope` GPTs).
 * - "half": pairs (i, i + D/2), Hugging Face's `rotate_half` with the angles
 *   duplicated as cat(f, f) — the layout every Llama-family checkpoint is trained in.
 * Both rotate pair i by the same angle p·θᵢ; only which channels form the pair differs.
 */
export type RopeLayout = 'interleaved' | 'half';

/**
 * Hugging Face's `rope_scaling` (config.json), which stretches the
 * frequencies so a model reaches past the context it was trained on.
 * `rope_type` (older configs: `type`) picks the recipe.
 */
export interface RopeScaling {
  rope_type: 'linear' | 'dynamic' | 'llama3' | 'yarn';
  factor: number;
  /** llama3, yarn: the context length of pre-training. */
  original_max_position_embeddings?: number;
  /** dynamic, yarn (fallback for the above): the config's max_position_embeddings. */
  max_position_embeddings?: number;
  /** llama3: wavelengths longer than original/low_freq_factor are interpolated, shorter than original/high_freq_factor kept. */
  low_freq_factor?: number;
  high_freq_factor?: number;
  /** yarn: the rotation counts bounding the ramp between kept and interpolated frequencies. */
  beta_fast?: number;
  beta_slow?: number;
  mscale?: number;
  mscale_all_dim?: number;
  attention_factor?: number;
  truncate?: boolean;
}

export const ROPE_SCALING_TYPES = ['linear', 'dynamic', 'llama3', 'yarn'] as const;

export interface RopeOptions {
  /** θ of θᵢ = θ^(−2i/D): Hugging Face's `rope_theta` (default 10000). */
  base?: number;
  layout?: RopeLayout;
  scaling?: RopeScaling | null;
}

/**
 * Rotary position embedding (RoPE, Su et al. 2021): inside each head, channel
 * pair i of the vector at position p is rotated by the angle p·θᵢ with
 * θᵢ = base^(−2i/headDim). A query at p and a key at p' then meet at an angle
 * that depends only on p − p', so attention sees relative positions without
 * any learned table.
 *
 * x is [B, T, nHead·headDim]; positions gives each of the T slots its
 * position (default 0 … T−1), or each of the B·T rows its own (left-padded
 * batches, continuous batching). A rotation's inverse is the rotation by −angle,
 * which is the whole backward pass. The last argument is the base θ (the
 * interleaved layout) or RopeOptions.
 */
export function rope(x: Tensor, nHead: number, positions?: ArrayLike<number>, options: number | RopeOptions = 10000): Tensor {
  const opts: RopeOptions = typeof options === 'number' ? { base: options } : options;
  if (x.rank !== 3) throw new Error(`rope expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  const D = C / nHead;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`rope needs an even head size; ${C} channels over ${nHead} heads gives ${C / nHead}`);
  const pos = positions ?? Int32Array.from({ length: T }, (_, i) => i);
  if (pos.length !== T && pos.length !== B * T) throw new Error(`rope: ${pos.length} positions for ${B}×${T} slots`);
  const { cos, sin } = ropeAngles(pos, D, opts.base ?? 10000, opts.scaling ?? null);
  const dims = { B, T, nHead, headDim: D, layout: opts.layout ?? 'interleaved' } as const;
  const out = Tensor.empty(x.shape);
  backend().rope(x.storage, out.storage, cos, sin, dims, 1, false);
  return record(out, [x], 'rope', () => {
    if (!x.requiresGrad) return;
    const { grad, accumulate } = x.gradSink();
    backend().rope(out.gradStorage!, grad, cos, sin, dims, -1, accumulate);
  });
}

/**
 * The frequencies θᵢ (i < D/2) after rope_scaling, and the factor cos and sin
 * are multiplied by (yarn's attention temperature; 1 otherwise). Follows
 * Hugging Face's `ROPE_INIT_FUNCTIONS` (modeling_rope_utils.py). `seqLen`
 * (the longest position + 1) matters only to "dynamic" scaling.
 */
export function ropeFrequencies(D: number, base: number, scaling: RopeScaling | null, seqLen = 0): { invFreq: Float64Array; attentionFactor: number } {
  const half = D / 2;
  const plain = (b: number) => Float64Array.from({ length: half }, (_, i) => Math.pow(b, (-2 * i) / D));
  if (!scaling) return { invFreq: plain(base), attentionFactor: 1 };
  const { factor } = scaling;
  if (!(factor > 0)) throw new UserError(`rope_scaling: factor must be positive (got ${factor})`);
  switch (scaling.rope_type) {
    case 'linear':
      // Position interpolation: positions divided by factor, i.e. every frequency.
      return { invFreq: plain(base).map((f) => f / factor), attentionFactor: 1 };
    case 'dynamic': {
      // NTK-aware: past the trained context, raise the base so the lowest frequency stretches to fit.
      const maxPos = scaling.max_position_embeddings ?? scaling.original_max_position_embeddings;
      if (!maxPos) throw new UserError('rope_scaling "dynamic" needs max_position_embeddings');
      if (seqLen <= maxPos) return { invFreq: plain(base), attentionFactor: 1 };
      const b = base * Math.pow((factor * seqLen) / maxPos - (factor - 1), D / (D - 2));
      return { invFreq: plain(b), attentionFactor: 1 };
    }
    case 'llama3': {
      // Llama 3.1+: long wavelengths interpolated by factor, short ones kept, a smooth blend between.
      const old = scaling.original_max_position_embeddings ?? 8192;
      const low = scaling.low_freq_factor ?? 1;
      const high = scaling.high_freq_factor ?? 4;
      const lowWavelen = old / low;
      const highWavelen = old / high;
      const invFreq = plain(base).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f / factor;
        const smooth = (old / wavelen - low) / (high - low);
        return (1 - smooth) * (f / factor) + smooth * f;
      });
      return { invFreq, attentionFactor: 1 };
    }
    case 'yarn': {
      // YaRN (Peng et al. 2023), Qwen's long-context recipe: interpolate the low
      // frequencies, keep the high ones, ramp between, and scale the attention temperature.
      const old = scaling.original_max_position_embeddings ?? scaling.max_position_embeddings;
      if (!old) throw new UserError('rope_scaling "yarn" needs original_max_position_embeddings');
      const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
      const attentionFactor = scaling.attention_factor ??
        (scaling.mscale && scaling.mscale_all_dim ? mscale(factor, scaling.mscale) / mscale(factor, scaling.mscale_all_dim) : mscale(factor));
      const betaFast = scaling.beta_fast ?? 32;
      const betaSlow = scaling.beta_slow ?? 1;
      const correctionDim = (rotations: number) => (D * Math.log(old / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
      let lo = correctionDim(betaFast);
      let hi = correctionDim(betaSlow);
      if (scaling.truncate !== false) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
      lo = Math.max(lo, 0);
      hi = Math.min(hi, D - 1);
      if (lo === hi) hi += 0.001;
      const invFreq = plain(base).map((f, i) => {
        const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
        const keep = 1 - ramp; // 1: extrapolate (keep f), 0: interpolate (f / factor)
        return (f / factor) * (1 - keep) + f * keep;
      });
      return { invFreq, attentionFactor };
    }
    default:
      throw new UserError(`rope_scaling type "${String((scaling as { rope_type: unknown }).rope_type)}" is not supported (attn knows ${ROPE_SCALING_TYPES.join(', ')})`);
  }
}

/**
 * The last angles computed, kept: a forward pass rotates queries and keys of
 * every layer at the same positions (60 calls a token for a 30-layer model),
 * and the trigonometry of a 256-token prompt is 16 000 cos/sin pairs a call.
 * The tables are never written after they are made, so sharing them is safe.
 */
let lastAngles: { pos: Float64Array; D: number; base: number; scaling: RopeScaling | null; cos: Float32Array; sin: Float32Array } | null = null;

function sameAngles(pos: ArrayLike<number>, D: number, base: number, scaling: RopeScaling | null): boolean {
  const l = lastAngles;
  if (!l || l.D !== D || l.base !== base || l.scaling !== scaling || l.pos.length !== pos.length) return false;
  for (let t = 0; t < pos.length; t++) if (l.pos[t] !== pos[t]) return false;
  return true;
}

/** cos and sin of p·θᵢ (times the attention factor) for every position given and pair: [positions, D/2] each. */
export function ropeAngles(pos: ArrayLike<number>, D: number, base: number, scaling: RopeScaling | null): { cos: Float32Array; sin: Float32Array } {
  if (sameAngles(pos, D, base, scaling)) return lastAngles!;
  const angles = computeAngles(pos, D, base, scaling);
  lastAngles = { pos: Float64Array.from(pos), D, base, scaling, ...angles };
  return angles;
}

function computeAngles(pos: ArrayLike<number>, D: number, base: number, scaling: RopeScaling | null): { cos: Float32Array; sin: Float32Array } {
  const half = D / 2;
  let maxPos = 0;
  for (let t = 0; t < pos.length; t++) maxPos = Math.max(maxPos, pos[t]!);
  const { invFreq, attentionFactor } = ropeFrequencies(D, base, scaling, maxPos + 1);
  const cos = new Float32Array(pos.length * half);
  const sin = new Float32Array(pos.length * half);
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos[t]! * invFreq[i]!;
      cos[t * half + i] = Math.cos(angle) * attentionFactor;
      sin[t * half + i] = Math.sin(angle) * attentionFactor;
    }
  }
  return { cos, sin };
}
