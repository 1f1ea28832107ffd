#include "gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "gemv.h"
#include "panel.h"
#include "threadpool.h"

namespace attn {

static void dispatch(const Gemm& g, int threads) {
  if (g.bf16 && bf16_dot()) return avx512bf16::gemm(g, threads);
  switch (current_isa()) {
    case Isa::Avx512: avx512::gemm(g, threads); break;
    case Isa::Avx2: avx2::gemm(g, threads); break;
    default: portable::gemm(g, threads); break;
  }
}

template <class W>
static void dispatch_gemv(const Gemv<W>& g, int threads) {
  switch (current_isa()) {
    case Isa::Avx512: avx512::gemv(g, threads); break;
    case Isa::Avx2: avx2::gemv(g, threads); break;
    default: portable::gemv(g, threads); break;
  }
}

// Slices of at most GEMV_MAX_M activation rows (each slice reads the weights once).
template <class W>
static void gemv_slices(Gemv<W> g) {
  const int M = g.M;
  for (int m0 = 0; m0 < M; m0 += GEMV_MAX_M) {
    Gemv<W> s = g;
    s.M = std::min(GEMV_MAX_M, M - m0);
    s.x = g.x + (long)m0 * g.ldx;
    s.y = g.y + (long)m0 * g.ldy;
    dispatch_gemv(s, pool().size());
  }
}

void gemv(const Gemv<float>& g) { gemv_slices(g); }

// Slices of at most PANEL_MAX_M activation rows, each one pass over the panels.
void panel_linear(const PanelLinear& g) {
  for (int m0 = 0; m0 < g.M; m0 += PANEL_MAX_M) {
    PanelLinear s = g;
    s.M = std::min(PANEL_MAX_M, g.M - m0);
    s.x = g.x + (long)m0 * g.K;
    s.y = g.y + (long)m0 * g.N;
    switch (current_isa()) {
      case Isa::Avx512: avx512::panel_linear(s, pool().size()); break;
      case Isa::Avx2: avx2::panel_linear(s, pool().size()); break;
      default: portable::panel_linear(s, pool().size()); break;
    }
  }
}
void gemv_serial(const Gemv<float>& g) { dispatch_gemv(g, 1); }
void gemv_serial(const Gemv<int8_t>& g) { dispatch_gemv(g, 1); }

// Many rows (a prompt's prefill) would re-read the int8 weights once per
// GEMV_MAX_M rows and run out of cache; instead widen NB weight rows at a time to fp32 and hand
// them to the blocked GEMM, which is compute-bound there.
void gemv(const Gemv<int8_t>& g) {
  if (g.M <= GEMV_MAX_M) return gemv_slices(g);
  constexpr int NB = 256;
  thread_local std::vector<float> wf, sb;
  wf.resize((size_t)NB * g.K);
  for (int n0 = 0; n0 < g.N; n0 += NB) {
    const int nb = std::min(NB, g.N - n0);
    for (int r = 0; r < nb; r++) {
      const int8_t* src = g.w + (long)(n0 + r) * g.ldw;
      const float s = g.scale[n0 + r] * g.alpha;
      float* dst = wf.data() + (size_t)r * g.K;
      for (int k = 0; k < g.K; k++) dst[k] = s * (float)src[k];
    }
    Gemm m{false, true, g.M, nb, g.K, g.x, g.ldx, wf.data(), g.K, g.y + n0, g.ldy, 1.f, g.accumulate, 1, 0, 0, 0,
           g.bias ? g.bias + n0 : nullptr};
    dispatch(m, pool().size());
  }
}

// A Linear layer on a few rows (x·Wᵀ with W [N, K], as in decoding) is a GEMV:
// it streams W once instead of packing it first.
// (Not for bf16 products: the GEMV kernels multiply FP32 operands.)
static bool is_gemv(const Gemm& g) { return !g.bf16 && g.batch == 1 && !g.transA && g.transB && g.M <= GEMV_MAX_M && g.K > 0; }

void gemm(const Gemm& g) {
  if (is_gemv(g)) {
    gemv(Gemv<float>{g.M, g.N, g.K, g.a, g.lda, g.b, g.ldb, nullptr, g.bias, g.c, g.ldc, g.alpha, g.accumulate});
    return;
  }
  dispatch(g, pool().size());
}
void gemm_serial(const Gemm& g) { dispatch(g, 1); }

void gemm_small(int m, int n, int k, const float* a, long ars, long acs, const float* b, long ldb, float* c, long ldc, float alpha,
                bool add) {
  switch (current_isa()) {
    case Isa::Avx512: return avx512::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add);
    case Isa::Avx2: return avx2::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add);
    default: return portable::gemm_small(m, n, k, a, ars, acs, b, ldb, c, ldc, alpha, add);
  }
}

namespace pairs_portable {
static inline float widen(uint32_t pair, int e) {
  const uint32_t u = e ? pair & 0xffff0000u : pair << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd) {
  const int kp = (k + 1) / 2;
  for (int i = 0; i < m; i++)
    for (int q = 0; q < kp; q++) {
      const float* s = src + (long)i * ld + 2 * q;
      dst[(long)i * ldd + q] = bf16_bits(s[0]) | (2 * q + 1 < k ? (uint32_t)bf16_bits(s[1]) << 16 : 0u);
    }
}
void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd) {
  const int kp = (k + 1) / 2;
  for (int q = 0; q < kp; q++)
    for (int j = 0; j < n; j++)
      dst[(long)q * ldd + j] = bf16_bits(src[2L * q * ld + j]) | (2 * q + 1 < k ? (uint32_t)bf16_bits(src[(2L * q + 1) * ld + j]) << 16 : 0u);
}
void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, long ldc,
                float alpha, bool add) {
  std::vector<float> row(n);
  for (int i = 0; i < m; i++) {
    std::fill(row.begin(), row.end(), 0.f);
    for (int q = 0; q < kp; q++) {
      const uint32_t ap = a[(long)i * ars + (long)q * acs];
      const float a0 = widen(ap, 0), a1 = widen(ap, 1);
      const uint32_t* bq = b + (long)q * ldb;
      for (int j = 0; j < n; j++) row[j] += a0 * widen(bq[j], 0) + a1 * widen(bq[j], 1);
    }
    float* ci = c + (long)i * ldc;
    for (int j = 0; j < n; j++) ci[j] = add ? ci[j] + alpha * row[j] : alpha * row[j];
  }
}
}  // namespace pairs_portable

void bf16_pairs_along_rows(const float* src, long ld, int m, int k, uint32_t* dst, long ldd) {
  if (bf16_dot()) return avx512bf16::bf16_pairs_along_rows(src, ld, m, k, dst, ldd);
  pairs_portable::bf16_pairs_along_rows(src, ld, m, k, dst, ldd);
}
void bf16_pairs_down_cols(const float* src, long ld, int k, int n, uint32_t* dst, long ldd) {
  if (bf16_dot()) return avx512bf16::bf16_pairs_down_cols(src, ld, k, n, dst, ldd);
  pairs_portable::bf16_pairs_down_cols(src, ld, k, n, dst, ldd);
}
void gemm_pairs(int m, int n, int kp, const uint32_t* a, long ars, long acs, const uint32_t* b, long ldb, float* c, long ldc,
                float alpha, bool add) {
  if (bf16_dot()) return avx512bf16::gemm_pairs(m, n, kp, a, ars, acs, b, ldb, c, ldc, alpha, add);
  pairs_portable::gemm_pairs(m, n, kp, a, ars, acs, b, ldb, c, ldc, alpha, add);
}

}  // namespace attn
