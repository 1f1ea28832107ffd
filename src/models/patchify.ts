import { Tensor } from '../tensor/tensor.js';

/**
 * Cut images [N, H, W, C] into non-overlapping p×p patches and flatten each:
 * the result is [N, (H/p)·(W/p), p·p·C], patches in reading order (left to
 * right, top to bottom), each patch's values row by row with channels last.
 * These are the ViT's "16×16 words".
 *
 * This is data preparation, not an op: images are inputs and need no
 * gradient, so nothing is recorded and there is no backward. The learned
 * part — the patch embedding — is the Linear layer that follows.
 */
export function patchify(images: Tensor, p: number): Tensor {
  if (images.rank !== 4) throw new Error(`patchify expects images [N, H, W, C], got [${images.shape}]`);
  if (images.requiresGrad) throw new Error('patchify: images are data and carry no gradient');
  const [N, H, W, C] = images.shape as [number, number, number, number];
  if (!Number.isInteger(p) || p < 1 || H % p !== 0 || W % p !== 0) {
    throw new Error(`patch size ${p} does not divide the ${H}×${W} image`);
  }
  const rows = H / p;
  const cols = W / p;
  const patchLen = p * p * C;
  const out = new Float32Array(images.size);
  const src = images.data;
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let pr = 0; pr < rows; pr++) {
      for (let pc = 0; pc < cols; pc++) {
        for (let y = 0; y < p; y++) {
          // One row of a patch is p·C consecutive values of the image row.
          const start = ((n * H + pr * p + y) * W + pc * p) * C;
          out.set(src.subarray(start, start + p * C), o);
          o += p * C;
        }
      }
    }
  }
  return new Tensor(out, [N, rows * cols, patchLen]);
}
