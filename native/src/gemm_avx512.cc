// AVX-512: 16-float vectors, an 8×32 tile (16 accumulators of the 32 zmm registers).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "gemv.h"
#include "panel.h"
#include "threadpool.h"
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,fma")
namespace attn { namespace avx512 {
#define VEC_BYTES 64
constexpr int MR = 8;
constexpr int NRV = 2;
#include <immintrin.h>
typedef float vf __attribute__((vector_size(64)));
static inline vf load(const float* p) { return (vf)_mm512_loadu_ps(p); }
static inline void store(float* p, vf v) { _mm512_storeu_ps(p, (__m512)v); }
static inline vf splat(float x) { return (vf)_mm512_set1_ps(x); }
#include "gemm_impl.inc"
#include "gemv_impl.inc"
#include "panel_impl.inc"
}}  // namespace attn::avx512
#else
namespace attn { namespace avx512 { void gemm(const Gemm& g, int threads) { portable::gemm(g, threads); }
void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add) { portable::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add); }
void gemv(const Gemv<float>& g, int threads) { portable::gemv(g, threads); }
void gemv(const Gemv<int8_t>& g, int threads) { portable::gemv(g, threads); }
void panel_linear(const PanelLinear& g, int threads) { portable::panel_linear(g, threads); } } }
#endif
