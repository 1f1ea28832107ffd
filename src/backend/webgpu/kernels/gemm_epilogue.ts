import type { EpilogueActivation } from '../../backend.js';
import { type GpuSpan, type Param, u32 } from '../device.js';
import { ACTIVATIONS } from './elementwise.js';

/**
 * What every product kernel (gemm.ts, gemm_skinny.ts, the split-K sum of
 * gemm_split_k.ts, and the decode-time products of output_lanes.ts)
 * does to an element of C as it stores it, after alpha and accumulation: the
 * bias, the activation, the addend (backend.ts's GemmEpilogue and
 * ProductEpilogue). Done here, a feed-forward's GELU and a sublayer's residual
 * addition are not dispatches of their own: a GPT-2 block decoding one token
 * drops from ten dispatches to seven.
 *
 * Each kernel appends EPILOGUE_FIELDS to its Params struct (their values from
 * epilogueParams, in the same order), binds `bias` and `addend` (epilogueBindings)
 * and calls `epilogue(x, column, addend index)`. The activation is a uniform,
 * not a compiled variant: the branch is taken once per stored element, the
 * same way by every invocation.
 */

/** The addend as the GPU kernels take it: a buffer and, in elements, where (r, c) of batch entry z is: offset + z·stride + r·ld + c. */
export interface GpuAddend {
  buffer: GPUBuffer;
  offset: number;
  ld: number;
  stride: number;
}

/** The epilogue of one product: the bias (a length-N vector), the activation and the addend, each optional. */
export interface GpuEpilogue {
  bias?: GPUBuffer | null;
  biasOffset?: number;
  activation?: EpilogueActivation | null;
  addend?: GpuAddend | null;
}

/** A decode-time product's activation and addend (an addend span laid out as out, [rows, N]). */
export interface GpuProductEpilogue {
  activation?: EpilogueActivation | null;
  addend?: GpuSpan | null;
}

/** The GpuEpilogue of an out [rows, N] product: its bias span, and the addend laid out as out. */
export function rowsEpilogue(bias: GpuSpan | null, N: number, e: GpuProductEpilogue | null): GpuEpilogue {
  const add = e?.addend;
  return { bias: bias?.buffer ?? null, biasOffset: bias?.offset ?? 0, activation: e?.activation ?? null, addend: add ? { buffer: add.buffer, offset: add.offset, ld: N, stride: 0 } : null };
}

const ACTIVATION_CODE: Record<EpilogueActivation, number> = { relu: 1, gelu: 2, silu: 3 };

/** WGSL: the epilogue's fields, the last ones of a kernel's Params struct. */
export const EPILOGUE_FIELDS = 'biasOff: u32, hasBias: u32, act: u32, hasAddend: u32, addOff: u32, ldAdd: u32, strideAdd: u32';

/** The values of EPILOGUE_FIELDS for one product. */
export function epilogueParams(e: GpuEpilogue): Param[] {
  const add = e.addend;
  return [u32(e.biasOffset ?? 0), u32(e.bias ? 1 : 0), u32(e.activation ? ACTIVATION_CODE[e.activation] : 0), u32(add ? 1 : 0), u32(add?.offset ?? 0), u32(add?.ld ?? 0), u32(add?.stride ?? 0)];
}

/** WGSL: the bias and addend bindings, at `first` and first + 1. */
export const epilogueBindings = (first: number) => /* wgsl */ `@group(0) @binding(${first}) var<storage, read> bias: array<f32>;
@group(0) @binding(${first + 1}) var<storage, read> addend: array<f32>;`;

/** WGSL: `epilogue(x, c, at)`, x already scaled and accumulated, c its column, `at` its addend's index. */
export const EPILOGUE_FN = /* wgsl */ `
${ACTIVATIONS}
fn epilogue(x: f32, c: u32, at: u32) -> f32 {
  var y = x;
  if (p.hasBias != 0u) { y = y + bias[p.biasOff + c]; }
  switch p.act {
    case 1u: { y = relu(y); }
    case 2u: { y = gelu(y); }
    case 3u: { y = silu(y); }
    default: {}
  }
  if (p.hasAddend != 0u) { y = y + addend[at]; }
  return y;
}`;

/** Where the addend's element (r, c) of batch entry z is, as WGSL. */
export const addendAt = (z: string, r: string, c: string) => `p.addOff + ${z} * p.strideAdd + ${r} * p.ldAdd + ${c}`;
