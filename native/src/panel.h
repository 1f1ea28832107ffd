// y = x·Wᵀ (+ bias) for a few activation rows x ([M, K]) against fp32 weights
// W ([N, K]) stored in column panels: PANEL_COLS output columns at a time, each
// panel [K][PANEL_COLS] (the last one zero past N). Reading a panel is one
// sequential stream, and each of its k-rows (PANEL_COLS weights) meets every
// activation row's x[m][k], broadcast, with no horizontal sums: a product of
// 2–8 rows over weights from memory costs about what one row does. See
// panel_impl.inc; the layout is written by src/tensor/ops/linear_panels.ts.
#pragma once

namespace attn {

constexpr int PANEL_COLS = 64;
// Activation rows one pass over the panels takes; more rows go in slices of this many.
constexpr int PANEL_MAX_M = 8;

struct PanelLinear {
  int M, N, K;
  const float* x;       // [M, K], rows K apart
  const float* panels;  // ceil(N / PANEL_COLS) panels of [K][PANEL_COLS]
  const float* bias;    // optional, length N
  float* y;             // [M, N]
};

// Dispatched to the current ISA (gemm.cc), on the pool's threads; any M (slices of PANEL_MAX_M).
void panel_linear(const PanelLinear& g);

namespace portable { void panel_linear(const PanelLinear& g, int threads); }
namespace avx2 { void panel_linear(const PanelLinear& g, int threads); }
namespace avx512 { void panel_linear(const PanelLinear& g, int threads); }

}  // namespace attn
