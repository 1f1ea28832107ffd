import type { GemmArgs } from '../../backend.js';
import { f32, type GpuContext, type KernelSource, u32 } from '../device.js';

/**
 * C = alpha·op(A)·op(B) (+ C when accumulating) (+ bias), the whole GemmArgs
 * contract of backend.ts, on the GPU.
 *
 * The classic tiled scheme: a workgroup owns a BM×BN block of C. It walks K
 * in steps of BK, each time copying a BM×BK block of op(A) and a BK×BN block of
 * op(B) into workgroup memory (every element read from global memory once per
 * block instead of once per multiply), then each of its 16×16 invocations
 * multiplies out a TM×TN sub-block held in registers — TM + TN loads from
 * workgroup memory feed TM·TN fused multiply-adds ("register blocking").
 *
 * An invocation's rows and columns are strided (row ly + i·16, column
 * lx + j·16), so neighbouring invocations touch neighbouring addresses: reads
 * of workgroup memory are free of bank conflicts and the stores to C coalesce.
 *
 * The blocks are stored k-major ([k][m] and [k][n]) whatever the transposes,
 * so one inner loop serves NN, NT, TN and TT; only the copy-in differs, on a
 * uniform flag (every invocation takes the same branch: no divergence, and
 * one compiled kernel instead of four). When an
 * operand's contiguous dimension, offsets and row stride are multiples of 4 it
 * is bound as vec4<f32> and copied in with 16-byte loads.
 *
 * Sizes: 128×128 blocks (8×8 per invocation) when C is large enough to fill a
 * GPU with them, 64×64 (4×4) otherwise. Workgroup z is the batch index.
 */

/** op(A)·op(B) with A, B, C (and the bias) in GPU buffers; offsets and strides in elements, as GemmArgs. */
export interface GpuGemmArgs extends Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias'> {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  bias?: GPUBuffer | null;
  /** Element where the bias vector starts in its buffer (0 by default). */
  biasOffset?: number;
}

interface Tile {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/** The two block shapes; 16×16 = 256 invocations per workgroup for both. */
const LARGE: Tile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 };
const SMALL: Tile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
const WX = 16;
const WY = 16;

interface Variant {
  /** Bind the operand as vec4<f32>: its contiguous dimension, offsets and strides are multiples of 4. */
  vecA: boolean;
  vecB: boolean;
  tile: Tile;
}

/**
 * WGSL that copies one operand's block into workgroup memory `dst` ([k][r],
 * r < R), zero outside the matrix. `alongK`: the operand's stored rows run
 * along k (A not transposed, B transposed), else along r.
 */
function loadBlock(dst: string, src: string, R: number, BK: number, alongK: boolean, vec: boolean, extent: string, ld: string, base: string, origin: string): string {
  const threads = WX * WY;
  const w = vec ? 4 : 1;
  const count = (R * BK) / w;
  // e enumerates the block's vectors along its contiguous dimension
  const [rOf, kOf] = alongK ? [`e / ${BK / w}u`, `(e % ${BK / w}u) * ${w}u`] : [`(e % ${R / w}u) * ${w}u`, `e / ${R / w}u`];
  const gIndex = `${base} + ${alongK ? `gr * ${ld} + gk / ${w}u` : `gk * ${ld} + gr / ${w}u`}`;
  const put = vec
    ? [0, 1, 2, 3].map((c) => (alongK ? `${dst}[(k + ${c}u) * ${R}u + r] = v[${c}];` : `${dst}[k * ${R}u + r + ${c}u] = v[${c}];`)).join(' ')
    : `${dst}[k * ${R}u + r] = v;`;
  const zero = vec ? 'vec4<f32>(0.0)' : '0.0';
  return `
    for (var e = tid; e < ${count}u; e += ${threads}u) {
      let r = ${rOf};
      let k = ${kOf};
      let gr = ${origin} + r;
      let gk = k0 + k;
      var v = ${zero};
      if (gr < ${extent} && gk < p.K) { v = ${src}[${gIndex}]; }
      ${put}
    }`;
}

function gemmSource(v: Variant): KernelSource {
  const { BM, BN, BK, TM, TN } = v.tile;
  const code = /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aOff: u32, bOff: u32, cOff: u32, strideA: u32, strideB: u32, strideC: u32,
  biasOff: u32, hasBias: u32, accumulate: u32, alpha: f32, transA: u32, transB: u32,
}
@group(0) @binding(0) var<storage, read> A: array<${v.vecA ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${v.vecB ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> As: array<f32, ${BK * BM}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;

fn store(r: u32, c: u32, sum: f32, cBase: u32) {
  if (r >= p.M || c >= p.N) { return; }
  let i = cBase + r * p.ldc + c;
  var x = p.alpha * sum;
  if (p.accumulate != 0u) { x = C[i] + x; }
  if (p.hasBias != 0u) { x = x + bias[p.biasOff + c]; }
  C[i] = x;
}

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * ${BM}u;
  let col0 = wg.x * ${BN}u;
  let lx = lid.x;
  let ly = lid.y;
  // A and B offsets are in units of their binding's element (vec4 when vectorised).
  let aBase = p.aOff + wg.z * p.strideA;
  let bBase = p.bOff + wg.z * p.strideB;
  let cBase = p.cOff + wg.z * p.strideC;
  var acc: array<f32, ${TM * TN}>;
  var a: array<f32, ${TM}>;
  var b: array<f32, ${TN}>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    // The transposes are uniform branches: one compiled kernel serves NN, NT, TN and TT.
    if (p.transA == 0u) {${loadBlock('As', 'A', BM, BK, true, v.vecA, 'p.M', 'p.lda', 'aBase', 'row0')}
    } else {${loadBlock('As', 'A', BM, BK, false, v.vecA, 'p.M', 'p.lda', 'aBase', 'row0')}
    }
    if (p.transB != 0u) {${loadBlock('Bs', 'B', BN, BK, true, v.vecB, 'p.N', 'p.ldb', 'bBase', 'col0')}
    } else {${loadBlock('Bs', 'B', BN, BK, false, v.vecB, 'p.N', 'p.ldb', 'bBase', 'col0')}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      // Constant trip counts: GPU compilers unroll these and keep the arrays in registers.
      for (var i = 0u; i < ${TM}u; i++) { a[i] = As[kk * ${BM}u + ly + i * ${WY}u]; }
      for (var j = 0u; j < ${TN}u; j++) { b[j] = Bs[kk * ${BN}u + lx + j * ${WX}u]; }
      for (var i = 0u; i < ${TM}u; i++) {
        for (var j = 0u; j < ${TN}u; j++) { acc[i * ${TN}u + j] = fma(a[i], b[j], acc[i * ${TN}u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${TM}u; i++) {
    for (var j = 0u; j < ${TN}u; j++) { store(row0 + ly + i * ${WY}u, col0 + lx + j * ${WX}u, acc[i * ${TN}u + j], cBase); }
  }
}
`;
  const name = `gemm${v.vecA ? '_va' : ''}${v.vecB ? '_vb' : ''}_${BM}`;
  return { name, code, bindings: ['read', 'read', 'read', 'rw'] };
}

const sources = new Map<string, KernelSource>();

function source(v: Variant): KernelSource {
  const key = `${v.vecA}${v.vecB}${v.tile.BM}`;
  let s = sources.get(key);
  if (!s) {
    s = gemmSource(v);
    sources.set(key, s);
  }
  return s;
}

const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** Record C = alpha·op(A)·op(B) (+ C) (+ bias). */
export function gemm(ctx: GpuContext, g: GpuGemmArgs): void {
  const { M, N, K, batch } = g;
  if (M === 0 || N === 0 || batch === 0) return;
  // Along which dimension each operand is contiguous decides whether 16-byte loads line up.
  const vecA = g.a.size % 16 === 0 && aligned(g.aOffset, g.lda, g.strideA, g.transA ? M : K);
  const vecB = g.b.size % 16 === 0 && aligned(g.bOffset, g.ldb, g.strideB, g.transB ? K : N);
  // Large blocks only pay when there are enough of them to keep every core busy.
  const tile = M >= 512 && N >= 512 ? LARGE : SMALL;
  const w = (vec: boolean) => (vec ? 4 : 1);
  const wa = w(vecA);
  const wb = w(vecB);
  ctx.dispatch(
    source({ vecA, vecB, tile }),
    [g.a, g.b, g.bias, g.c],
    [
      u32(M), u32(N), u32(K), u32(g.lda / wa), u32(g.ldb / wb), u32(g.ldc),
      u32(g.aOffset / wa), u32(g.bOffset / wb), u32(g.cOffset), u32(g.strideA / wa), u32(g.strideB / wb), u32(g.strideC),
      u32(g.biasOffset ?? 0), u32(g.bias ? 1 : 0), u32(g.accumulate ? 1 : 0), f32(g.alpha), u32(g.transA ? 1 : 0), u32(g.transB ? 1 : 0),
    ],
    [Math.ceil(N / tile.BN), Math.ceil(M / tile.BM), batch],
  );
}
