import type { AdamWHyper } from '../../backend.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * One AdamW step on one parameter tensor, in place, in js/adamw.ts's order of
 * operations (PyTorch's): the moments first, then the decoupled decay of the
 * weight, then the update with the bias-corrected step size. The scalars
 * that depend only on the step (bias corrections, step size, decay factor)
 * are computed once on the host in double precision, as js does.
 */

const ADAMW: KernelSource = {
  name: 'adamwStep',
  bindings: ['rw', 'read', 'rw', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, pOff: u32, gOff: u32, mOff: u32, vOff: u32,
  beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32, eps: f32, stepSize: f32, bc2Sqrt: f32, decay: f32 }
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let g = grad[p.gOff + i];
  let mi = p.beta1 * m[p.mOff + i] + p.oneMinusBeta1 * g;
  let vi = p.beta2 * v[p.vOff + i] + p.oneMinusBeta2 * g * g;
  m[p.mOff + i] = mi;
  v[p.vOff + i] = vi;
  let w = param[p.pOff + i] * p.decay;
  let denom = sqrt(vi) / p.bc2Sqrt + p.eps;
  param[p.pOff + i] = w - p.stepSize * (mi / denom);
}`,
};

export function adamwStep(ctx: GpuContext, param: GpuSpan, grad: GpuSpan, m: GpuSpan, v: GpuSpan, h: AdamWHyper): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = h;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  ctx.dispatch(
    ADAMW,
    [param.buffer, grad.buffer, m.buffer, v.buffer],
    [
      u32(param.length), u32(param.offset), u32(grad.offset), u32(m.offset), u32(v.offset),
      f32(beta1), f32(beta2), f32(1 - beta1), f32(1 - beta2), f32(eps), f32(lr / bc1), f32(Math.sqrt(bc2)), f32(1 - lr * weightDecay),
    ],
    grid(ctx, param.length),
  );
}
