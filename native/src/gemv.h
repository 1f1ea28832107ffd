// y = alpha·scale∘(x·Wᵀ) (+ y) (+ bias) for a few activation rows x ([M, K],
// M ≤ GEMV_MAX_M: one per sequence of a decoding batch) against weight rows
// W ([N, K]): decoding's products, reading W from memory once. W is
// fp32 (scale null) or int8 with one scale per row. See gemv_impl.inc.
#pragma once
#include <cstdint>

namespace attn {

constexpr int GEMV_MAX_M = 16;
// Activation rows whose sums fit in registers at once; more rows are run in
// groups of this many over weight rows already brought into cache.
constexpr int GEMV_REG_M = 4;

template <class W>
struct Gemv {
  int M, N, K;
  const float* x; long ldx;
  const W* w; long ldw;
  const float* scale;  // per weight row; null for fp32 weights
  const float* bias;   // optional, length N
  float* y; long ldy;
  float alpha;
  bool accumulate;
};

// Dispatched to the current ISA (gemm.cc). Larger M goes in slices of GEMV_MAX_M rows.
void gemv(const Gemv<float>& g);
void gemv(const Gemv<int8_t>& g);

namespace portable { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }
namespace avx2 { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }
namespace avx512 { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }

}  // namespace attn
