// Two builds' bf16 train steps (and the first build's fp32) on a bench config, interleaved in one
// process, 2 threads, CPU ms per step (median and all): a kernel change judged against the build
// before it under the same load. fp32 is taken from the new build only (FP32 must not change).
//   node bench/train_build_ab.mjs NEW_DIST_SRC BASE_DIST_SRC [CONFIG] [STEPS]
const roots = { new: process.argv[2], base: process.argv[3] };
const cfg = process.argv[4] ?? 'G', steps = Number(process.argv[5] ?? 5);
const runs = {};
for (const [name, root] of Object.entries(roots)) {
  const { selectBackend } = await import(`${root}/backend/select.js`);
  const { trainBenchSetup } = await import(`${root}/bench/workloads.js`);
  const { trainStep } = await import(`${root}/train/step.js`);
  const { withPrecision } = await import(`${root}/tensor/precision.js`);
  selectBackend('native', 2);
  for (const p of name === 'new' ? ['fp32', 'bf16'] : ['bf16']) {
    const { opt, objective, batch } = trainBenchSetup(cfg, false);
    const step = () => trainStep(opt, { loss: (b) => withPrecision(p, () => objective.loss(b)) }, [batch], { lr: 1e-3, gradClip: 1 });
    step();
    runs[`${name}_${p}`] = { step, cpu: [] };
  }
}
for (let i = 0; i < steps; i++) for (const [k, r] of Object.entries(runs)) { const c0 = process.cpuUsage(); r.step(); const u = process.cpuUsage(c0); r.cpu.push(Math.round((u.user + u.system) / 1000)); }
const med = (x) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
const out = {}; for (const [k, r] of Object.entries(runs)) out[k] = { med: med(r.cpu), all: r.cpu };
out.ratio_new = +(out.new_fp32.med / out.new_bf16.med).toFixed(3); out.ratio_base = +(out.new_fp32.med / out.base_bf16.med).toFixed(3);
console.log(JSON.stringify(out));
