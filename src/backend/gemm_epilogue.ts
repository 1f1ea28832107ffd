import type { Backend, GemmArgs, ProductEpilogue } from './backend.js';

type ElementWise = Pick<Backend<Float32Array>, 'unary' | 'binary'>;

/** out = act(out) (+ addend), out and the addend's first out.length values laid out alike: a decode-time product's epilogue on a host backend. */
export function applyRowsEpilogue(b: ElementWise, out: Float32Array, e: ProductEpilogue<Float32Array> | null | undefined): void {
  if (!e) return;
  const n = out.length;
  if (e.activation) b.unary(e.activation, out, out);
  if (e.addend) b.binary('add', out, [n], e.addend.subarray(0, n), [n], out, [n]);
}

/**
 * A host backend's GEMM epilogue (backend.ts's GemmEpilogue), done after its
 * product as passes over C with the backend's own element-wise kernels: the
 * activation in place, then the addend. On a CPU these passes cost O(M·N)
 * against the product's O(M·N·K); the GPU does them as it stores C
 * (webgpu/kernels/gemm_epilogue.ts), where a pass of its own is a dispatch.
 *
 * C's rows are one span when ldc = N (and the batch entries too when
 * strideC = M·N), so a layer's output is one call; otherwise row by row.
 */
export function applyGemmEpilogue(b: ElementWise, g: GemmArgs<Float32Array>): void {
  const e = g.epilogue;
  if (!e || (!e.activation && !e.addend)) return;
  const { M, N } = g;
  if (M === 0 || N === 0) return;
  const add = e.addend ?? null;
  // A span of C's rows that is contiguous, with the addend's matching span.
  const run = (c0: number, a0: number, rows: number) =>
    applyRowsEpilogue(b, g.c.subarray(c0, c0 + rows * N), { activation: e.activation, addend: add && add.data.subarray(a0, a0 + rows * N) });
  const whole = g.ldc === N && (!add || add.ld === N);
  for (let z = 0; z < g.batch; z++) {
    const c0 = g.cOffset + z * g.strideC;
    const a0 = add ? add.offset + z * add.stride : 0;
    if (whole) run(c0, a0, M);
    else for (let r = 0; r < M; r++) run(c0 + r * g.ldc, a0 + r * (add?.ld ?? 0), 1);
  }
}
