import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/** Below this norm a row is treated as having norm EPS, so a zero vector stays finite. */
const EPS = 1e-12;

/**
 * Scale each row (last axis) to unit length: y = x / ‖x‖. Cosine similarity
 * is then a plain dot product, and a Matryoshka prefix normalised on its own
 * is a valid embedding by itself.
 */
export function l2Normalize(x: Tensor): Tensor {
  const D = x.shape[x.rank - 1]!;
  const rows = x.size / D;
  const out = Tensor.zeros(x.shape);
  const norms = new Float32Array(rows);
  l2NormalizeForward(x.data, out.data, norms, rows, D);
  return record(out, [x], 'l2Normalize', () => {
    l2NormalizeBackward(out.data, norms, out.grad!, x.ensureGrad(), rows, D);
  });
}

function l2NormalizeForward(x: Float32Array, y: Float32Array, norms: Float32Array, rows: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let sq = 0;
    for (let i = 0; i < D; i++) sq += x[o + i]! * x[o + i]!;
    const n = Math.max(Math.sqrt(sq), EPS);
    norms[r] = n;
    for (let i = 0; i < D; i++) y[o + i] = x[o + i]! / n;
  }
}

/**
 * dx = (dy − y·(y·dy)) / ‖x‖: the gradient loses its component along y,
 * because moving x along itself does not change its direction.
 */
function l2NormalizeBackward(y: Float32Array, norms: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let dot = 0;
    for (let i = 0; i < D; i++) dot += y[o + i]! * dy[o + i]!;
    const inv = 1 / norms[r]!;
    for (let i = 0; i < D; i++) dx[o + i] = dx[o + i]! + (dy[o + i]! - y[o + i]! * dot) * inv;
  }
}
