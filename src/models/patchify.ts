import { backend } from '../backend/index.js';
import { Tensor, allocStorage } from '../tensor/tensor.js';

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
  // Viewed as [N, rows, p, cols, p·C] (a patch row is p·C consecutive values of an image row),
  // the patches are that array with its two middle axes swapped: one permute, on whichever backend holds the images.
  const out = allocStorage(images.size, false);
  backend().permute(images.storage, [N, rows, p, cols, p * C], [0, 1, 3, 2, 4], out, false);
  return new Tensor(out, [N, rows * cols, patchLen]);
}
