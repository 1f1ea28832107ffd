import { PNG } from 'pngjs';

/** An RGBA picture, 8 bits per channel, row by row. */
export interface Picture {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/** The PNG file bytes of a picture (pngjs, the codec src/data/image_folder.ts reads with). */
export function encodePng(p: Picture): Uint8Array {
  if (p.rgba.length !== p.width * p.height * 4) throw new Error(`a ${p.width}×${p.height} picture needs ${p.width * p.height * 4} RGBA bytes, got ${p.rgba.length}`);
  const png = new PNG({ width: p.width, height: p.height });
  png.data = Buffer.from(p.rgba.buffer, p.rgba.byteOffset, p.rgba.byteLength);
  return new Uint8Array(PNG.sync.write(png));
}
