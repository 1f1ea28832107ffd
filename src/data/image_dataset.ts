import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { readIdxImages } from './idx.js';
import { classFolders, readImageFolder } from './image_folder.js';
import { splitHeldOut, type ImageSet } from './image_set.js';

export interface ImageDataset {
  train: ImageSet;
  test: ImageSet;
  /** How the data was found, for logs: "IDX files", "PNG folders train/ and test/", … */
  source: string;
}

/** The IDX file of one split and kind in `dir` (MNIST naming: train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]). */
function idxFile(dir: string, split: 'train' | 't10k', kind: 'images' | 'labels'): string | null {
  const re = new RegExp(`^${split}-${kind}[.-]idx[13]-ubyte(\\.gz)?$`);
  const name = readdirSync(dir).find((n) => re.test(n));
  return name ? join(dir, name) : null;
}

/**
 * Find and load an image classification dataset in `dir`:
 *  - IDX files (MNIST, Fashion-MNIST): train-images/train-labels and t10k-images/t10k-labels;
 *  - or `train/` and `test/` folders, each with one PNG subfolder per class;
 *  - or PNG class subfolders directly, a random `heldOut` fraction becoming the test set.
 */
export function loadImageDataset(dir: string, { heldOut = 0.1, seed = 0 }: { heldOut?: number; seed?: number } = {}): ImageDataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`--data ${dir}: no such directory`);
  const idx = { trainImages: idxFile(dir, 'train', 'images'), trainLabels: idxFile(dir, 'train', 'labels'), testImages: idxFile(dir, 't10k', 'images'), testLabels: idxFile(dir, 't10k', 'labels') };
  if (Object.values(idx).some((p) => p !== null)) {
    const missing = Object.entries(idx).filter(([, p]) => p === null).map(([k]) => k);
    if (missing.length) throw new UserError(`--data ${dir}: IDX dataset is incomplete, missing ${missing.join(', ')} (expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])`);
    const train = readIdxImages(idx.trainImages!, idx.trainLabels!);
    const test = readIdxImages(idx.testImages!, idx.testLabels!);
    // An empty split would be found out only after training: an empty test set scores NaN.
    if (train.count === 0) throw new UserError(`${idx.trainImages}: no images (the training split is empty)`);
    if (test.count === 0) throw new UserError(`${idx.testImages}: no images (the test split is empty; nothing to score the model on)`);
    if (test.height !== train.height || test.width !== train.width || test.channels !== train.channels) {
      throw new UserError(`${idx.testImages}: images are ${test.width}×${test.height}×${test.channels} but the training images are ${train.width}×${train.height}×${train.channels}`);
    }
    // Label files name classes by number: the two splits share the larger list.
    const classes = train.classes.length >= test.classes.length ? train.classes : test.classes;
    return { train: { ...train, classes }, test: { ...test, classes }, source: 'IDX files' };
  }
  const folders = classFolders(dir);
  if (folders.includes('train') && folders.includes('test')) {
    const train = readImageFolder(join(dir, 'train'));
    const test = readImageFolder(join(dir, 'test'), train.classes);
    if (test.height !== train.height || test.width !== train.width) {
      throw new UserError(`${join(dir, 'test')}: images are ${test.width}×${test.height} but the training images are ${train.width}×${train.height}`);
    }
    if (test.channels !== train.channels) {
      throw new UserError(`${join(dir, 'test')}: images are ${test.channels === 1 ? 'grayscale' : 'RGB'} but the training images are ${train.channels === 1 ? 'grayscale' : 'RGB'}`);
    }
    return { train, test, source: 'PNG folders train/ and test/' };
  }
  if (folders.length === 0) {
    throw new UserError(`--data ${dir}: found neither IDX files (train-images-idx3-ubyte[.gz], …) nor PNG class subfolders`);
  }
  const all = readImageFolder(dir);
  if (all.count < 2) throw new UserError(`--data ${dir}: ${all.count} image; need at least 2 to hold some out for testing`);
  const { train, test } = splitHeldOut(all, heldOut, new Rng(seed));
  if (train.count === 0) throw new UserError(`--data ${dir}: holding out ${Math.round(heldOut * 100)}% of ${all.count} images leaves none to train on; lower --held-out`);
  return { train, test, source: `PNG class folders, ${Math.round(heldOut * 100)}% held out for testing` };
}
