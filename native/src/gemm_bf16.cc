// AVX-512 BF16: the AVX-512 GEMM (8×32 tile), plus, for mixed-precision
// products (Gemm::bf16), panels of bfloat16 pairs multiplied by vdpbf16ps:
// each instruction does 32 multiply-adds into 16 FP32 sums, twice an FP32
// FMA's 16, which is where bf16 training's speed-up comes from.
//
// vdpbf16ps(acc, a, b) adds a[2i]·b[2i] + a[2i+1]·b[2i+1] to acc[i]: it wants
// k in pairs. So B's panel holds, for each k pair, NR columns × (k, k+1), and
// A's panel, for each k pair, MR rows × (k, k+1); the micro-kernel broadcasts
// one row's pair (32 bits) against a vector of 16 columns' pairs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "threadpool.h"
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512bf16,fma")
namespace attn { namespace avx512bf16 {
#define VEC_BYTES 64
#define ATTN_BF16_DOT
constexpr int MR = 8;
constexpr int NRV = 2;
#include <immintrin.h>
typedef float vf __attribute__((vector_size(64)));
static inline vf load(const float* p) { return (vf)_mm512_loadu_ps(p); }
static inline void store(float* p, vf v) { _mm512_storeu_ps(p, (__m512)v); }
static inline vf splat(float x) { return (vf)_mm512_set1_ps(x); }
static void pack_bf16(const float* src, long rs, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst);
static void micro_bf16(int kc, const uint16_t* a, const uint16_t* b, float* c, long ldc, int m, int n, float alpha, bool add,
                       const float* bias);
#include "gemm_impl.inc"

// dst[((panel·kp + q)·R + r)·2 + e] = bf16 of element (r0 + panel·R + r, k0 + 2q + e), with
// kp = ⌈kc/2⌉ pairs; zero past `rows` and past kc (an odd depth's last pair).
// Element (r, k) of the source lives at src[r·rs + k·ks].
static void pack_bf16(const float* src, long rs, long ks, int r0, int rows, int k0, int kc, int R, uint16_t* dst) {
  const int kp = (kc + 1) / 2;
  for (int p = 0; p < rows; p += R) {
    const int n = std::min(R, rows - p);
    for (int q = 0; q < kp; q++) {
      const bool pair = 2 * q + 1 < kc;
      const float* s = src + (long)(r0 + p) * rs + (long)(k0 + 2 * q) * ks;
      for (int r = 0; r < n; r++) {
        dst[2 * r] = bf16_bits(s[(long)r * rs]);
        dst[2 * r + 1] = pair ? bf16_bits(s[(long)r * rs + ks]) : 0;
      }
      std::memset(dst + 2 * n, 0, (size_t)(R - n) * 2 * sizeof(uint16_t));
      dst += 2 * R;
    }
  }
}

// C tile (m ≤ MR rows, n ≤ NR cols) = alpha·Σ_k a_k b_kᵀ (+ C when add) (+ bias), from bf16-pair panels.
static void micro_bf16(int kc, const uint16_t* a, const uint16_t* b, float* c, long ldc, int m, int n, float alpha, bool add,
                       const float* bias) {
  vf acc[MR][NRV];
  for (int i = 0; i < MR; i++) for (int v = 0; v < NRV; v++) acc[i][v] = vf{};
  const int kp = (kc + 1) / 2;
  for (int q = 0; q < kp; q++) {
    __m512bh bv[NRV];
    for (int v = 0; v < NRV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * VL * 2);
    for (int i = 0; i < MR; i++) {
      int32_t pairBits;
      std::memcpy(&pairBits, a + 2 * i, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pairBits);
      for (int v = 0; v < NRV; v++) acc[i][v] = (vf)_mm512_dpbf16_ps((__m512)acc[i][v], av, bv[v]);
    }
    a += 2 * MR;
    b += 2 * NR;
  }
  store_tile(acc, c, ldc, m, n, alpha, add, bias);
}
}}  // namespace attn::avx512bf16
#else
namespace attn { namespace avx512bf16 { void gemm(const Gemm& g, int threads) { portable::gemm(g, threads); }
void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add) { portable::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add); } } }
#endif
