// Small math helpers for the kernels: a branch-free exp that vectorises, and
// the attribute that compiles a loop for several instruction sets.
#pragma once
#include <cstdint>
#include <cstring>

// Loops below are compiled for several instruction sets and picked at load
// time (GCC function multi-versioning), so one binary vectorises with AVX-512
// or AVX2 where the CPU has them and still runs anywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define ATTN_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define ATTN_CLONES
#endif

namespace attn {

// e^x for float, branch-free so loops that call it vectorise: x = n·ln2 + r
// with |r| ≤ ln2/2, e^r by a degree-6 polynomial (Cephes' expf coefficients,
// ~1 ulp), 2^n by building the exponent bits directly.
__attribute__((always_inline)) static inline float fast_exp(float x) {
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365447504f ? x : -87.3365447504f;
  const float t = x * 1.44269504088896341f;
  const int32_t ni = static_cast<int32_t>(t + (t >= 0.f ? 0.5f : -0.5f));  // round to nearest
  const float n = static_cast<float>(ni);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x − n·ln2 in two parts, for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// tanh(u) = 1 − 2/(e^{2u} + 1): exact limits ±1, absolute error ~1e-7.
__attribute__((always_inline)) static inline float fast_tanh(float u) { return 1.f - 2.f / (fast_exp(2.f * u) + 1.f); }

}  // namespace attn
