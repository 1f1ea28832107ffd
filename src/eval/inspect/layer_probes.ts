import type { Tensor } from '../../tensor/tensor.js';
import { fitProbes, rSquared } from './linear_probe.js';

/** A property of each token a linear probe tries to read: a number (scored by R²) or a yes/no (1/0, scored by accuracy). */
export interface ProbeTarget {
  name: string;
  /** One value per row of the stream (example-major: B·T). */
  values: ArrayLike<number>;
  binary: boolean;
}

export interface ProbeTable {
  /** The targets in column order; a yes/no target also gives the accuracy of always answering its commoner value. */
  targets: Array<{ name: string; binary: boolean; baseline?: number }>;
  /** Per layer of the stream: the held-out score of each target (R², or accuracy for yes/no). */
  layers: Array<{ name: string; scores: number[] }>;
}

/**
 * Linear probes on each layer of a residual stream ([B, T, C] per layer),
 * for any model: rows whose `keep` flag is 0 (padding) are left out; the
 * first ¾ of the B examples fit the probes, the rest score them — whole
 * examples, so a probe never sees the held-out sentence or image.
 */
export function probeStream(stream: Tensor[], keep: Uint8Array, targets: ProbeTarget[], names: string[]): ProbeTable {
  const [B, T, C] = stream[0]!.shape as [number, number, number];
  const trainExamples = Math.max(1, Math.floor((B * 3) / 4));
  if (trainExamples >= B) throw new Error('probes need at least 2 examples');
  const rows = Array.from({ length: B * T }, (_, r) => r).filter((r) => keep[r] === 1);
  const trainRows = rows.filter((r) => r < trainExamples * T).length;
  const kept = targets.map((t) => Float64Array.from(rows, (r) => t.values[r]!));
  const held = kept.map((v) => v.subarray(trainRows));
  const header = targets.map((t, k) => {
    if (!t.binary) return { name: t.name, binary: false };
    const ones = held[k]!.reduce((a, b) => a + b, 0);
    return { name: t.name, binary: true, baseline: Math.max(ones, held[k]!.length - ones) / Math.max(1, held[k]!.length) };
  });
  const layers = stream.map((h, i) => {
    const features = new Float32Array(rows.length * C);
    rows.forEach((r, n) => features.set(h.data.subarray(r * C, (r + 1) * C), n * C));
    const { predictions } = fitProbes(features, rows.length, C, kept, trainRows);
    const scores = targets.map((t, k) => t.binary
      ? predictions[k]!.filter((p, n) => (p > 0.5 ? 1 : 0) === held[k]![n]).length / Math.max(1, held[k]!.length)
      : rSquared(held[k]!, predictions[k]!));
    return { name: names[i]!, scores };
  });
  return { targets: header, layers };
}

/** Each row's position in its example, scaled to 0…1 (rows B·T). */
export const positionTarget = (B: number, T: number): ProbeTarget =>
  ({ name: 'position', binary: false, values: Float64Array.from({ length: B * T }, (_, r) => (r % T) / Math.max(1, T - 1)) });
