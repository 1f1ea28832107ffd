import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { ImageSet } from './image_set.js';

/**
 * Captions for Fashion-MNIST that say more than the class: attn places each
 * 28×28 item on a wider canvas at a random horizontal position, then MEASURES
 * the picture — how bright the item is, how much of its square it covers,
 * where its centre of mass sits — and writes the caption from the label and
 * those measurements: "a dark small trouser on the left".
 *
 * Fashion-MNIST's items are all centred, so without the canvas every caption
 * would say "in the middle"; brightness and size vary by themselves.
 */

/** Fashion-MNIST's classes as caption words, in label order. */
export const FASHION_WORDS = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'];

/** Canvas width for captioning: the 28-pixel item slides over 14 pixels of room. */
export const CAPTION_CANVAS_WIDTH = 42;

/** A pixel brighter than this (of 255) belongs to the item, not the background. */
const FOREGROUND = 30;
/** Mean brightness of the item's pixels below which it is "dark" (Fashion-MNIST's items split about 40/60). */
const DARK_BELOW = 150;
/** Fraction of a 28×28 square the item covers below which it is "small" (about the median). */
const SMALL_BELOW = 0.45;

export const PROPERTIES = ['brightness', 'size', 'position'] as const;
export type Property = (typeof PROPERTIES)[number];
export type Measured = Record<Property, string>;

/** The words each property can take, as they appear in captions. */
export const PROPERTY_WORDS: Record<Property, string[]> = {
  brightness: ['dark', 'bright'],
  size: ['small', 'large'],
  position: ['on the left', 'in the middle', 'on the right'],
};

/**
 * Measure one grayscale image (row-major bytes, height × width): brightness
 * (mean value of the item's pixels), size (item pixels per 28×28 square),
 * position (the item's centre of mass, in thirds of the width).
 */
export function measureImage(pixels: Uint8Array, height: number, width: number): Measured {
  let count = 0;
  let sum = 0;
  let cx = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = pixels[y * width + x]!;
      if (v <= FOREGROUND) continue;
      count++;
      sum += v;
      cx += x;
    }
  }
  const centre = count ? (cx / count + 0.5) / width : 0.5;
  return {
    brightness: count && sum / count >= DARK_BELOW ? 'bright' : 'dark',
    size: count / (height * height) < SMALL_BELOW ? 'small' : 'large',
    position: centre < 0.45 ? 'on the left' : centre > 0.55 ? 'on the right' : 'in the middle',
  };
}

/** "a dark small trouser on the left". */
export function writeCaption(classWord: string, m: Measured): string {
  return `a ${m.brightness} ${m.size} ${classWord} ${m.position}`;
}

/** Read a caption back into its parts (null where the caption does not follow the grammar). */
export function parseCaption(caption: string): { classWord: string | null } & Record<Property, string | null> {
  const find = (words: string[]): string | null => words.find((w) => ` ${caption} `.includes(` ${w} `)) ?? null;
  // "shirt" is inside "t-shirt" only with the hyphen, and " shirt " needs spaces: no false match.
  return { classWord: find(FASHION_WORDS), brightness: find(PROPERTY_WORDS.brightness), size: find(PROPERTY_WORDS.size), position: find(PROPERTY_WORDS.position) };
}

export interface CaptionedImages {
  /** The canvases: grayscale, 28 × CAPTION_CANVAS_WIDTH; labels are Fashion-MNIST's. */
  images: ImageSet;
  captions: string[];
}

/** Each 28×28 item pasted at a random horizontal offset on a black canvas, then measured and captioned. */
export function captionFashion(set: ImageSet, seed: number): CaptionedImages {
  if (set.channels !== 1 || set.height !== 28 || set.width !== 28) throw new UserError(`captioning expects Fashion-MNIST's 28×28 grayscale images, got ${set.width}×${set.height}×${set.channels}`);
  if (set.classes.length !== FASHION_WORDS.length) throw new UserError(`captioning expects Fashion-MNIST's ${FASHION_WORDS.length} classes, found ${set.classes.length}`);
  const rng = new Rng(seed);
  const H = 28;
  const W = CAPTION_CANVAS_WIDTH;
  const pixels = new Uint8Array(set.count * H * W);
  const captions: string[] = [];
  for (let n = 0; n < set.count; n++) {
    const dx = rng.int(W - 28 + 1);
    for (let y = 0; y < H; y++) pixels.set(set.pixels.subarray((n * 28 + y) * 28, (n * 28 + y + 1) * 28), (n * H + y) * W + dx);
    const m = measureImage(pixels.subarray(n * H * W, (n + 1) * H * W), H, W);
    captions.push(writeCaption(FASHION_WORDS[set.labels[n]!]!, m));
  }
  return { images: { ...set, pixels, width: W, classes: FASHION_WORDS }, captions };
}

/** Caption vocabulary: padding, begin, end, then every word the grammar can write. */
export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
export function captionVocabulary(): string[] {
  const words = new Set<string>(['a']);
  for (const w of [...FASHION_WORDS, ...Object.values(PROPERTY_WORDS).flat()]) for (const part of w.split(' ')) words.add(part);
  return ['<pad>', '<bos>', '<eos>', ...[...words].sort()];
}

/** Caption words → ids, ending with EOS; a word outside the vocabulary is an error. */
export function encodeCaption(caption: string, vocab: string[]): Int32Array {
  const index = new Map(vocab.map((w, i) => [w, i]));
  return Int32Array.from([...caption.split(' ').map((w) => {
    const id = index.get(w);
    if (id === undefined) throw new UserError(`caption word "${w}" is not in the vocabulary`);
    return id;
  }), EOS]);
}

/** Ids → caption text, stopping at EOS. */
export function decodeCaption(ids: ArrayLike<number>, vocab: string[]): string {
  const words: string[] = [];
  for (let i = 0; i < ids.length && ids[i] !== EOS; i++) if (ids[i] !== PAD && ids[i] !== BOS) words.push(vocab[ids[i]!] ?? '?');
  return words.join(' ');
}
