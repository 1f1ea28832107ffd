import type { GemmArgs } from '../../backend.js';
import { f32, type GpuContext, type KernelSource, u32 } from '../device.js';
import { addendAt, EPILOGUE_FIELDS, EPILOGUE_FN, epilogueBindings, epilogueParams, type GpuEpilogue } from './gemm_epilogue.js';
import { gemmSkinny, useSkinny } from './gemm_skinny.js';
import { type KSplit, splitFor, splitTarget } from './gemm_split_k.js';
import { aligned, variants } from './variants.js';

/**
 * C = act(alpha·op(A)·op(B) (+ C when accumulating) (+ bias)) (+ addend), the
 * whole GemmArgs contract of backend.ts, on the GPU.
 *
 * The known-good shape of an FP32 GEMM on a big GPU, written out as WGSL:
 *
 * - A workgroup owns a BM×BN block of C and walks K in tiles of BK, copying a
 *   BM×BK block of op(A) and a BK×BN block of op(B) into workgroup memory,
 *   both stored k-major ([k][m], [k][n]) as vec4s whatever the transposes.
 * - Each invocation multiplies out a TM×TN register tile. Per k it reads TM/4
 *   vec4s of A and TN/4 vec4s of B from workgroup memory and does TM·TN fused
 *   multiply-adds. The accumulators are separate named variables and every
 *   loop is unrolled here, in TypeScript: an array indexed by a loop variable
 *   gets bounds clamps from the robustness pass and may land in slow local
 *   memory instead of registers.
 * - An invocation's vec4s are strided by the workgroup's width (vec4 lx +
 *   j·WX), so a warp's 16-byte reads of workgroup memory hit distinct banks.
 * - Double buffering: while the tile in workgroup memory is multiplied out,
 *   the next one is already loaded from global memory into registers, then
 *   stored into the other half of workgroup memory — one barrier per K tile.
 * - Global loads are 16 bytes wide when the operand's contiguous dimension,
 *   offsets and strides are multiples of 4 (bound as array<vec4<f32>>), and
 *   unchecked for tiles wholly inside the matrices; bounds checks run only in
 *   edge workgroups and the last K tile (a uniform branch: no divergence).
 * - NN, NT, TN and TT are compiled variants (only the copy-in differs), so
 *   nothing is transposed in memory. Workgroup z is the batch index; alpha,
 *   accumulation and the epilogue (gemm_epilogue.ts: bias, activation,
 *   addend) are applied when C is stored.
 *
 * Several tile shapes are in CONFIGS; `chooseGemmConfig` picks one per shape
 * (big tiles when there are enough of them to fill the GPU), and
 * ATTN_WEBGPU_GEMM (or setGemmChoice) overrides the choice with the best of
 * `attn bench --backend webgpu --workloads gemm-sweep` on a given GPU. A product of a few rows
 * by a matrix stored [N, K] (decoding) goes to gemm_skinny.ts instead; one
 * whose output has too few blocks for its long K is split along K
 * (gemm_split_k.ts), workgroup z then counting batch entries × K chunks.
 */

/** op(A)·op(B) with A, B, C (and the bias and addend) in GPU buffers; offsets and strides in elements, as GemmArgs. */
export interface GpuGemmArgs extends Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias' | 'epilogue'>, GpuEpilogue {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
}

/** One tile shape: WX×WY invocations, each computing TM×TN of C (multiples of 4); BK deep K tiles. */
export interface GemmConfig {
  name: string;
  WX: number;
  WY: number;
  TM: number;
  TN: number;
  BK: number;
}

const cfg = (WX: number, WY: number, TM: number, TN: number, BK: number): GemmConfig => ({ name: `${WY * TM}x${WX * TN}_t${TM}x${TN}_k${BK}`, WX, WY, TM, TN, BK });

/** The tile shapes the backend and the sweep know: name → config (BM×BN block, TM×TN per invocation, K tile). */
export const CONFIGS: readonly GemmConfig[] = [
  cfg(16, 16, 8, 8, 8), // 128×128, 256 invocations: the classic big-GPU shape
  cfg(16, 16, 8, 8, 16),
  cfg(16, 8, 8, 8, 8), // 64×128, 128 invocations
  cfg(16, 16, 8, 4, 16), // 128×64
  cfg(16, 16, 4, 4, 16), // 64×64, 256 invocations
  cfg(8, 8, 8, 8, 8), // 64×64, 64 invocations (more registers each)
  cfg(8, 8, 4, 4, 16), // 32×32: small products
];

const byName = new Map(CONFIGS.map((c) => [c.name, c]));

export function gemmConfig(name: string): GemmConfig {
  const c = byName.get(name);
  if (!c) throw new Error(`unknown webgpu GEMM config '${name}' (known: ${CONFIGS.map((x) => x.name).join(', ')})`);
  return c;
}

/** Bytes of workgroup memory a config needs (two buffers of each operand's block). */
export const sharedBytes = (c: GemmConfig) => 2 * c.BK * (c.WY * c.TM + c.WX * c.TN) * 4;

/** Whether a device can run a config (workgroup memory and invocations per workgroup). */
export function fits(ctx: GpuContext, c: GemmConfig): boolean {
  const l = ctx.limits;
  return sharedBytes(c) <= l.maxComputeWorkgroupStorageSize && c.WX * c.WY <= l.maxComputeInvocationsPerWorkgroup && c.WX <= l.maxComputeWorkgroupSizeX && c.WY <= l.maxComputeWorkgroupSizeY;
}

/**
 * Which config serves which products: `large` when the product has at least
 * `minLargeTiles` blocks of the large config (enough to keep every core of a
 * big GPU busy), else `medium` when it has `minMediumTiles` blocks of that,
 * else `small`.
 */
export interface GemmChoice {
  large: string;
  medium: string;
  small: string;
  minLargeTiles: number;
  minMediumTiles: number;
}

const DEFAULT_CHOICE: GemmChoice = { large: CONFIGS[0]!.name, medium: CONFIGS[4]!.name, small: CONFIGS[6]!.name, minLargeTiles: 128, minMediumTiles: 64 };

/**
 * ATTN_WEBGPU_GEMM: one config name for every product, or
 * "LARGE,MEDIUM,SMALL[,minLargeTiles,minMediumTiles]" (what the sweep prints).
 */
export function parseGemmChoice(spec: string): GemmChoice {
  const parts = spec.split(',').map((s) => s.trim()).filter((s) => s);
  if (parts.length === 1) return { ...DEFAULT_CHOICE, large: parts[0]!, medium: parts[0]!, small: parts[0]! };
  if (parts.length !== 3 && parts.length !== 5) throw new Error(`ATTN_WEBGPU_GEMM: expected NAME or LARGE,MEDIUM,SMALL[,minLargeTiles,minMediumTiles], got '${spec}'`);
  const [large, medium, small, a, b] = parts;
  const choice = { large: large!, medium: medium!, small: small!, minLargeTiles: a ? Number(a) : DEFAULT_CHOICE.minLargeTiles, minMediumTiles: b ? Number(b) : DEFAULT_CHOICE.minMediumTiles };
  if (!Number.isInteger(choice.minLargeTiles) || !Number.isInteger(choice.minMediumTiles)) throw new Error(`ATTN_WEBGPU_GEMM: tile counts must be integers in '${spec}'`);
  return choice;
}

function initialChoice(): GemmChoice {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.ATTN_WEBGPU_GEMM;
  const c = env ? parseGemmChoice(env) : DEFAULT_CHOICE;
  for (const n of [c.large, c.medium, c.small]) gemmConfig(n); // an unknown name fails here, once, with the known ones listed
  return c;
}

let choice: GemmChoice | null = null;

/** Set the per-shape choice (null: back to ATTN_WEBGPU_GEMM or the default). */
export function setGemmChoice(c: GemmChoice | null): void {
  if (c) for (const n of [c.large, c.medium, c.small]) gemmConfig(n);
  choice = c;
}

const blocks = (c: GemmConfig, M: number, N: number, batch: number) => Math.ceil(M / (c.WY * c.TM)) * Math.ceil(N / (c.WX * c.TN)) * batch;

/** The config the backend uses for an M×N product (×batch), one the device can run. */
export function chooseGemmConfig(ctx: GpuContext, M: number, N: number, batch: number): GemmConfig {
  choice ??= initialChoice();
  const large = gemmConfig(choice.large);
  const medium = gemmConfig(choice.medium);
  let c = gemmConfig(choice.small);
  if (blocks(large, M, N, batch) >= choice.minLargeTiles) c = large;
  else if (blocks(medium, M, N, batch) >= choice.minMediumTiles) c = medium;
  if (fits(ctx, c)) return c;
  return CONFIGS.find((x) => fits(ctx, x)) ?? CONFIGS[CONFIGS.length - 1]!;
}

interface Variant {
  c: GemmConfig;
  transA: boolean;
  transB: boolean;
  /** Bind the operand as vec4<f32>: its contiguous dimension, offsets and strides are multiples of 4. */
  vecA: boolean;
  vecB: boolean;
}

/** How one operand's block is fetched: its registers, and the WGSL that loads them and stores them to workgroup memory. */
interface Operand {
  /** 'A' or 'B' (the binding and the name prefix). */
  src: string;
  /** Workgroup array. */
  dst: string;
  /** Rows of the block along m (A) or n (B). */
  R: number;
  BK: number;
  /** Stored rows run along k (A not transposed, B transposed). */
  alongK: boolean;
  vec: boolean;
  threads: number;
  /** WGSL: the operand's extent along R (p.M or p.N), its first row/column in this block, its leading dimension, its batch base. */
  extent: string;
  origin: string;
  ld: string;
  base: string;
}

/** Element e (of this invocation's l-th load) → its r (along R) and k (along K) in the block, as WGSL. */
function coords(o: Operand, e: string): [string, string] {
  const w = o.vec ? 4 : 1;
  return o.alongK ? [`(${e} / ${o.BK / w}u)`, `((${e} % ${o.BK / w}u) * ${w}u)`] : [`((${e} % ${o.R / w}u) * ${w}u)`, `(${e} / ${o.R / w}u)`];
}

const loadsPer = (o: Operand) => Math.ceil((o.R * o.BK) / (o.vec ? 4 : 1) / o.threads);

/** WGSL declaring the operand's prefetch registers. */
function declareRegs(o: Operand): string {
  const t = o.vec ? 'vec4<f32>' : 'f32';
  return Array.from({ length: loadsPer(o) }, (_, l) => `var ${o.src}r${l}: ${t};`).join(' ');
}

/** WGSL loading the operand's block for K tile `k0` into its registers; `checked` zero-fills outside the matrix. */
function fetch(o: Operand, checked: boolean): string {
  const w = o.vec ? 4 : 1;
  const count = (o.R * o.BK) / w;
  const lines: string[] = [];
  for (let l = 0; l < loadsPer(o); l++) {
    const e = `(tid + ${l * o.threads}u)`;
    const [r, k] = coords(o, e);
    const gr = `(${o.origin} + ${r})`;
    const gk = `(k0 + ${k})`;
    const index = o.alongK ? `${o.base} + ${gr} * ${o.ld} + ${gk} / ${w}u` : `${o.base} + ${gk} * ${o.ld} + ${gr} / ${w}u`;
    const conds = [...(count % o.threads ? [`${e} < ${count}u`] : []), ...(checked ? [`${gr} < ${o.extent}`, `${gk} < kEnd`] : [])];
    const zero = o.vec ? 'vec4<f32>(0.0)' : '0.0';
    lines.push(conds.length ? `${o.src}r${l} = ${zero}; if (${conds.join(' && ')}) { ${o.src}r${l} = ${o.src}[${index}]; }` : `${o.src}r${l} = ${o.src}[${index}];`);
  }
  return lines.join('\n      ');
}

/** WGSL storing the registers into workgroup buffer `half` (0 or 1) as [k][r/4] vec4s. */
function stash(o: Operand, half: string): string {
  const w = o.vec ? 4 : 1;
  const count = (o.R * o.BK) / w;
  const rq = o.R / 4;
  const lines: string[] = [];
  for (let l = 0; l < loadsPer(o); l++) {
    const e = `(tid + ${l * o.threads}u)`;
    const [r, k] = coords(o, e);
    const at = (kk: string, rr: string) => `${o.dst}[${half} + (${kk}) * ${rq}u + (${rr}) / 4u]`;
    let s: string;
    if (o.vec && !o.alongK) s = `${at(k, r)} = ${o.src}r${l};`; // four consecutive r: one vec4
    else if (o.vec) s = [0, 1, 2, 3].map((c) => `${at(`${k} + ${c}u`, r)}[${r} % 4u] = ${o.src}r${l}[${c}];`).join(' ');
    else s = `${at(k, r)}[${r} % 4u] = ${o.src}r${l};`;
    lines.push(count % o.threads ? `if (${e} < ${count}u) { ${s} }` : s);
  }
  return lines.join('\n      ');
}

function gemmSource(v: Variant): KernelSource {
  const { WX, WY, TM, TN, BK } = v.c;
  const BM = WY * TM;
  const BN = WX * TN;
  const threads = WX * WY;
  const A: Operand = { src: 'A', dst: 'As', R: BM, BK, alongK: !v.transA, vec: v.vecA, threads, extent: 'p.M', origin: 'row0', ld: 'p.lda', base: 'aBase' };
  const B: Operand = { src: 'B', dst: 'Bs', R: BN, BK, alongK: v.transB, vec: v.vecB, threads, extent: 'p.N', origin: 'col0', ld: 'p.ldb', base: 'bBase' };
  const aSize = (BK * BM) / 4;
  const bSize = (BK * BN) / 4;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  // Accumulator c{row}_{j}: rows 4·(ly + i·WY) + r of the block (row index i·4 + r), columns 4·(lx + j·WX)..+3.
  const accs = range(TM).flatMap((row) => range(TN / 4).map((j) => `c${row}_${j}`));
  const multiply = [
    ...range(TM / 4).map((i) => `let a${i} = As[aHalf + kk * ${BM / 4}u + ly + ${i * WY}u];`),
    ...range(TN / 4).map((j) => `let b${j} = Bs[bHalf + kk * ${BN / 4}u + lx + ${j * WX}u];`),
    ...range(TM).flatMap((row) => range(TN / 4).map((j) => `c${row}_${j} = fma(vec4<f32>(a${row >> 2}[${row & 3}]), b${j}, c${row}_${j});`)),
  ].join('\n      ');
  const stores = range(TM).flatMap((row) =>
    range(TN / 4).map((j) => `store4(row0 + 4u * (ly + ${(row >> 2) * WY}u) + ${row & 3}u, col0 + 4u * (lx + ${j * WX}u), c${row}_${j}, cBase, bz);`),
  );
  const code = /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aOff: u32, bOff: u32, cOff: u32, strideA: u32, strideB: u32, strideC: u32,
  accumulate: u32, alpha: f32, splits: u32, kChunk: u32, splitStride: u32,
  ${EPILOGUE_FIELDS},
}
@group(0) @binding(0) var<storage, read> A: array<${v.vecA ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${v.vecB ? 'vec4<f32>' : 'f32'}>;
${epilogueBindings(2)}
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// Two halves each: the tile being multiplied and the next one.
var<workgroup> As: array<vec4<f32>, ${2 * aSize}>;
var<workgroup> Bs: array<vec4<f32>, ${2 * bSize}>;

${EPILOGUE_FN}

fn store1(r: u32, c: u32, sum: f32, cBase: u32, z: u32) {
  if (c >= p.N) { return; }
  let i = cBase + r * p.ldc + c;
  var x = p.alpha * sum;
  if (p.accumulate != 0u) { x = C[i] + x; }
  C[i] = epilogue(x, c, ${addendAt('z', 'r', 'c')});
}

fn store4(r: u32, c: u32, v: vec4<f32>, cBase: u32, z: u32) {
  if (r >= p.M) { return; }
  store1(r, c, v.x, cBase, z);
  store1(r, c + 1u, v.y, cBase, z);
  store1(r, c + 2u, v.z, cBase, z);
  store1(r, c + 3u, v.w, cBase, z);
}

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * ${BM}u;
  let col0 = wg.x * ${BN}u;
  let lx = lid.x;
  let ly = lid.y;
  // Workgroup z is (batch entry, K chunk): split-K (gemm_split_k.ts) walks only K from kBegin to kEnd and stores the partial sum into its own slice of C.
  let split = wg.z % p.splits;
  let bz = wg.z / p.splits;
  let kBegin = split * p.kChunk;
  let kEnd = min(p.K, kBegin + p.kChunk);
  // A and B offsets are in units of their binding's element (vec4 when vectorised).
  let aBase = p.aOff + bz * p.strideA;
  let bBase = p.bOff + bz * p.strideB;
  let cBase = p.cOff + bz * p.strideC + split * p.splitStride;
  // Uniform across the workgroup: whether its whole block lies inside C (then loads need no row/column checks).
  let inside = row0 + ${BM}u <= p.M && col0 + ${BN}u <= p.N;
  ${accs.map((a) => `var ${a} = vec4<f32>(0.0);`).join(' ')}
  ${declareRegs(A)} ${declareRegs(B)}
  let tiles = (kEnd - kBegin + ${BK - 1}u) / ${BK}u;
  var k0 = kBegin;
  if (inside && kBegin + ${BK}u <= kEnd) {
      ${fetch(A, false)}
      ${fetch(B, false)}
  } else {
      ${fetch(A, true)}
      ${fetch(B, true)}
  }
  ${stash(A, '0u')}
  ${stash(B, '0u')}
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let aHalf = (t % 2u) * ${aSize}u;
    let bHalf = (t % 2u) * ${bSize}u;
    let more = t + 1u < tiles;
    k0 = kBegin + (t + 1u) * ${BK}u;
    // The next tile goes to registers now; its global loads overlap the multiplications below.
    if (more) {
      if (inside && k0 + ${BK}u <= kEnd) {
      ${fetch(A, false)}
      ${fetch(B, false)}
      } else {
      ${fetch(A, true)}
      ${fetch(B, true)}
      }
    }
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${multiply}
    }
    if (more) {
      let aNext = ${aSize}u - aHalf;
      let bNext = ${bSize}u - bHalf;
      ${stash(A, 'aNext')}
      ${stash(B, 'bNext')}
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}
`;
  const name = `gemm_${v.c.name}_${v.transA ? 'T' : 'N'}${v.transB ? 'T' : 'N'}${v.vecA ? '_va' : ''}${v.vecB ? '_vb' : ''}`;
  return { name, code, bindings: ['read', 'read', 'read', 'read', 'rw'] };
}

const source = variants((v: Variant) => `${v.c.name}${v.transA}${v.transB}${v.vecA}${v.vecB}`, gemmSource);

/**
 * Record C = act(alpha·op(A)·op(B) (+ C) (+ bias)) (+ addend): few rows times a [N, K] matrix
 * in gemm_skinny.ts, else the tiled kernel with the config chosen for its
 * shape, its K split into chunks (gemm_split_k.ts) when the output has too
 * few blocks to fill the GPU and K is long.
 */
export function gemm(ctx: GpuContext, g: GpuGemmArgs): void {
  if (useSkinny(g)) return gemmSkinny(ctx, g);
  const { config, split } = planGemm(ctx, g.M, g.N, g.K, g.batch);
  gemmWith(ctx, config, g, split);
}

/** How the tiled kernel runs an M×N×K product (×batch): its config, and its K split when the output has too few blocks (and the partials fit a binding). */
export function planGemm(ctx: GpuContext, M: number, N: number, K: number, batch: number): { config: GemmConfig; split: KSplit } {
  const config = chooseGemmConfig(ctx, M, N, batch);
  const split = splitFor(blocks(config, M, N, batch), K, config.BK, 2 * M * N * K * batch);
  if (split.splits > 1 && split.splits * M * N * batch * 4 > ctx.limits.maxStorageBufferBindingSize) return { config, split: { splits: 1, chunk: K } };
  return { config, split };
}

/** Record the product with a given config (the sweep tries each), its K in `split.splits` chunks when given. */
export function gemmWith(ctx: GpuContext, c: GemmConfig, g: GpuGemmArgs, split: KSplit = { splits: 1, chunk: g.K }): void {
  const { M, N, K, batch } = g;
  if (M === 0 || N === 0 || batch === 0) return;
  // Along which dimension each operand is contiguous decides whether 16-byte loads line up.
  const vecA = g.a.size % 16 === 0 && aligned(g.aOffset, g.lda, g.strideA, g.transA ? M : K);
  const vecB = g.b.size % 16 === 0 && aligned(g.bOffset, g.ldb, g.strideB, g.transB ? K : N);
  const wa = vecA ? 4 : 1;
  const wb = vecB ? 4 : 1;
  const { splits, chunk } = split;
  // Split: the chunks' partial products, unscaled, into a scratch [splits, batch, M, N]; their sum writes C and does the epilogue.
  const parts = splits > 1 ? splitTarget(ctx, g, splits) : null;
  const none: GpuEpilogue = {};
  const out = parts
    ? { c: parts.scratch, cOffset: 0, ldc: N, strideC: M * N, splitStride: batch * M * N, epilogue: none, accumulate: false, alpha: 1 }
    : { c: g.c, cOffset: g.cOffset, ldc: g.ldc, strideC: g.strideC, splitStride: 0, epilogue: g, accumulate: g.accumulate, alpha: g.alpha };
  ctx.dispatch(
    source({ c, transA: g.transA, transB: g.transB, vecA, vecB }),
    [g.a, g.b, out.epilogue.bias, out.epilogue.addend?.buffer, out.c],
    [
      u32(M), u32(N), u32(K), u32(g.lda / wa), u32(g.ldb / wb), u32(out.ldc),
      u32(g.aOffset / wa), u32(g.bOffset / wb), u32(out.cOffset), u32(g.strideA / wa), u32(g.strideB / wb), u32(out.strideC),
      u32(out.accumulate ? 1 : 0), f32(out.alpha), u32(splits), u32(chunk), u32(out.splitStride),
      ...epilogueParams(out.epilogue),
    ],
    [Math.ceil(N / (c.WX * c.TN)), Math.ceil(M / (c.WY * c.TM)), batch * splits],
  );
  parts?.finish();
}
