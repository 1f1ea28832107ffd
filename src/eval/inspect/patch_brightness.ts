/**
 * The brightness of each patch of a grayscale picture (the mean of its
 * pixels, 0…1), with the whole picture's first — the value a probe reads
 * from the class token — then the patches in reading order, as a ViT
 * numbers its tokens.
 */
export function patchBrightness(pixels: Uint8Array, H: number, W: number, p: number): number[] {
  const mean = (ys: number, xs: number, h: number, w: number): number => {
    let s = 0;
    for (let y = ys; y < ys + h; y++) for (let x = xs; x < xs + w; x++) s += pixels[y * W + x]!;
    return s / (h * w * 255);
  };
  const cols = W / p;
  return [mean(0, 0, H, W), ...Array.from({ length: (H / p) * cols }, (_, i) => mean(Math.floor(i / cols) * p, (i % cols) * p, p, p))];
}
