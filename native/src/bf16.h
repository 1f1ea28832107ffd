// bfloat16: the top 16 bits of an fp32 (same 8-bit exponent, 8-bit significand).
// Mixed-precision training rounds GEMM operands to it and keeps FP32 sums.
#pragma once
#include <cstdint>
#include <cstring>

namespace attn {

// Round to the nearest bfloat16, ties to even, the way AVX-512 BF16's
// vcvtne2ps2bf16 does: subnormal inputs become a signed zero, NaN stays a
// (quiet) NaN. The js twin (src/backend/js/bf16.ts) rounds the same way, so
// every path multiplies the same numbers.
static inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static inline float bf16_round(float x) {
  const uint32_t u = (uint32_t)bf16_bits(x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace attn
