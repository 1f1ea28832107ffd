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
  return n <= SMALL ? carve(n) : new Float32Array(n);
}

/*
 * Small buffers — decoding makes dozens per token, each a few hundred floats —
 * are carved out of shared slabs: creating an ArrayBuffer costs about a
 * microsecond in V8, a view of an existing one a fraction of that. Slab
 * memory is fresh (zeroed) and never handed out twice; a slab is freed with
 * its last view. Views start on 64-byte boundaries (one cache line).
 */
const SMALL = 1024;
const SLAB = 16384;
let slab = new Float32Array(0);
let used = 0;

function carve(n: number): Float32Array {
  if (used + n > slab.length) {
    slab = new Float32Array(SLAB);
    used = 0;
  }
  const view = slab.subarray(used, used + n);
  used += Math.ceil(n / 16) * 16;
  return view;
}

/** Hand back a buffer nobody references any more. */
export function giveBack(buf: Float32Array): void {
  if (buf.byteOffset !== 0 || buf.length !== buf.buffer.byteLength / 4) return; // views of shared storage stay out
  let list = free.get(buf.length);
  if (!list) free.set(buf.length, (list = []));
  if (list.length < MAX_PER_SIZE) list.push(buf);
}
