// AVX2 + FMA: 8-float vectors, a 6×16 tile (12 accumulators of the 16 ymm registers).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "gemv.h"
#include "panel.h"
#include "threadpool.h"
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
namespace attn { namespace avx2 {
#define VEC_BYTES 32
constexpr int MR = 6;
constexpr int NRV = 2;
#include <immintrin.h>
typedef float vf __attribute__((vector_size(32)));
static inline vf load(const float* p) { return (vf)_mm256_loadu_ps(p); }
static inline void store(float* p, vf v) { _mm256_storeu_ps(p, (__m256)v); }
static inline vf splat(float x) { return (vf)_mm256_set1_ps(x); }
#include "gemm_impl.inc"
#include "gemv_impl.inc"
#include "panel_impl.inc"
}}  // namespace attn::avx2
#else
namespace attn { namespace avx2 { void gemm(const Gemm& g, int threads) { portable::gemm(g, threads); }
void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add) { portable::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add); }
void gemv(const Gemv<float>& g, int threads) { portable::gemv(g, threads); }
void gemv(const Gemv<int8_t>& g, int threads) { portable::gemv(g, threads); }
void panel_linear(const PanelLinear& g, int threads) { portable::panel_linear(g, threads); } } }
#endif
