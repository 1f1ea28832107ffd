/**
 * Mixed precision, the autocast way: a scope in which matrix products round
 * their operands to bfloat16 and sum in FP32, while everything else —
 * weights (the FP32 "master" copy), optimizer state, norms, softmax, the
 * loss — stays FP32. A product's backward pass runs in the precision its
 * forward pass ran in (the op remembers it), whatever scope backward() is
 * called from.
 *
 * Why bf16 and not fp16: it keeps FP32's 8-bit exponent, so gradients neither
 * overflow nor underflow and no loss scaling is needed; it drops significand
 * bits (8 instead of 24), which the FP32 sums and FP32 master weights absorb.
 */
export type Precision = 'fp32' | 'bf16';

let current: Precision = 'fp32';

/** The precision new matrix products use. */
export function matmulPrecision(): Precision {
  return current;
}

/** Run f with matrix products in precision p (restored afterwards, even on a throw). */
export function withPrecision<T>(p: Precision, f: () => T): T {
  const prev = current;
  current = p;
  try {
    return f();
  } finally {
    current = prev;
  }
}
