import { f32, type GpuContext, type GpuSpan, i32, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG, rowGroups, rowLanes, WORKGROUP_REDUCE } from './workgroup_reduce.js';

/**
 * Cross-entropy fused with log-softmax (js/cross_entropy.ts): per row,
 * lse = max + log Σ exp(logit − max) and loss = lse − logit[target], never
 * forming probabilities that could underflow. Rows whose target is the ignore
 * index count for nothing. The forward leaves the summed loss and the number
 * of counted rows ON THE DEVICE (`result` = [sum, count]): a second pass, one
 * workgroup, adds the rows' losses, so training reads back only when it logs.
 * With label smoothing ε the target is (1 − ε)·onehot + ε/V, as in js: the
 * row's loss is (1 − ε)·(lse − z_t) + ε·(lse − mean z), its gradient softmax − q.
 */

const code = (lanes: number) => /* wgsl */ `
struct Params { rows: u32, vocab: u32, ignoreIndex: i32, scale: f32, accumulate: u32, lOff: u32, tOff: u32, lseOff: u32, dOff: u32, hasDLoss: u32, dLossOff: u32, smoothing: f32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;  // forward: per-row losses; backward: dLoss (at dLossOff)
@group(0) @binding(4) var<storage, read_write> dLogits: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${FLAT_INDEX}
${WORKGROUP_REDUCE}
${laneReduce(lanes)}

@compute @workgroup_size(${ROW_WG})
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let width = select(0u, p.vocab, inside); // a row past the last reads nothing, but reduces with its workgroup
  let o = p.lOff + r * p.vocab;
  var m = -0x1.fffffep+127f;
  for (var j = lid % LANES; j < width; j += LANES) { m = max(m, logits[o + j]); }
  m = laneMax(m, lid);
  var s = 0.0;
  var z = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) {
    s += exp(logits[o + j] - m);
    z += logits[o + j];
  }
  let l = m + log(laneSum(s, lid));
  let zSum = laneSum(z, lid);
  if (inside && lid % LANES == 0u) {
    lse[p.lseOff + r] = l;
    let t = targets[p.tOff + r];
    var loss = l - logits[o + u32(t)];
    if (p.smoothing != 0.0) { loss = (1.0 - p.smoothing) * loss + p.smoothing * (l - zSum / f32(p.vocab)); }
    rowLoss[r] = select(loss, 0.0, t == p.ignoreIndex);
  }
}

// One workgroup: the sum of the rows' losses and the count of rows not ignored.
@compute @workgroup_size(${ROW_WG})
fn total(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var c = 0.0;
  for (var r = lid; r < p.rows; r += ${ROW_WG}u) {
    s += rowLoss[r];
    c += select(1.0, 0.0, targets[p.tOff + r] == p.ignoreIndex);
  }
  s = reduceSum(s, lid);
  c = reduceSum(c, lid);
  if (lid == 0u) { dLogits[p.dOff] = s; dLogits[p.dOff + 1u] = c; }
}

@compute @workgroup_size(${WG})
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.rows * p.vocab) { return; }
  let r = i / p.vocab;
  let j = i % p.vocab;
  let t = targets[p.tOff + r];
  let o = p.dOff + i;
  var d = 0.0;
  if (p.accumulate != 0u) { d = dLogits[o]; }
  if (t != p.ignoreIndex) {
    // The upstream gradient of the loss, read on the device (binding 3 in backward), times the op's scale.
    var scale = p.scale;
    if (p.hasDLoss != 0u) { scale *= rowLoss[p.dLossOff]; }
    var g = scale * exp(logits[p.lOff + i] - lse[p.lseOff + r]) - scale * p.smoothing / f32(p.vocab);
    if (u32(t) == j) { g -= scale * (1.0 - p.smoothing); }
    d += g;
  }
  dLogits[o] = d;
}`;

const BINDINGS = ['read', 'read', 'rw', 'rw', 'rw'] as const;
const rowsKernel = variants(String, (lanes: number): KernelSource => ({ name: `crossEntropyForward_l${lanes}`, entry: 'rows', code: code(lanes), bindings: BINDINGS }));
const TOTAL: KernelSource = { name: 'crossEntropyTotal', entry: 'total', code: code(ROW_WG), bindings: BINDINGS };
const BACKWARD: KernelSource = { name: 'crossEntropyBackward', entry: 'backward', code: code(ROW_WG), bindings: BINDINGS };

/**
 * Each row's log-sum-exp into `lse`; `result` (2 elements) receives
 * [summed loss, counted rows] (the js backend's return value), on the device.
 */
export function crossEntropyForward(
  ctx: GpuContext, logits: GpuSpan, targets: GpuSpan, lse: GpuSpan, result: GpuSpan, rows: number, vocab: number, ignoreIndex: number, smoothing = 0,
): void {
  const rowLoss = ctx.buffer(Math.max(1, rows) * 4);
  const buffers = [logits.buffer, targets.buffer, lse.buffer, rowLoss, result.buffer];
  const params = [u32(rows), u32(vocab), i32(ignoreIndex), f32(0), u32(0), u32(logits.offset), u32(targets.offset), u32(lse.offset), u32(result.offset), u32(0), u32(0), f32(smoothing)];
  const lanes = rowLanes(vocab);
  ctx.dispatch(rowsKernel(lanes), buffers, params, rowGroups(ctx, rows, lanes));
  ctx.dispatch(TOTAL, buffers, params, [1]);
  ctx.release(rowLoss);
}

/**
 * dLogits (+)= scale·dLoss·(softmax − q) for counted rows, q the target
 * smoothed by ε; overwriting leaves ignored rows 0. dLoss (one element, the
 * loss's own gradient) is read on the device; without it the factor is 1.
 */
export function crossEntropyBackward(
  ctx: GpuContext, logits: GpuSpan, targets: GpuSpan, lse: GpuSpan, dLogits: GpuSpan,
  rows: number, vocab: number, ignoreIndex: number, scale: number, accumulate: boolean, dLoss: GpuSpan | null = null, smoothing = 0,
): void {
  ctx.dispatch(
    BACKWARD,
    [logits.buffer, targets.buffer, lse.buffer, dLoss?.buffer, dLogits.buffer],
    [
      u32(rows), u32(vocab), i32(ignoreIndex), f32(scale), u32(accumulate ? 1 : 0), u32(logits.offset), u32(targets.offset), u32(lse.offset), u32(dLogits.offset),
      u32(dLoss ? 1 : 0), u32(dLoss?.offset ?? 0), f32(smoothing),
    ],
    grid(ctx, rows * vocab),
  );
}
