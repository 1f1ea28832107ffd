/**
 * bfloat16: the top 16 bits of a float32 — the same 8-bit exponent (so the
 * same range) with an 8-bit significand (about 3 decimal digits). Mixed
 * precision training rounds GEMM operands to it and keeps the sums in FP32:
 * a product of two bf16 numbers is exact in FP32, so only the operands lose
 * precision, never the accumulation.
 *
 * Rounding is to nearest, ties to even, the way AVX-512 BF16's
 * vcvtne2ps2bf16 rounds (native/src/bf16.h does the same): subnormal inputs
 * become a signed zero and NaN stays NaN.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** x rounded to the nearest bfloat16, returned as a number (exactly a float32). */
export function bf16Round(x: number): number {
  f32[0] = x;
  let u = u32[0]!;
  if ((u & 0x7f800000) === 0) u &= 0x80000000; // zero or subnormal: signed zero
  else if ((u & 0x7fffffff) > 0x7f800000) u = (u | 0x00400000) & 0xffff0000; // NaN stays (quiet) NaN
  else u = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0; // ties to even; may carry into the exponent (→ ∞ at the top)
  u32[0] = u;
  return f32[0];
}
