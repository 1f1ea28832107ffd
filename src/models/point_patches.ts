import { UserError } from '../util/errors.js';

/**
 * A point cloud as tokens (Point-BERT / Point-MAE): pick `groups` centre
 * points spread over the shape by farthest-point sampling, gather each
 * centre's `groupSize` nearest neighbours, and express every neighbour
 * relative to its centre. Each patch is then a small local shape (an edge, a
 * flat bit, a rim) — the point-cloud "word" — and its centre says where it
 * sits, as a pixel patch's row and column do in a ViT.
 *
 * Like patchify, this is data preparation: no gradient, no backward.
 */
export interface PointPatches {
  /** [groups · groupSize · 3]: each patch's points minus its centre. */
  patches: Float32Array;
  /** [groups · 3]: the centres. */
  centres: Float32Array;
}

/** The cloud moved to its mean and scaled to fit the unit sphere: a shape's size and place say nothing of its class. */
export function normalizeCloud(points: Float32Array): Float32Array {
  const n = points.length / 3;
  const mean = [0, 0, 0];
  for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) mean[k]! += points[i * 3 + k]! / n;
  const out = new Float32Array(points.length);
  let radius = 0;
  for (let i = 0; i < n; i++) {
    let r2 = 0;
    for (let k = 0; k < 3; k++) {
      const v = points[i * 3 + k]! - mean[k]!;
      out[i * 3 + k] = v;
      r2 += v * v;
    }
    radius = Math.max(radius, r2);
  }
  radius = Math.sqrt(radius) || 1;
  for (let i = 0; i < out.length; i++) out[i]! /= radius;
  return out;
}

const dist2 = (p: Float32Array, i: number, j: number): number => {
  const [dx, dy, dz] = [p[i * 3]! - p[j * 3]!, p[i * 3 + 1]! - p[j * 3 + 1]!, p[i * 3 + 2]! - p[j * 3 + 2]!];
  return dx * dx + dy * dy + dz * dz;
};

/**
 * Farthest-point sampling: start at point 0, then repeatedly take the point
 * farthest from every point taken so far. The picks cover the shape evenly,
 * however unevenly it was sampled. Depends only on distances, so a rotated
 * cloud picks the same points.
 */
export function farthestPoints(points: Float32Array, count: number): Int32Array {
  const n = points.length / 3;
  const picked = new Int32Array(count);
  const nearest = new Float32Array(n).fill(Infinity);
  let current = 0;
  for (let g = 0; g < count; g++) {
    picked[g] = current;
    let far = 0;
    let farDist = -1;
    for (let i = 0; i < n; i++) {
      const d = Math.min(nearest[i]!, dist2(points, i, current));
      nearest[i] = d;
      if (d > farDist) [farDist, far] = [d, i];
    }
    current = far;
  }
  return picked;
}

/** Indices of the k points nearest to point `centre` (itself first), nearest first. */
export function nearestPoints(points: Float32Array, centre: number, k: number): Int32Array {
  const n = points.length / 3;
  // Keep the best k in a small sorted list: k is a few dozen, n a few thousand.
  const best = new Int32Array(k).fill(-1);
  const bestD = new Float32Array(k).fill(Infinity);
  for (let i = 0; i < n; i++) {
    const d = dist2(points, i, centre);
    if (d >= bestD[k - 1]!) continue;
    let j = k - 1;
    while (j > 0 && bestD[j - 1]! > d) {
      bestD[j] = bestD[j - 1]!;
      best[j] = best[j - 1]!;
      j--;
    }
    bestD[j] = d;
    best[j] = i;
  }
  return best;
}

/** The fewest points a cloud needs to be cut into `groups` patches of `groupSize`. */
export const pointsNeeded = (groups: number, groupSize: number): number => Math.max(groups, groupSize);

/** Cut one cloud into patch tokens; `source` names the cloud in the error when it has too few points. */
export function pointPatches(cloud: Float32Array, groups: number, groupSize: number, source = 'point cloud'): PointPatches {
  const n = cloud.length / 3;
  const need = pointsNeeded(groups, groupSize);
  if (n < need) throw new UserError(`${source}: ${n} point${n === 1 ? '' : 's'}, but the sampler needs at least ${need} (${groups} groups of ${groupSize} neighbours)`);
  const points = normalizeCloud(cloud);
  const centreIdx = farthestPoints(points, groups);
  const patches = new Float32Array(groups * groupSize * 3);
  const centres = new Float32Array(groups * 3);
  centreIdx.forEach((c, g) => {
    for (let k = 0; k < 3; k++) centres[g * 3 + k] = points[c * 3 + k]!;
    nearestPoints(points, c, groupSize).forEach((p, j) => {
      for (let k = 0; k < 3; k++) patches[(g * groupSize + j) * 3 + k] = points[p * 3 + k]! - points[c * 3 + k]!;
    });
  });
  return { patches, centres };
}
