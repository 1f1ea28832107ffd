import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { classFolders, usableClassFolders } from './image_folder.js';
import { shuffled } from './image_set.js';
import { checkCloud, sampleTriangles, type PointCloudDataset, type PointCloudSet } from './point_clouds.js';

/** The point file formats attn reads. */
export const POINT_FILE_EXTENSIONS = ['.xyz', '.off', '.ply'];

/** Points sampled from the surface of a mesh (.off with faces), so a cube of 8 corners still becomes a cloud. */
export const MESH_SAMPLES = 1024;

/** A number from a text field, or a one-line error naming the file and line. */
function coordinate(field: string | undefined, path: string, line: number, what: string): number {
  if (field === undefined) throw new UserError(`${path}:${line}: missing ${what}`);
  const v = Number(field);
  if (!Number.isFinite(v)) throw new UserError(`${path}:${line}: ${what} "${field}" is not a finite number`);
  return v;
}

/** .xyz: one point per line, "x y z" (further columns, e.g. normals, are ignored); '#' starts a comment. */
function readXyz(text: string, path: string): Float32Array {
  const out: number[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const f = line.split(/[\s,]+/);
    if (f.length < 3) throw new UserError(`${path}:${i + 1}: expected x y z, found ${f.length} value${f.length === 1 ? '' : 's'}`);
    out.push(coordinate(f[0], path, i + 1, 'x'), coordinate(f[1], path, i + 1, 'y'), coordinate(f[2], path, i + 1, 'z'));
  });
  return Float32Array.from(out);
}

/**
 * .off (Object File Format, as in ModelNet): "OFF", then "vertices faces
 * edges", the vertices, then faces "k i1 … ik". A mesh is sampled on its
 * surface (faces split into triangle fans, picked by area); a file without
 * faces is taken as its vertices.
 */
function readOff(text: string, path: string): Float32Array {
  const lines = text.split(/\r?\n/).map((l, i) => ({ n: i + 1, f: l.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean) })).filter((l) => l.f.length > 0);
  const head = lines.shift();
  if (!head || !head.f[0]!.startsWith('OFF')) throw new UserError(`${path}: not an OFF file (the first line must be "OFF")`);
  // ModelNet's files sometimes run the counts into the header: "OFF490 518 0".
  const rest = head.f[0]!.slice(3);
  const counts = rest ? [rest, ...head.f.slice(1)] : head.f.length > 1 ? head.f.slice(1) : lines.shift()?.f ?? [];
  const countLine = rest || head.f.length > 1 ? head.n : head.n + 1;
  const nv = coordinate(counts[0], path, countLine, 'vertex count');
  const nf = coordinate(counts[1], path, countLine, 'face count');
  if (lines.length < nv + nf) throw new UserError(`${path}: header promises ${nv} vertices and ${nf} faces but the file has ${lines.length} lines after it`);
  const v: Array<[number, number, number]> = lines.slice(0, nv).map((l) => [coordinate(l.f[0], path, l.n, 'x'), coordinate(l.f[1], path, l.n, 'y'), coordinate(l.f[2], path, l.n, 'z')]);
  if (nf === 0) return Float32Array.from(v.flat());
  const triangles: Array<[[number, number, number], [number, number, number], [number, number, number]]> = [];
  for (const l of lines.slice(nv, nv + nf)) {
    const k = coordinate(l.f[0], path, l.n, 'corner count');
    const idx = l.f.slice(1, 1 + k).map((s) => coordinate(s, path, l.n, 'vertex index'));
    if (idx.length !== k || idx.some((i) => !Number.isInteger(i) || i < 0 || i >= nv)) throw new UserError(`${path}:${l.n}: face needs ${k} vertex indices below ${nv}`);
    for (let j = 1; j + 1 < k; j++) triangles.push([v[idx[0]!]!, v[idx[j]!]!, v[idx[j + 1]!]!]);
  }
  return sampleTriangles(triangles, MESH_SAMPLES, new Rng(1));
}

const PLY_TYPES: Record<string, [number, (d: DataView, o: number) => number]> = {
  char: [1, (d, o) => d.getInt8(o)], int8: [1, (d, o) => d.getInt8(o)], uchar: [1, (d, o) => d.getUint8(o)], uint8: [1, (d, o) => d.getUint8(o)],
  short: [2, (d, o) => d.getInt16(o, true)], int16: [2, (d, o) => d.getInt16(o, true)], ushort: [2, (d, o) => d.getUint16(o, true)], uint16: [2, (d, o) => d.getUint16(o, true)],
  int: [4, (d, o) => d.getInt32(o, true)], int32: [4, (d, o) => d.getInt32(o, true)], uint: [4, (d, o) => d.getUint32(o, true)], uint32: [4, (d, o) => d.getUint32(o, true)],
  float: [4, (d, o) => d.getFloat32(o, true)], float32: [4, (d, o) => d.getFloat32(o, true)], double: [8, (d, o) => d.getFloat64(o, true)], float64: [8, (d, o) => d.getFloat64(o, true)],
};

/** .ply (ascii or binary_little_endian): the x, y, z properties of the vertex element, which must come first. */
function readPly(bytes: Buffer, path: string): Float32Array {
  const end = bytes.indexOf('end_header');
  if (bytes.subarray(0, 3).toString() !== 'ply' || end < 0) throw new UserError(`${path}: not a PLY file (expected "ply" … "end_header")`);
  const header = bytes.subarray(0, end).toString('latin1').split(/\r?\n/).map((l) => l.trim().split(/\s+/));
  const format = header.find((l) => l[0] === 'format')?.[1];
  if (format !== 'ascii' && format !== 'binary_little_endian') throw new UserError(`${path}: PLY format ${format ?? '(none)'} is not supported (ascii or binary_little_endian)`);
  const elements = header.filter((l) => l[0] === 'element');
  if (elements[0]?.[1] !== 'vertex') throw new UserError(`${path}: the first PLY element must be "vertex"`);
  const count = Number(elements[0][2]);
  const start = header.findIndex((l) => l[0] === 'element');
  const props: Array<{ name: string; type: string }> = [];
  for (const l of header.slice(start + 1)) {
    if (l[0] !== 'property') break;
    if (l[1] === 'list') throw new UserError(`${path}: list properties on vertices are not supported`);
    props.push({ type: l[1]!, name: l[2]! });
  }
  const axes = ['x', 'y', 'z'].map((a) => props.findIndex((p) => p.name === a));
  const missing = ['x', 'y', 'z'].filter((_, i) => axes[i]! < 0);
  if (missing.length) throw new UserError(`${path}: the vertex element has no ${missing.join(', ')} propert${missing.length > 1 ? 'ies' : 'y'}`);
  const out = new Float32Array(count * 3);
  let bodyStart = end + 'end_header'.length;
  if (bytes[bodyStart] === 13) bodyStart++;
  bodyStart++;
  if (format === 'ascii') {
    const rows = bytes.subarray(bodyStart).toString('latin1').split(/\r?\n/).filter((l) => l.trim());
    if (rows.length < count) throw new UserError(`${path}: header promises ${count} vertices but the file has ${rows.length} rows`);
    for (let i = 0; i < count; i++) {
      const f = rows[i]!.trim().split(/\s+/);
      axes.forEach((a, k) => (out[i * 3 + k] = coordinate(f[a], path, header.length + 1 + i, 'xyz'[k]!)));
    }
    return out;
  }
  const types = props.map((p) => PLY_TYPES[p.type] ?? (() => { throw new UserError(`${path}: unknown PLY property type ${p.type}`); })());
  const offsets = types.reduce<number[]>((o, t, i) => [...o, o[i]! + t[0]], [0]);
  const stride = offsets[props.length]!;
  if (bytes.length - bodyStart < count * stride) throw new UserError(`${path}: header promises ${count} vertices of ${stride} bytes but the file is shorter`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + bodyStart, count * stride);
  for (let i = 0; i < count; i++) axes.forEach((a, k) => (out[i * 3 + k] = types[a]![1](view, i * stride + offsets[a]!)));
  return out;
}

/** Read one point file (.xyz, .off or .ply) as x, y, z triples; NaN, missing coordinates and malformed files are one-line errors. */
export function readPointFile(path: string): Float32Array {
  if (!existsSync(path)) throw new UserError(`${path}: no such file`);
  if (statSync(path).isDirectory()) throw new UserError(`${path} is a directory, not a point file (${POINT_FILE_EXTENSIONS.join(', ')})`);
  const ext = extname(path).toLowerCase();
  const bytes = readFileSync(path);
  const points = ext === '.xyz' ? readXyz(bytes.toString('utf8'), path)
    : ext === '.off' ? readOff(bytes.toString('utf8'), path)
    : ext === '.ply' ? readPly(bytes, path)
    : (() => { throw new UserError(`${path}: unknown point file type "${ext}" (expected ${POINT_FILE_EXTENSIONS.join(', ')})`); })();
  checkCloud(points, path);
  if (points.length === 0) throw new UserError(`${path}: no points`);
  return points;
}

const isPointFile = (file: string): boolean => POINT_FILE_EXTENSIONS.includes(extname(file).toLowerCase());

/**
 * A folder of point files, one subfolder per class (a subfolder without point
 * files is not a class); `classes` fixes the order (a test split uses the
 * training split's).
 */
export function readPointCloudFolder(dir: string, classes: string[] = usableClassFolders(dir, isPointFile)): PointCloudSet {
  if (classes.length === 0) {
    throw new UserError(classFolders(dir).length ? `${dir}: no ${POINT_FILE_EXTENSIONS.join('/')} files in the class subfolders` : `${dir}: no class subfolders (expected one folder of ${POINT_FILE_EXTENSIONS.join('/')} files per class)`);
  }
  const unknown = usableClassFolders(dir, isPointFile).filter((c) => !classes.includes(c));
  if (unknown.length) throw new UserError(`${join(dir, unknown[0]!)}: class "${unknown[0]}" is not among the training classes (${classes.join(', ')})`);
  const set: PointCloudSet = { clouds: [], labels: new Int32Array(0), classes, names: [] };
  const labels: number[] = [];
  classes.forEach((name, label) => {
    const sub = join(dir, name);
    if (!existsSync(sub)) return;
    for (const file of readdirSync(sub).filter(isPointFile).sort()) {
      set.clouds.push(readPointFile(join(sub, file)));
      set.names.push(join(sub, file));
      labels.push(label);
    }
  });
  if (labels.length === 0) throw new UserError(`${dir}: no ${POINT_FILE_EXTENSIONS.join('/')} files in the class subfolders`);
  set.labels = Int32Array.from(labels);
  return set;
}

/** The clouds at `indices`, in that order. */
export function cloudSubset(s: PointCloudSet, indices: ArrayLike<number>): PointCloudSet {
  const idx = Array.from(indices);
  return { clouds: idx.map((i) => s.clouds[i]!), labels: Int32Array.from(idx, (i) => s.labels[i]!), classes: s.classes, names: idx.map((i) => s.names[i]!) };
}

/**
 * A point-cloud dataset in `dir`: `train/` and `test/` folders of class
 * subfolders, or class subfolders directly with a random `heldOut` fraction
 * as the test set.
 */
export function loadPointCloudFolder(dir: string, { heldOut = 0.2, seed = 0 }: { heldOut?: number; seed?: number } = {}): PointCloudDataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`--data ${dir}: no such directory`);
  const folders = classFolders(dir);
  if (folders.includes('train') && folders.includes('test')) {
    const train = readPointCloudFolder(join(dir, 'train'));
    return { train, test: readPointCloudFolder(join(dir, 'test'), train.classes), source: 'point files in train/ and test/' };
  }
  const all = readPointCloudFolder(dir);
  if (all.clouds.length < 2) throw new UserError(`--data ${dir}: ${all.clouds.length} cloud; need at least 2 to hold some out for testing`);
  const order = shuffled(all.clouds.length, new Rng(seed));
  const nTest = Math.max(1, Math.round(all.clouds.length * heldOut));
  if (nTest >= all.clouds.length) throw new UserError(`--data ${dir}: holding out ${Math.round(heldOut * 100)}% of ${all.clouds.length} clouds leaves none to train on; lower --held-out`);
  return { train: cloudSubset(all, order.subarray(nTest)), test: cloudSubset(all, order.subarray(0, nTest)), source: `point files, ${Math.round(heldOut * 100)}% held out for testing` };
}
