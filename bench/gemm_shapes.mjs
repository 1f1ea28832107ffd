// CPU time of the native GEMM on a bench config's training shapes, fp32 and bf16, median of
// REPS calls each (interleaved), so a packing or blocking change can be judged on a loaded machine.
//   THREADS=1 REPS=5 node bench/gemm_shapes.mjs [DIST_SRC]
// Shapes: config G's per-layer products and its 50257-wide head (M×N×K, transposes as in the
// train step: NT forward, NN dx, TN dW with accumulate).
const root = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : new URL('../dist/src', import.meta.url).pathname;
const { selectBackend } = await import(`${root}/backend/select.js`);
const { backend } = await import(`${root}/backend/index.js`);
selectBackend('native', Number(process.env.THREADS ?? 1));
const be = backend();
const reps = Number(process.env.REPS ?? 5);
const shapes = (process.env.SHAPES ?? 'NT 1024x2304x768,NN 1024x768x2304,TN 2304x768x1024,NT 1024x3072x768,NN 1024x768x3072,TN 3072x768x1024,NT 1024x768x3072,NN 1024x3072x768,TN 768x3072x1024,NT 1024x50257x768,NN 1024x768x50257,TN 50257x768x1024').split(',');
const rand = (n) => { const x = new Float32Array(n); for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 0.5; return x; };
const med = (x) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
let tot = { fp32: 0, bf16: 0 };
for (const s of shapes) {
  const [t, dims] = s.trim().split(' ');
  const [M, N, K] = dims.split('x').map(Number);
  const transA = t[0] === 'T', transB = t[1] === 'T';
  const a = rand(M * K), b = rand(K * N), c = new Float32Array(M * N);
  const args = (bf16) => ({ transA, transB, M, N, K, a, aOffset: 0, lda: transA ? M : K, b, bOffset: 0, ldb: transB ? K : N, c, cOffset: 0, ldc: N, alpha: 1, accumulate: transA, batch: 1, strideA: 0, strideB: 0, strideC: 0, bf16 });
  const cpu = { fp32: [], bf16: [] };
  for (const p of ['fp32', 'bf16']) be.gemm(args(p === 'bf16'));
  for (let r = 0; r < reps; r++) for (const p of ['fp32', 'bf16']) {
    const c0 = process.cpuUsage(); be.gemm(args(p === 'bf16')); const u = process.cpuUsage(c0);
    cpu[p].push((u.user + u.system) / 1000);
  }
  const f = med(cpu.fp32), h = med(cpu.bf16); tot.fp32 += f; tot.bf16 += h;
  const gf = (ms) => (2 * M * N * K / ms / 1e6).toFixed(0);
  console.log(`${s.padEnd(20)} fp32 ${f.toFixed(1).padStart(7)} ms (${gf(f)} GF/cpu-s)  bf16 ${h.toFixed(1).padStart(7)} ms (${gf(h)})  ratio ${(f / h).toFixed(2)}`);
}
console.log(`total fp32 ${tot.fp32.toFixed(0)} ms, bf16 ${tot.bf16.toFixed(0)} ms, ratio ${(tot.fp32 / tot.bf16).toFixed(2)}`);
