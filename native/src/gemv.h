// y = alpha·scale∘(x·Wᵀ) (+ y) (+ bias) for few activation rows x ([M, K],
// M ≤ GEMV_MAX_M: a decoding batch's rows) against weight rows W ([N, K]):
// decoding's products, reading W from memory once. W is fp32 (scale null) or
// int8 with one scale per row. See gemv_impl.inc.
#pragma once
#include <cstdint>

namespace attn {

// Up to here the wide kernel beats the blocked GEMM on Linear shapes (measured:
// 170 against 60–130 GFLOP/s at 32–256 rows × 768), because it never packs W.
constexpr int GEMV_MAX_M = 256;
// Activation rows whose sums fit in registers beside each weight row's; more
// rows go to the wide kernel.
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
// The same on the calling thread only (M ≤ GEMV_MAX_M), for callers that split the rows themselves.
void gemv_serial(const Gemv<float>& g);
void gemv_serial(const Gemv<int8_t>& g);

namespace portable { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }
namespace avx2 { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }
namespace avx512 { void gemv(const Gemv<float>& g, int threads); void gemv(const Gemv<int8_t>& g, int threads); }

}  // namespace attn
