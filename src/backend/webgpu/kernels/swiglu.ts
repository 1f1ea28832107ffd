import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { deferInput } from './input_fold.js';

/**
 * SwiGLU's gated product on the GPU (Llama's MLP), the formulas of
 * js/swiglu.ts: out = silu(gate) ∘ up in one pass, and its backward with
 * s = σ(g): dUp = dy·g·s, dGate = dy·up·s·(1 + g·(1 − s)). One invocation
 * per element; no silu(gate) array is stored.
 */

const SIGMOID = /* wgsl */ `fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }`;

const FORWARD: KernelSource = {
  name: 'swigluForward',
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, gOff: u32, uOff: u32, outOff: u32 }
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${SIGMOID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let g = gate[p.gOff + i];
  out[p.outOff + i] = g * sigmoid(g) * up[p.uOff + i];
}`,
};

const BACKWARD: KernelSource = {
  name: 'swigluBackward',
  bindings: ['read', 'read', 'read', 'rw', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, gOff: u32, uOff: u32, dyOff: u32, dgOff: u32, duOff: u32, wantGate: u32, wantUp: u32, accGate: u32, accUp: u32 }
@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dGate: array<f32>;
@group(0) @binding(4) var<storage, read_write> dUp: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${FLAT_INDEX}
${SIGMOID}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let g = gate[p.gOff + i];
  let s = sigmoid(g);
  let d = dy[p.dyOff + i];
  if (p.wantGate != 0u) {
    var v = d * up[p.uOff + i] * s * (1.0 + g * (1.0 - s));
    if (p.accGate != 0u) { v += dGate[p.dgOff + i]; }
    dGate[p.dgOff + i] = v;
  }
  if (p.wantUp != 0u) {
    var v = d * g * s;
    if (p.accUp != 0u) { v += dUp[p.duOff + i]; }
    dUp[p.duOff + i] = v;
  }
}`,
};

/** out = silu(gate) ∘ up. */
export function swigluForward(ctx: GpuContext, gate: GpuSpan, up: GpuSpan, out: GpuSpan): void {
  const run = () => ctx.dispatch(FORWARD, [gate.buffer, up.buffer, out.buffer], [u32(out.length), u32(gate.offset), u32(up.offset), u32(out.offset)], grid(ctx, out.length));
  // A decode step's few rows: left for the down projection that reads them to fold in (input_fold.ts).
  if (!deferInput(ctx, { kind: 'swiglu', input: gate, up, length: out.length, out }, [], run)) run();
}

/** dGate (+)= dy ∘ up ∘ silu'(gate), dUp (+)= dy ∘ silu(gate); a null one is skipped. */
export function swigluBackward(ctx: GpuContext, gate: GpuSpan, up: GpuSpan, dy: GpuSpan, dGate: GpuSpan | null, dUp: GpuSpan | null, accGate: boolean, accUp: boolean): void {
  ctx.dispatch(BACKWARD, [gate.buffer, up.buffer, dy.buffer, dGate?.buffer, dUp?.buffer], [
    u32(dy.length), u32(gate.offset), u32(up.offset), u32(dy.offset), u32(dGate?.offset ?? 0), u32(dUp?.offset ?? 0),
    u32(dGate ? 1 : 0), u32(dUp ? 1 : 0), u32(accGate ? 1 : 0), u32(accUp ? 1 : 0),
  ], grid(ctx, dy.length));
}
