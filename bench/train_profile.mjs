// Where a training step's time goes: every backend call of a bench config's train step (the
// native backend's kernels, GEMMs by shape), timed by the process's CPU time, fp32 then bf16.
// After `npx tsc` and the native build:
//   THREADS=1 STEPS=2 node bench/train_profile.mjs M        (PREC=bf16 for one precision)
// CPU time, not wall: it survives a loaded machine; at THREADS=1 it is also the op's own time.
const root = new URL('../dist/src', import.meta.url).pathname;
const { selectBackend } = await import(`${root}/backend/select.js`);
const { backend } = await import(`${root}/backend/index.js`);
const { trainBenchSetup } = await import(`${root}/bench/workloads.js`);
const { trainStep } = await import(`${root}/train/step.js`);
const { withPrecision } = await import(`${root}/tensor/precision.js`);
const config = process.argv[2] ?? 'M';
selectBackend('native', Number(process.env.THREADS ?? 2));
const be = backend();
const acc = new Map();
for (const k of Object.keys(be)) {
  const f = be[k];
  if (typeof f !== 'function') continue;
  be[k] = (...a) => {
    let key = k;
    if (k === 'gemm') key = `gemm${a[0].bf16 ? '_bf16' : ''} ${a[0].transA?'T':'N'}${a[0].transB?'T':'N'} ${a[0].M}x${a[0].N}x${a[0].K}${a[0].batch>1?' b'+a[0].batch:''}`;
    if (k === 'binary' || k === 'unary' || k === 'unaryBackward') key = `${k}:${a[0]}`;
    const c0 = process.cpuUsage();
    const r = f(...a);
    const cu = process.cpuUsage(c0);
    const e = acc.get(key) ?? [0, 0];
    e[0] += (cu.user + cu.system) / 1000; e[1]++;
    acc.set(key, e);
    return r;
  };
}
for (const precision of (process.env.PREC ?? 'fp32,bf16').split(',')) {
  const { opt, objective, batch } = trainBenchSetup(config, false);
  const obj = { loss: (b) => withPrecision(precision, () => objective.loss(b)) };
  const steps = Number(process.env.STEPS ?? 3);
  for (let i = 0; i < 2; i++) trainStep(opt, obj, [batch], { lr: 1e-3, gradClip: 1 });
  acc.clear();
  const t0 = performance.now(); const c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) trainStep(opt, obj, [batch], { lr: 1e-3, gradClip: 1 });
  const wall = (performance.now() - t0) / steps; const cu = process.cpuUsage(c0);
  let tot = 0;
  const rows = [...acc].map(([k, [t, n]]) => { tot += t; return [k, t / steps, n / steps]; }).sort((a, b) => b[1] - a[1]);
  console.log(`== ${config} ${precision}: step ${wall.toFixed(1)} ms wall, ${((cu.user + cu.system) / 1000 / steps).toFixed(1)} ms cpu; backend ops ${(tot / steps).toFixed(1)} ms, other ${(wall - tot / steps).toFixed(1)} ms`);
  for (const [k, t, n] of rows.slice(0, 40)) console.log(`  ${k.padEnd(28)} ${t.toFixed(1).padStart(8)} ms  ${n.toFixed(0).padStart(5)} calls`);
}
