import { backend } from '../backend/index.js';
import { gemmArgs, mat, matT } from '../backend/gemm_args.js';
import { isHost } from '../backend/storage.js';
import { UserError } from '../util/errors.js';
import { viewStorage } from '../tensor/tensor.js';
import type { Parameter } from '../nn/module.js';
import { AdamW, type AdamWOptions } from './adamw.js';

export interface MuonOptions {
  /** Peak learning rate of the orthogonalised updates (the schedule scales it as it scales AdamW's). */
  lr: number;
  /** Momentum μ of the buffer (Nesterov). */
  momentum: number;
  /** Newton–Schulz iterations. */
  nsSteps: number;
  /** Decoupled weight decay on the Muon matrices: w ← w·(1 − lr·weightDecay). */
  weightDecay: number;
  /** Round the Newton–Schulz products' operands to bfloat16 (FP32 sums), as the original runs them. */
  bf16?: boolean;
}

/** The quintic Newton–Schulz coefficients of Keller Jordan's Muon. */
export const NS_COEFFICIENTS = { a: 3.4445, b: -4.775, c: 2.0315 } as const;

/**
 * The matrices Muon updates: 2-D weights inside the blocks (GPT `h.N.`,
 * Llama `model.layers.N.`: attention q/k/v/output and the MLP). Embeddings,
 * the head, norms and biases are not (they stay with AdamW).
 */
export function isMuonParameter(name: string, p: Parameter): boolean {
  return p.rank === 2 && /(^|\.)(h|layers)\.\d+\./.test(name);
}

/**
 * Approximately orthogonalise x (rows×cols, row-major, in place): the
 * quintic Newton–Schulz iteration X ← aX + (bA + cA²)X with A = XXᵀ, after
 * dividing X by its Frobenius norm. It drives every singular value into
 * roughly [0.7, 1.2] (not exactly 1: the coefficients trade accuracy for
 * speed), keeping the singular vectors, i.e. ≈ UVᵀ of x = USVᵀ. When x is
 * tall the Gram matrix is XᵀX and the update X ← aX + X(bA + cA²), so the
 * small side is the one squared. The products run through the backend's GEMM.
 */
export function newtonSchulz(x: Float32Array, rows: number, cols: number, steps: number, bf16 = false, scratch?: NewtonSchulzScratch): Float32Array {
  const be = backend();
  const { a, b, c } = NS_COEFFICIENTS;
  const n = rows * cols;
  const s = Math.min(rows, cols);
  const tall = rows > cols;
  const buf = scratch ?? new NewtonSchulzScratch(n, s);
  let norm = 0;
  for (let i = 0; i < n; i++) norm += x[i]! * x[i]!;
  const inv = 1 / (Math.sqrt(norm) + 1e-7);
  let X = x;
  let Y = buf.y.subarray(0, n);
  for (let i = 0; i < n; i++) X[i]! *= inv;
  const A = buf.a.subarray(0, s * s);
  const B = buf.b.subarray(0, s * s);
  const o = bf16 ? { bf16: true } : {};
  for (let k = 0; k < steps; k++) {
    // A = X·Xᵀ (wide) or Xᵀ·X (tall): s×s.
    be.gemm(tall ? gemmArgs({ M: s, N: s, K: rows }, mat(A, s), matT(X, cols), mat(X, cols), o) : gemmArgs({ M: s, N: s, K: cols }, mat(A, s), mat(X, cols), matT(X, cols), o));
    // B = c·A² + b·A.
    be.gemm(gemmArgs({ M: s, N: s, K: s }, mat(B, s), mat(A, s), mat(A, s), { ...o, alpha: c }));
    for (let i = 0; i < s * s; i++) B[i]! += b * A[i]!;
    // Y = a·X + B·X (wide) or a·X + X·B (tall).
    for (let i = 0; i < n; i++) Y[i] = a * X[i]!;
    be.gemm(tall ? gemmArgs({ M: rows, N: cols, K: cols }, mat(Y, cols), mat(X, cols), mat(B, cols), { ...o, accumulate: true }) : gemmArgs({ M: rows, N: cols, K: rows }, mat(Y, cols), mat(B, rows), mat(X, cols), { ...o, accumulate: true }));
    [X, Y] = [Y, X];
  }
  if (X !== x) x.set(X);
  return x;
}

/** Work arrays for newtonSchulz, sized for the largest matrix, reused from step to step. */
export class NewtonSchulzScratch {
  readonly y: Float32Array;
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly u: Float32Array;
  constructor(size: number, small: number) {
    this.y = new Float32Array(size);
    this.u = new Float32Array(size);
    this.a = new Float32Array(small * small);
    this.b = new Float32Array(small * small);
  }
}

/**
 * Muon (Keller Jordan, 2024: "MomentUm Orthogonalized by Newton–Schulz") for
 * the blocks' weight matrices, AdamW for every other parameter. For a matrix
 * W (out×in) with gradient G, each step:
 *
 *   M ← μM + G                       (the momentum buffer)
 *   U ← G + μM                       (Nesterov)
 *   O ← NewtonSchulz(U) ≈ UVᵀ of U   (every singular value ≈ 1)
 *   W ← W·(1 − η·wd) − η·√max(1, out/in)·O
 *
 * The √max(1, out/in) factor (the original's convention, out = rows of the
 * stored weight) keeps the update's per-element size comparable for tall
 * matrices (the fused q/k/v, the MLP's up-projection). η is muon.lr times
 * the schedule's ratio lr/options.lr, so both optimizers warm up and decay
 * together.
 *
 * The momentum buffer lives in the AdamW first-moment arena (mAll) at the
 * matrix's offset, so checkpoints save and restore it as exp_avg.NAME with
 * no change; the second moment of a Muon matrix stays zero. Host backends.
 */
export class Muon extends AdamW {
  /** The parameters Muon updates, with their arena offsets. */
  readonly matrices: Array<{ name: string; p: Parameter; at: number }>;
  /** The rest, updated by AdamW one tensor at a time. */
  readonly others: Array<{ name: string; p: Parameter; at: number }>;
  private readonly scratch: NewtonSchulzScratch;

  constructor(params: Array<[string, Parameter]>, options: AdamWOptions, public muon: MuonOptions) {
    super(params, options);
    if (!isHost(this.arena.data)) throw new UserError('--optimizer muon runs on host backends (js, native); use adamw on webgpu');
    if (!(muon.lr > 0) || !(muon.momentum >= 0 && muon.momentum < 1) || !(Number.isInteger(muon.nsSteps) && muon.nsSteps >= 1)) {
      throw new UserError(`Muon needs lr > 0, 0 ≤ momentum < 1 and at least one Newton–Schulz step (got lr ${muon.lr}, momentum ${muon.momentum}, steps ${muon.nsSteps})`);
    }
    const entry = ([name, p]: [string, Parameter]) => ({ name, p, at: this.arena.offsets.get(name)! });
    this.matrices = params.filter(([n, p]) => isMuonParameter(n, p)).map(entry);
    this.others = params.filter(([n, p]) => !isMuonParameter(n, p)).map(entry);
    let size = 0;
    let small = 0;
    for (const { p } of this.matrices) {
      size = Math.max(size, p.size);
      small = Math.max(small, Math.min(p.shape[0]!, p.shape[1]!));
    }
    this.scratch = new NewtonSchulzScratch(size, small);
  }

  override update(lr = this.options.lr): void {
    this.step++;
    const be = backend();
    const data = this.arena.data as Float32Array;
    const grad = this.arena.grad as Float32Array;
    const m = this.mAll as Float32Array;
    const v = this.vAll as Float32Array;
    for (const { p, at } of this.others) {
      const view = (s: Float32Array) => viewStorage(s, at, p.size);
      be.adamwStep(view(data), view(grad), view(m), view(v), {
        lr,
        beta1: this.options.beta1,
        beta2: this.options.beta2,
        eps: this.options.eps,
        weightDecay: p.rank >= 2 ? this.options.weightDecay : 0,
        step: this.step,
      });
    }
    const eta = (this.muon.lr * lr) / this.options.lr;
    const mu = this.muon.momentum;
    const decay = 1 - eta * this.muon.weightDecay;
    for (const { p, at } of this.matrices) {
      const [rows, cols] = [p.shape[0]!, p.shape[1]!];
      const n = p.size;
      const u = this.scratch.u.subarray(0, n);
      for (let i = 0; i < n; i++) {
        const g = grad[at + i]!;
        const buf = mu * m[at + i]! + g;
        m[at + i] = buf;
        u[i] = g + mu * buf;
      }
      newtonSchulz(u, rows, cols, this.muon.nsSteps, this.muon.bf16, this.scratch);
      const step = eta * Math.sqrt(Math.max(1, rows / cols));
      for (let i = 0; i < n; i++) data[at + i] = data[at + i]! * decay - step * u[i]!;
    }
  }
}
