import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../src/util/rng.js';

/** A grayscale image with a filled rectangle [x0, x1) × [y0, y1) of value v. */
export function rect(width: number, height: number, x0: number, x1: number, y0: number, y1: number, v: number): Uint8Array {
  const px = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) px[y * width + x] = v;
  return px;
}

/** A Fashion-MNIST stand-in (IDX files, `counts` images per split): class k is a bar 4 + 2k pixels wide, dark or bright at random. */
export function writeFakeFashion(dir: string, counts: Record<string, number>, seed = 4): void {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  for (const [split, n] of Object.entries(counts)) {
    const pixels = new Uint8Array(n * 28 * 28);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 10;
      const w = 4 + 2 * labels[i]!;
      pixels.set(rect(28, 28, 14 - w / 2, 14 + w / 2, 2, 26, rng.random() < 0.5 ? 90 : 230), i * 784);
    }
    const idx = (dims: number[], data: Uint8Array): Buffer => {
      const header = Buffer.alloc(4 + 4 * dims.length);
      header[2] = 8;
      header[3] = dims.length;
      dims.forEach((d, k) => header.writeUInt32BE(d, 4 + 4 * k));
      return Buffer.concat([header, data]);
    };
    writeFileSync(join(dir, `${split}-images-idx3-ubyte`), idx([n, 28, 28], pixels));
    writeFileSync(join(dir, `${split}-labels-idx1-ubyte`), idx([n], labels));
  }
}
