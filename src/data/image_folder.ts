import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { UserError } from '../util/errors.js';
import type { ImageSet } from './image_set.js';

interface Decoded {
  path: string;
  width: number;
  height: number;
  /** RGBA, 8 bits per channel (pngjs expands every PNG colour type to this). */
  rgba: Uint8Array;
  gray: boolean;
}

function decode(path: string): Decoded {
  if (!existsSync(path)) throw new UserError(`${path}: no such file`);
  let png;
  try {
    png = PNG.sync.read(readFileSync(path));
  } catch (e) {
    throw new UserError(`${path}: not a readable PNG (${(e as Error).message})`);
  }
  return { path, width: png.width, height: png.height, rgba: png.data, gray: !png.color };
}

const isDir = (p: string): boolean => statSync(p).isDirectory();

/** The class names of a folder: its subfolders, sorted so that the class indices do not depend on the file system. */
export function classFolders(dir: string): string[] {
  return readdirSync(dir).filter((n) => !n.startsWith('.') && isDir(join(dir, n))).sort();
}

/** The class folders holding at least one file that `usable` accepts: an empty folder is not a class. */
export function usableClassFolders(dir: string, usable: (file: string) => boolean): string[] {
  return classFolders(dir).filter((n) => readdirSync(join(dir, n)).some(usable));
}

const isPng = (file: string): boolean => file.toLowerCase().endsWith('.png');

/**
 * A folder of PNG images, one subfolder per class (`dir/cat/1.png`,
 * `dir/dog/7.png`, …); a subfolder without PNG files is not a class. Every
 * image must have the same size. The set is grayscale when every file is,
 * else RGB (gray files repeated over R, G, B); alpha is dropped. `classes`
 * fixes the class order (a test split must use the training split's).
 */
export function readImageFolder(dir: string, classes: string[] = usableClassFolders(dir, isPng)): ImageSet {
  if (classes.length === 0) {
    throw new UserError(classFolders(dir).length ? `${dir}: no .png files in the class subfolders` : `${dir}: no class subfolders (expected one folder of PNG images per class)`);
  }
  const found = usableClassFolders(dir, isPng);
  const unknown = found.filter((c) => !classes.includes(c));
  if (unknown.length) throw new UserError(`${join(dir, unknown[0]!)}: class "${unknown[0]}" is not among the training classes (${classes.join(', ')})`);
  const images: Decoded[] = [];
  const labels: number[] = [];
  classes.forEach((name, label) => {
    const sub = join(dir, name);
    if (!found.includes(name)) return;
    for (const file of readdirSync(sub).filter(isPng).sort()) {
      const img = decode(join(sub, file));
      const first = images[0];
      if (first && (img.width !== first.width || img.height !== first.height)) {
        throw new UserError(`${img.path} is ${img.width}×${img.height} but ${first.path} is ${first.width}×${first.height}: all images must have one size`);
      }
      images.push(img);
      labels.push(label);
    }
  });
  const first = images[0];
  if (!first) throw new UserError(`${dir}: no .png files in the class subfolders`);
  const channels = images.every((i) => i.gray) ? 1 : 3;
  const size = first.width * first.height;
  const pixels = new Uint8Array(images.length * size * channels);
  images.forEach((img, n) => {
    for (let p = 0; p < size; p++) for (let c = 0; c < channels; c++) pixels[(n * size + p) * channels + c] = img.rgba[p * 4 + c]!;
  });
  return { pixels, labels: Int32Array.from(labels), count: images.length, height: first.height, width: first.width, channels, classes };
}

/**
 * Loose PNG files (e.g. to classify) as an unlabelled ImageSet of `channels`
 * channels and the given size; a file of another size is an error naming it,
 * and so, with exactChannels, is one of other channels (else colour is
 * averaged to gray for a grayscale model).
 */
export function readPngFiles(paths: string[], size: { height: number; width: number; channels: number }, o: { exactChannels?: boolean } = {}): ImageSet {
  const n = size.height * size.width;
  const pixels = new Uint8Array(paths.length * n * size.channels);
  paths.forEach((path, k) => {
    const img = decode(path);
    if (img.width !== size.width || img.height !== size.height) {
      throw new UserError(`${path} is ${img.width}×${img.height} but the model takes ${size.width}×${size.height} images`);
    }
    // exactChannels: a model whose measured properties include brightness takes no silent colour conversion.
    if (o.exactChannels && (img.gray ? 1 : 3) !== size.channels) {
      throw new UserError(`${path} is ${img.gray ? 'grayscale (1 channel)' : 'a colour image (3 channels)'} but the model takes ${size.channels === 1 ? 'grayscale (1 channel)' : `${size.channels}-channel`} images`);
    }
    for (let p = 0; p < n; p++) {
      for (let c = 0; c < size.channels; c++) {
        // A colour image given to a grayscale model is averaged down to one channel.
        const v = size.channels === 1 && !img.gray ? (img.rgba[p * 4]! + img.rgba[p * 4 + 1]! + img.rgba[p * 4 + 2]!) / 3 : img.rgba[p * 4 + c]!;
        pixels[(k * n + p) * size.channels + c] = Math.round(v);
      }
    }
  });
  return { pixels, labels: new Int32Array(paths.length).fill(-1), count: paths.length, ...size, classes: [] };
}
