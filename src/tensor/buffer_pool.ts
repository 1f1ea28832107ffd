/**
 * Recycles activation and gradient buffers between training steps. Every
 * step needs the same set of intermediate arrays; allocating them anew each
 * time makes the garbage collector and the page-zeroing of fresh memory a
 * visible share of a fast step. Buffers come back zeroed, unless taken for
 * an output that will be overwritten in full.
 */
const free = new Map<number, Float32Array[]>();
const MAX_PER_SIZE = 256;

export function takeZeroed(n: number): Float32Array {
  return take(n, true);
}

/**
 * A buffer whose old values may remain: only for an output that its kernel
 * overwrites in full (a product without accumulation, an elementwise result).
 * Zeroing such buffers was a tenth of a small training step.
 */
export function takeUninitialized(n: number): Float32Array {
  return take(n, false);
}

function take(n: number, zero: boolean): Float32Array {
  if (scratch && n > SMALL) return takeScratch(n, scratch, zero);
  const list = free.get(n);
  const buf = list?.pop();
  if (buf) {
    if (zero) buf.fill(0);
    return buf;
  }
  return n <= SMALL ? carve(n) : new Float32Array(n);
}

/*
 * Inference passes whose intermediate values all die with them (a server's
 * decode steps) recycle their large buffers through a small pool of their own.
 * A 16-sequence step of a 124M model allocates about 15 MB of activations, and
 * V8 answers every few tens of MB of new array memory with a full collection
 * (5 ms each in a server); recycled, they stop driving the collector. The
 * pool is bounded: sizes used least recently (a rare large prefill) go first.
 */
const scratchFree = new Map<number, Float32Array[]>();
const SCRATCH_BYTES = 64 * 2 ** 20;
let scratchPooled = 0;
let scratch: Float32Array[] | null = null;
let scratchAllocated = 0;

/*
 * A batch's row count changes from step to step, so buffers are pooled by
 * capacity class (8 per doubling: at most 1/8 wasted) and handed out as views
 * of the length asked for; exact sizes would rarely meet again.
 */
function capacityFor(n: number): number {
  const step = 2 ** Math.max(4, Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

function takeScratch(n: number, taken: Float32Array[], zero: boolean): Float32Array {
  const cap = capacityFor(n);
  let buf = scratchFree.get(cap)?.pop();
  if (buf) {
    scratchPooled -= buf.byteLength;
    if (zero) buf.fill(0, 0, n);
  } else {
    buf = new Float32Array(cap);
    scratchAllocated += buf.byteLength;
  }
  taken.push(buf);
  return buf.length === n ? buf : buf.subarray(0, n);
}

function keepScratch(buf: Float32Array): void {
  if (buf.byteLength > SCRATCH_BYTES / 4) return; // too large to be worth holding
  const list = scratchFree.get(buf.length) ?? [];
  scratchFree.delete(buf.length); // re-inserted last: the Map's order is least recently used first
  scratchFree.set(buf.length, list);
  list.push(buf);
  scratchPooled += buf.byteLength;
  for (const [size, old] of scratchFree) {
    if (scratchPooled <= SCRATCH_BYTES) break;
    scratchPooled -= old.length * size * 4;
    scratchFree.delete(size);
  }
}

/**
 * Run `fn`, then recycle every large buffer it took, except the one its
 * result lives in when it returns an array: that one passes to the enclosing
 * scope, if any (whose caller is done with it when that scope ends).
 */
export function withScratch<T>(fn: () => T): T {
  const outer = scratch;
  const taken: Float32Array[] = (scratch = []);
  try {
    const result = fn();
    const kept = result instanceof Float32Array ? result.buffer : null;
    for (const buf of taken) {
      if (buf.buffer !== kept) keepScratch(buf);
      else outer?.push(buf);
    }
    return result;
  } finally {
    scratch = outer;
  }
}

/**
 * One stage of a withScratch pass — a decoder layer — whose intermediates die
 * with it: run `fn`, then recycle at once every large buffer it took, except
 * the one holding its result (`resultValues(result)`, which passes to the
 * enclosing pass). The next stage then takes the same buffers again, so a
 * pass holds about one layer's activations instead of all of them: a
 * 256-token prefill of a 30-layer model otherwise took ~240 MB of fresh
 * arrays per pass (more than the pool keeps), and paid for them in page
 * faults and cache misses. When the result is not a host array (a device
 * tensor) nothing is recycled early. Outside a withScratch pass (training,
 * where the autograd graph keeps every activation) it just runs `fn`.
 */
export function withScratchStage<T>(fn: () => T, resultValues: (result: T) => unknown): T {
  const outer = scratch;
  if (!outer) return fn();
  const taken: Float32Array[] = (scratch = []);
  try {
    const result = fn();
    const values = resultValues(result);
    if (!(values instanceof Float32Array)) {
      outer.push(...taken);
      return result;
    }
    for (const buf of taken) {
      if (buf.buffer !== values.buffer) keepScratch(buf);
      else outer.push(buf);
    }
    return result;
  } finally {
    scratch = outer;
  }
}

/** Bytes of new arrays the scratch pools have allocated so far (what recycling saves shows here; tests and benchmarks). */
export function scratchBytesAllocated(): number {
  return scratchAllocated;
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

/**
 * For tests: overwrite every buffer waiting in the pools with `value` (NaN,
 * say), so an op whose kernel leaves part of an uninitialized output
 * unwritten gives a visibly wrong result instead of a stale right one.
 */
export function fillPooled(value: number): void {
  for (const list of [...free.values(), ...scratchFree.values()]) for (const buf of list) buf.fill(value);
}
