// Times the WebGPU fused attention kernels (forward, and backward: dq, dk, dv) at one shape: this
// tree's with its defaults ("this": split over keys and queries by kernels/attention.ts's
// attentionSplit, four lanes a row where the device's subgroups allow), unsplit ("this_unsplit"),
// and with one invocation a row ("this_one_lane"), and, given another tree's compiled kernel module,
// that one beside them in the same process, in rounds whose order alternates. Each timing records
// one call and waits for the GPU (ctx.sync).
//
//   node bench/webgpu_attention_ab.mjs [B,H,T,D] [ROUNDS] [OTHER_TREE/dist/src/backend/webgpu/kernels/attention.js]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (SwiftShader's times
// say little about a GPU's). Prints one JSON line with the medians in ms.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const here = new URL('../dist/src/backend/webgpu/', import.meta.url);
const { GpuContext, span } = await import(new URL('device.js', here).href);
const mine = await import(new URL('kernels/attention.js', here).href);
const kernels = [['this', mine, null, 4], ['this_unsplit', mine, { target: 0 }, 4], ['this_one_lane', mine, null, 1]];
if (process.argv[4]) kernels.push(['other', await import(pathToFileURL(resolve(process.argv[4])).href), null, null]);
const defaults = mine.setAttentionSplit({});
const defaultLanes = mine.setAttentionLanes(4);
const [B, H, T, D] = (process.argv[2] ?? '16,6,256,64').split(',').map(Number);
const rounds = Number(process.argv[3] ?? 5);

const ctx = await GpuContext.create();
const n = B * T * H * D;
let seed = 1;
const rand = (k) => Float32Array.from({ length: k }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
const buf = (k, data) => span(data ? ctx.upload(data) : ctx.buffer(k * 4), 0, k);
const [q, k, v, dO] = [buf(n, rand(n)), buf(n, rand(n)), buf(n, rand(n)), buf(n, rand(n))];
const [out, lse, dq, dk, dv] = [buf(n), buf(B * H * T), buf(n), buf(n), buf(n)];
const d = { B, Tq: T, Tk: T, nHead: H, nKvHead: H, headDim: D, causal: true, scale: 1 / Math.sqrt(D) };
const time = async (f) => {
  await ctx.sync();
  const t0 = performance.now();
  f();
  await ctx.sync();
  return performance.now() - t0;
};
const times = Object.fromEntries(kernels.map(([name]) => [name, { fwd: [], bwd: [] }]));
const once = async ([name, K, split, lanes], keep) => {
  K.setAttentionSplit?.({ ...defaults, ...split });
  if (lanes) K.setAttentionLanes(lanes === 4 ? defaultLanes : 1);
  const f = await time(() => K.attentionForward(ctx, q, k, v, out, lse, d));
  const b = await time(() => K.attentionBackward(ctx, lse, q, k, v, out, dO, dq, dk, dv, d, false));
  if (keep) times[name].fwd.push(f), times[name].bwd.push(b);
};
for (const kk of kernels) await once(kk, false); // compile and warm up
for (let r = 0; r < rounds; r++) for (const kk of r % 2 ? [...kernels].reverse() : kernels) await once(kk, true);
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
mine.setAttentionSplit(defaults);
mine.setAttentionLanes(defaultLanes);
const lanes = mine.attentionLanes(ctx, D);
const row = { shape: { B, H, T, D, causal: true }, rounds, adapter: ctx.adapterName, lanes, splits: mine.attentionSplit(B * H * Math.ceil(T / 64) * 64 * lanes, T, Math.min(32, Math.floor(2048 / D))).splits };
for (const [name] of kernels) Object.assign(row, { [`${name}_fwd_ms`]: med(times[name].fwd), [`${name}_bwd_ms`]: med(times[name].bwd) });
console.log(JSON.stringify(row));
ctx.destroy();
process.exit(0);
