import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../util/errors.js';
import type { ImageSet } from './image_set.js';

/** One IDX array: its dimensions and its bytes (attn reads the unsigned-byte type only, which MNIST uses). */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;

/** Read the file, gunzipping when it is gzip (by its magic bytes, not its name). */
function readMaybeGzip(path: string): Uint8Array {
  if (!existsSync(path)) throw new UserError(`${path}: no such file`);
  const raw = readFileSync(path);
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new UserError(`${path}: corrupt gzip data (${(e as Error).message})`);
  }
}

/**
 * Parse the IDX format (LeCun's MNIST files): two zero bytes, a type byte,
 * the number of dimensions, each dimension as a big-endian 32-bit integer,
 * then the values.
 */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new UserError(`${source}: not an IDX file (bad magic number)`);
  if (bytes[2] !== UBYTE) throw new UserError(`${source}: IDX value type 0x${bytes[2]!.toString(16).padStart(2, '0')} is not supported (attn reads unsigned bytes, 0x08)`);
  const rank = bytes[3]!;
  if (rank < 1 || rank > 4) throw new UserError(`${source}: IDX file with ${rank} dimensions (expected 1 to 4)`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw new UserError(`${source}: IDX file truncated in its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((p, q) => p * q, 1);
  if (bytes.length !== header + n) {
    throw new UserError(`${source}: IDX dimensions [${dims.join(', ')}] need ${header + n} bytes but the file has ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(header) };
}

export function readIdx(path: string): IdxArray {
  return parseIdx(readMaybeGzip(path), path);
}

/**
 * An images file ([N, H, W], or [N, H, W, C]) and its labels file ([N]) as
 * an ImageSet. Classes are the label values 0 … max, named by their digits.
 */
export function readIdxImages(imagesPath: string, labelsPath: string): ImageSet {
  const images = readIdx(imagesPath);
  const labels = readIdx(labelsPath);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new UserError(`${imagesPath}: expected images [count, height, width], got dimensions [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) throw new UserError(`${labelsPath}: expected labels [count], got dimensions [${labels.dims.join(', ')}]`);
  const [count, height, width, channels = 1] = images.dims as [number, number, number, number?];
  if (labels.dims[0] !== count) throw new UserError(`${labelsPath} has ${labels.dims[0]} labels but ${imagesPath} has ${count} images`);
  let max = 0;
  for (const l of labels.data) max = Math.max(max, l);
  return {
    pixels: images.data,
    labels: Int32Array.from(labels.data),
    count, height, width, channels,
    classes: Array.from({ length: max + 1 }, (_, i) => String(i)),
  };
}
