import { envCount, f32, type GpuContext, type KernelSource, u32 } from '../device.js';
import { addendAt, EPILOGUE_FIELDS, EPILOGUE_FN, epilogueBindings, epilogueParams, type GpuEpilogue } from './gemm_epilogue.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Split-K for products with a small output and a long K: the weight
 * gradients of training (dW = dYᵀ·X is [out, in] summed over every token of
 * the batch: config M's 384×384 projection gradient walks K = 4 096). Tiled
 * by output blocks alone such a product makes a few dozen workgroups, each
 * walking all of K, while a big GPU has over a hundred cores that each want
 * several. Split-K cuts K into `splits` chunks: the tiled kernel (gemm.ts)
 * runs every (block, chunk) pair as its own workgroup and stores each chunk's
 * partial product, unscaled, in a scratch buffer [splits, batch, M, N]; then
 * a second kernel (SUM_SPLITS) adds the partials in chunk order (the same
 * result run after run) and applies alpha, accumulation and the epilogue
 * (gemm_epilogue.ts) as the tiled kernel's own store does. cuBLAS does the same for these shapes.
 *
 * Only products of at least MIN_SPLIT_FLOP are split: a small one is over in
 * microseconds however it is tiled, and the second kernel's launch (and its
 * recording, on the host) would cost more than the split saves.
 *
 * ATTN_WEBGPU_SPLITK sets the number of workgroups a product should reach
 * (512 by default; 0 turns split-K off, for an A/B on a GPU).
 */

/** K per chunk at least (a chunk shorter than this costs more in partial sums than its parallelism gains). */
export const MIN_CHUNK = 256;
/** Chunks at most. */
export const MAX_SPLITS = 16;
/** Floating-point operations (2·M·N·K·batch) a product needs before it is split: config M's 384×384 weight gradient has 1.2 G, config S's 128×384 one 75 M. */
export const MIN_SPLIT_FLOP = 2 ** 28;

const targetFromEnv = () => envCount('ATTN_WEBGPU_SPLITK', 512, 'workgroups');

/** When a product is split: the workgroups it should reach (0: never split), and the size it needs first. */
export interface SplitKSettings {
  target: number;
  minFlop: number;
}

let settings: SplitKSettings | null = null;

/** Change when products are split (tests split small ones). Returns the previous settings. */
export function setSplitK(change: Partial<SplitKSettings>): SplitKSettings {
  const was = (settings ??= { target: targetFromEnv(), minFlop: MIN_SPLIT_FLOP });
  settings = { ...was, ...change };
  return was;
}

/** How a product's K is cut: `splits` chunks of `chunk` (a multiple of the K tile `BK`); 1 chunk = no split. */
export interface KSplit {
  splits: number;
  chunk: number;
}

/** The split for a product of `flop` operations in `blocks` output blocks (batch included) over K, with K tiles of BK. */
export function splitFor(blocks: number, K: number, BK: number, flop: number): KSplit {
  const { target, minFlop } = (settings ??= { target: targetFromEnv(), minFlop: MIN_SPLIT_FLOP });
  if (target === 0 || flop < minFlop) return { splits: 1, chunk: K };
  return chunksToReach(blocks, target, K, MIN_CHUNK, MAX_SPLITS, BK) ?? { splits: 1, chunk: K };
}

/**
 * A walk of `length` cut into chunks (whole tiles of `tile`, each at least
 * `minChunk` long, at most `maxSplits` of them) so that `have` parallel units
 * become about `target`; null where that is fewer than 2 chunks. Split-K cuts
 * K this way, attention.ts the keys or queries a pass walks.
 */
export function chunksToReach(have: number, target: number, length: number, minChunk: number, maxSplits: number, tile: number): KSplit | null {
  const want = Math.min(Math.ceil(target / have), Math.floor(length / minChunk), maxSplits);
  if (want < 2) return null;
  const chunk = Math.ceil(length / want / tile) * tile;
  return { splits: Math.ceil(length / chunk), chunk };
}

const SUM_SPLITS: KernelSource = {
  name: 'gemmSplitSum',
  bindings: ['read', 'read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { M: u32, N: u32, batch: u32, splits: u32, ldc: u32, cOff: u32, strideC: u32, accumulate: u32, alpha: f32, ${EPILOGUE_FIELDS} }
@group(0) @binding(0) var<storage, read> part: array<f32>;
${epilogueBindings(1)}
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
${EPILOGUE_FN}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  let mn = p.M * p.N;
  let total = mn * p.batch;
  if (i >= total) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.splits; k++) { s = s + part[k * total + i]; }
  let b = i / mn;
  let r = (i % mn) / p.N;
  let c = i % p.N;
  let at = p.cOff + b * p.strideC + r * p.ldc + c;
  var x = p.alpha * s;
  if (p.accumulate != 0u) { x = C[at] + x; }
  C[at] = epilogue(x, c, ${addendAt('b', 'r', 'c')});
}
`,
};

/** Where the partial products go, and how they become C: the scratch buffer and the recording of their sum. */
export interface SplitTarget {
  /** The scratch [splits, batch, M, N] the tiled kernel stores into. */
  scratch: GPUBuffer;
  /** Record C = act(alpha·Σ partials (+ C) (+ bias)) (+ addend), then give the scratch back. */
  finish: () => void;
}

/** A scratch for `splits` partial products of a [batch, M, N] output, and the sum that writes C. */
export function splitTarget(
  ctx: GpuContext,
  g: GpuEpilogue & { M: number; N: number; batch: number; c: GPUBuffer; cOffset: number; ldc: number; strideC: number; alpha: number; accumulate: boolean },
  splits: number,
): SplitTarget {
  const total = g.M * g.N * g.batch;
  const scratch = ctx.buffer(splits * total * 4);
  return {
    scratch,
    finish: () => {
      ctx.dispatch(
        SUM_SPLITS,
        [scratch, g.bias, g.addend?.buffer, g.c],
        [u32(g.M), u32(g.N), u32(g.batch), u32(splits), u32(g.ldc), u32(g.cOffset), u32(g.strideC), u32(g.accumulate ? 1 : 0), f32(g.alpha), ...epilogueParams(g)],
        grid(ctx, total),
      );
      ctx.release(scratch);
    },
  };
}
