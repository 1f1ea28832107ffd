/**
 * Recycles activation and gradient buffers between training steps. Every
 * step needs the same set of intermediate arrays; allocating them anew each
 * time makes the garbage collector and the page-zeroing of fresh memory a
 * visible share of a fast step. Buffers come back zeroed.
 */
const free = new Map<number, Float32Array[]>();
const MAX_PER_SIZE = 256;

export function takeZeroed(n: number): Float32Array {
  const list = free.get(n);
  const buf = list?.pop();
  if (buf) {
    buf.fill(0);
    return buf;
  }
  return new Float32Array(n);
}

/** Hand back a buffer nobody references any more. */
export function giveBack(buf: Float32Array): void {
  if (buf.byteOffset !== 0 || buf.length !== buf.buffer.byteLength / 4) return; // views of shared storage stay out
  let list = free.get(buf.length);
  if (!list) free.set(buf.length, (list = []));
  if (list.length < MAX_PER_SIZE) list.push(buf);
}
