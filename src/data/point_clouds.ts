import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/**
 * Labelled point clouds in memory: each cloud is a Float32Array of x, y, z
 * triples (any number of points), with one class index into `classes`.
 * `names` says where each cloud came from (a file, or "sphere #12"), so an
 * error can point at it.
 */
export interface PointCloudSet {
  clouds: Float32Array[];
  labels: Int32Array;
  classes: string[];
  names: string[];
}

export interface PointCloudDataset {
  train: PointCloudSet;
  test: PointCloudSet;
  /** How the data was made or found, for logs. */
  source: string;
}

/** The shapes `attn pointcloud train --task shapes` learns to tell apart. */
export const SHAPES = ['sphere', 'cube', 'cylinder', 'cone', 'torus', 'pyramid'] as const;
export type ShapeName = (typeof SHAPES)[number];

export interface ShapeOptions {
  /** Each cloud gets a point count drawn uniformly from [minPoints, maxPoints]. */
  minPoints?: number;
  maxPoints?: number;
  /** Standard deviation of the Gaussian jitter added to every coordinate (the shape has radius about 1). */
  noise?: number;
  /** Turn each cloud by a uniformly random 3-D rotation. */
  rotate?: boolean;
}

type Vec3 = [number, number, number];

const uniform = (rng: Rng, lo: number, hi: number): number => lo + (hi - lo) * rng.random();

/** A point uniformly on the triangle a, b, c (the square-root trick keeps the density flat). */
function onTriangle(rng: Rng, a: Vec3, b: Vec3, c: Vec3): Vec3 {
  const r1 = Math.sqrt(rng.random());
  const r2 = rng.random();
  const [wa, wb, wc] = [1 - r1, r1 * (1 - r2), r1 * r2];
  return [wa * a[0] + wb * b[0] + wc * c[0], wa * a[1] + wb * b[1] + wc * c[1], wa * a[2] + wb * b[2] + wc * c[2]];
}

export function triangleArea(a: Vec3, b: Vec3, c: Vec3): number {
  const u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
  const n = [u[1]! * v[2]! - u[2]! * v[1]!, u[2]! * v[0]! - u[0]! * v[2]!, u[0]! * v[1]! - u[1]! * v[0]!];
  return 0.5 * Math.hypot(n[0]!, n[1]!, n[2]!);
}

/** `count` points uniformly over a triangle mesh's surface: pick a triangle in proportion to its area, then a point on it. */
export function sampleTriangles(triangles: Array<[Vec3, Vec3, Vec3]>, count: number, rng: Rng): Float32Array {
  const cumulative: number[] = [];
  let total = 0;
  for (const [a, b, c] of triangles) cumulative.push((total += triangleArea(a, b, c)));
  const out = new Float32Array(count * 3);
  for (let i = 0; i < count; i++) {
    const r = rng.random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    const [a, b, c] = triangles[lo]!;
    out.set(onTriangle(rng, a, b, c), i * 3);
  }
  return out;
}

/** One point on the surface of each shape, uniformly by area; `p` holds the shape's random proportions. */
const SURFACE: Record<ShapeName, (rng: Rng, p: number[]) => Vec3> = {
  // An ellipsoid close to a sphere: a random direction, stretched a little per axis.
  sphere: (rng, [sx, sy, sz]) => {
    const [x, y, z] = [rng.normal(), rng.normal(), rng.normal()];
    const n = Math.hypot(x, y, z) || 1;
    return [(sx! * x) / n, (sy! * y) / n, (sz! * z) / n];
  },
  // A box: a face chosen by its area, then a uniform point on it.
  cube: (rng, [sx, sy, sz]) => {
    const areas = [sy! * sz!, sx! * sz!, sx! * sy!];
    let r = rng.random() * (areas[0]! + areas[1]! + areas[2]!);
    const axis = r < areas[0]! ? 0 : (r -= areas[0]!) < areas[1]! ? 1 : 2;
    const s = [sx!, sy!, sz!];
    const p = s.map((v) => uniform(rng, -v, v)) as Vec3;
    p[axis] = rng.random() < 0.5 ? -s[axis]! : s[axis]!;
    return p;
  },
  // Radius 1, height h: the side (area 2πh) or one of the two caps (π each).
  cylinder: (rng, [h]) => {
    const t = uniform(rng, 0, 2 * Math.PI);
    if (rng.random() < (2 * h!) / (2 * h! + 2)) return [Math.cos(t), Math.sin(t), uniform(rng, -h! / 2, h! / 2)];
    const r = Math.sqrt(rng.random());
    return [r * Math.cos(t), r * Math.sin(t), rng.random() < 0.5 ? -h! / 2 : h! / 2];
  },
  // Base radius 1 at z = 0, apex at z = h: the slanted side (area π·slant) or the base (π).
  cone: (rng, [h]) => {
    const slant = Math.hypot(1, h!);
    const t = uniform(rng, 0, 2 * Math.PI);
    const r = Math.sqrt(rng.random());
    if (rng.random() < slant / (slant + 1)) return [r * Math.cos(t), r * Math.sin(t), h! * (1 - r)];
    return [r * Math.cos(t), r * Math.sin(t), 0];
  },
  // Ring radius 1, tube radius a; the outer side has more area, so angles are drawn by rejection.
  torus: (rng, [a]) => {
    for (;;) {
      const [t, u] = [uniform(rng, 0, 2 * Math.PI), uniform(rng, 0, 2 * Math.PI)];
      if (rng.random() * (1 + a!) > 1 + a! * Math.cos(u)) continue;
      const ring = 1 + a! * Math.cos(u);
      return [ring * Math.cos(t), ring * Math.sin(t), a! * Math.sin(u)];
    }
  },
  // Square base of side 2, apex at height h: four triangles and the base (two triangles), by area.
  pyramid: (rng, [h]) => {
    const apex: Vec3 = [0, 0, h!];
    const c: Vec3[] = [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]];
    const faces: Array<[Vec3, Vec3, Vec3]> = [[c[0]!, c[1]!, apex], [c[1]!, c[2]!, apex], [c[2]!, c[3]!, apex], [c[3]!, c[0]!, apex], [c[0]!, c[1]!, c[2]!], [c[0]!, c[2]!, c[3]!]];
    const areas = faces.map(([x, y, z]) => triangleArea(x, y, z));
    let r = rng.random() * areas.reduce((s, v) => s + v, 0);
    let f = 0;
    while (f < faces.length - 1 && (r -= areas[f]!) > 0) f++;
    const [x, y, z] = faces[f]!;
    return onTriangle(rng, x, y, z);
  },
};

/** Each shape's random proportions, so that no two spheres or cones are quite alike. */
const PROPORTIONS: Record<ShapeName, (rng: Rng) => number[]> = {
  sphere: (rng) => [uniform(rng, 0.85, 1.15), uniform(rng, 0.85, 1.15), uniform(rng, 0.85, 1.15)],
  cube: (rng) => [uniform(rng, 0.8, 1.2), uniform(rng, 0.8, 1.2), uniform(rng, 0.8, 1.2)],
  cylinder: (rng) => [uniform(rng, 1.4, 2.6)],
  cone: (rng) => [uniform(rng, 1.2, 2.4)],
  torus: (rng) => [uniform(rng, 0.25, 0.45)],
  pyramid: (rng) => [uniform(rng, 1.0, 2.0)],
};

/** A uniformly random rotation matrix (row-major 3×3), from a random unit quaternion. */
export function randomRotation(rng: Rng): number[] {
  let [w, x, y, z] = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
  const n = Math.hypot(w, x, y, z) || 1;
  [w, x, y, z] = [w / n, x / n, y / n, z / n];
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
    2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
    2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
  ];
}

/** Rotate x, y, z triples in place by a row-major 3×3 matrix. */
export function rotatePoints(points: Float32Array, m: number[]): Float32Array {
  for (let i = 0; i < points.length; i += 3) {
    const [x, y, z] = [points[i]!, points[i + 1]!, points[i + 2]!];
    points[i] = m[0]! * x + m[1]! * y + m[2]! * z;
    points[i + 1] = m[3]! * x + m[4]! * y + m[5]! * z;
    points[i + 2] = m[6]! * x + m[7]! * y + m[8]! * z;
  }
  return points;
}

/** One cloud of a shape: its points on the surface, jittered, and (if asked) turned at random. */
export function shapeCloud(shape: ShapeName, rng: Rng, o: ShapeOptions = {}): Float32Array {
  const { minPoints = 256, maxPoints = 1024, noise = 0.02, rotate = true } = o;
  const n = minPoints + rng.int(maxPoints - minPoints + 1);
  const p = PROPORTIONS[shape](rng);
  const points = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const [x, y, z] = SURFACE[shape](rng, p);
    points[i * 3] = x + noise * rng.normal();
    points[i * 3 + 1] = y + noise * rng.normal();
    points[i * 3 + 2] = z + noise * rng.normal();
  }
  return rotate ? rotatePoints(points, randomRotation(rng)) : points;
}

/** `perClass` clouds of every shape, interleaved (sphere, cube, …, sphere, cube, …), from `seed`. */
export function generateShapes(perClass: number, seed: number, o: ShapeOptions = {}): PointCloudSet {
  const rng = new Rng(seed);
  const clouds: Float32Array[] = [];
  const labels: number[] = [];
  const names: string[] = [];
  for (let i = 0; i < perClass; i++) {
    SHAPES.forEach((shape, label) => {
      clouds.push(shapeCloud(shape, rng, o));
      labels.push(label);
      names.push(`${shape} #${i}`);
    });
  }
  return { clouds, labels: Int32Array.from(labels), classes: [...SHAPES], names };
}

/**
 * The generated task: training clouds and a test set from other seeds, both
 * turned at random (the classifier must recognise a cone lying on its side).
 */
export function shapesDataset(trainPerClass: number, testPerClass: number, seed: number, o: ShapeOptions = {}): PointCloudDataset {
  return {
    train: generateShapes(trainPerClass, seed, o),
    test: generateShapes(testPerClass, seed + 1_000_003, { ...o, rotate: true }),
    source: `generated shapes (${SHAPES.join(', ')}), ${trainPerClass}/${testPerClass} per class, randomly rotated`,
  };
}

/** A cloud must be whole numbers of finite x, y, z triples; `source` names it in the error. */
export function checkCloud(points: Float32Array, source: string): void {
  if (points.length % 3 !== 0) throw new UserError(`${source}: ${points.length} coordinates is not a whole number of x, y, z points`);
  for (let i = 0; i < points.length; i++) {
    if (!Number.isFinite(points[i]!)) throw new UserError(`${source}: point ${Math.floor(i / 3) + 1} has a coordinate that is not a finite number (${points[i]})`);
  }
}
