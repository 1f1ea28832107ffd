// fp32 against bf16 on a bench config's train step (the bench's own trainStep), steps interleaved
// in one process, median CPU and wall ms per step: a ratio that survives a loaded machine.
//   node bench/train_precision_ab.mjs [DIST_SRC] [CONFIG] [THREADS] [STEPS]
// DIST_SRC: a build's dist/src (default this checkout's), to compare two builds under the same load.
const root = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : new URL('../dist/src', import.meta.url).pathname;
const config = process.argv[3] ?? 'M';
const threads = Number(process.argv[4] ?? 1), steps = Number(process.argv[5] ?? 5);
const { selectBackend } = await import(`${root}/backend/select.js`);
const { trainBenchSetup } = await import(`${root}/bench/workloads.js`);
const { trainStep } = await import(`${root}/train/step.js`);
const { withPrecision } = await import(`${root}/tensor/precision.js`);
selectBackend('native', threads);
const runs = {};
for (const p of ['fp32', 'bf16']) {
  const { opt, objective, batch } = trainBenchSetup(config, false);
  runs[p] = { step: () => trainStep(opt, { loss: (b) => withPrecision(p, () => objective.loss(b)) }, [batch], { lr: 1e-3, gradClip: 1 }), cpu: [], wall: [] };
  runs[p].step();
}
for (let i = 0; i < steps; i++) for (const p of ['fp32', 'bf16']) {
  const c0 = process.cpuUsage(), t0 = performance.now();
  runs[p].step();
  const u = process.cpuUsage(c0); runs[p].wall.push(performance.now() - t0); runs[p].cpu.push((u.user + u.system) / 1000);
}
const med = (x) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
const r = (k) => med(runs.fp32[k]) / med(runs.bf16[k]);
console.log(JSON.stringify({ root, config, threads, steps, fp32_cpu_ms: +med(runs.fp32.cpu).toFixed(0), bf16_cpu_ms: +med(runs.bf16.cpu).toFixed(0), cpu_ratio: +r('cpu').toFixed(3), fp32_wall_ms: +med(runs.fp32.wall).toFixed(0), bf16_wall_ms: +med(runs.bf16.wall).toFixed(0), wall_ratio: +r('wall').toFixed(3) }));
