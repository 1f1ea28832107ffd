import type { Rng } from '../util/rng.js';

/**
 * Labelled images in memory: `count` images of height × width × channels
 * bytes each, row-major with channels last (a pixel's R, G, B side by side),
 * and one class index per image into `classes`.
 */
export interface ImageSet {
  pixels: Uint8Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  classes: string[];
}

export const imageSize = (s: ImageSet): number => s.height * s.width * s.channels;

/** The images at `indices`, in that order. */
export function subset(s: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = imageSize(s);
  const pixels = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    pixels.set(s.pixels.subarray(k * size, (k + 1) * size), i * size);
    labels[i] = s.labels[k]!;
  }
  return { ...s, pixels, labels, count: indices.length };
}

/** A random permutation of 0 … n−1 (Fisher–Yates). */
export function shuffled(n: number, rng: Rng): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Hold out a random `fraction` of the images as a test set (when the data has no split of its own). */
export function splitHeldOut(s: ImageSet, fraction: number, rng: Rng): { train: ImageSet; test: ImageSet } {
  const order = shuffled(s.count, rng);
  const nTest = Math.max(1, Math.round(s.count * fraction));
  return { train: subset(s, order.subarray(nTest)), test: subset(s, order.subarray(0, nTest)) };
}

/** Per-channel mean and standard deviation of the pixels, on the 0…1 scale. */
export function pixelStats(s: ImageSet): { mean: number[]; std: number[] } {
  const C = s.channels;
  const sum = new Float64Array(C);
  const sq = new Float64Array(C);
  for (let i = 0; i < s.pixels.length; i++) {
    const v = s.pixels[i]! / 255;
    sum[i % C]! += v;
    sq[i % C]! += v * v;
  }
  const n = s.pixels.length / C;
  const mean = [...sum].map((v) => v / n);
  const std = [...sq].map((v, c) => Math.sqrt(Math.max(v / n - mean[c]! ** 2, 1e-12)));
  return { mean, std };
}

/**
 * The images at `indices` as floats [n, H, W, C], each channel standardised
 * with the training set's statistics so the inputs sit around 0 with unit spread.
 */
export function normalizedBatch(s: ImageSet, indices: ArrayLike<number>, mean: number[], std: number[]): Float32Array {
  const size = imageSize(s);
  const C = s.channels;
  const out = new Float32Array(indices.length * size);
  const scale = std.map((d) => 1 / (255 * d));
  const shift = mean.map((m, c) => m / std[c]!);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i]! * size;
    const dst = i * size;
    for (let j = 0; j < size; j++) out[dst + j] = s.pixels[src + j]! * scale[j % C]! - shift[j % C]!;
  }
  return out;
}
